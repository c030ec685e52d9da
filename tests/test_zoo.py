"""The shipped-model table: names, aliases, former names' errors, the default, find_shipped, clean cards."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

import compressor
from compressor import zoo
from compressor.checkpoint import read_card
from compressor.errors import ModelError

NAMES = ["vit.default", "vit.equal-budget", "cvit.equal-budget", "hybrid.equal-budget", "convnext.equal-budget"]


def test_five_models_named_arch_dot_tag_with_the_default_first():
    from compressor.registry import ARCHITECTURES

    assert list(zoo.SHIPPED) == NAMES and zoo.DEFAULT_MODEL == "vit.default"
    assert list(zoo.shipped_models()) == NAMES  # every shipped file is present in the checkout
    for name in NAMES:
        assert name.split(".")[0] in ARCHITECTURES
        assert read_card(zoo.shipped_models()[name]).config["encoder"] == name.split(".")[0]
    assert [c.name for c in compressor.list_models()] == NAMES


@pytest.mark.parametrize("alias,name", [("vit-distil2-snap", "vit.default"), ("vit-1m-distil-snap", "vit.equal-budget"),
                                        ("cvit-1m-distil-snap", "cvit.equal-budget"),
                                        ("hybrid-1m-distil-snap", "hybrid.equal-budget"),
                                        ("convnext-1m-distil-snap", "convnext.equal-budget")])
def test_old_file_names_are_aliases(alias, name):
    assert zoo.canonical_name(alias) == name
    assert zoo.resolve(alias) == zoo.resolve(name) == zoo.shipped_models()[name]
    assert zoo.resolve(name).name == alias + ".safetensors"


def test_twenty_two_former_names_say_what_replaces_them_in_one_line():
    assert len(zoo.REMOVED) == 22 and not set(zoo.REMOVED) & (set(zoo.SHIPPED) | set(zoo.ALIASES))
    assert set(zoo.REMOVED.values()) <= set(zoo.SHIPPED)
    for old, new in zoo.REMOVED.items():
        with pytest.raises(ModelError) as e:
            compressor.load(old)
        message = str(e.value)
        assert "\n" not in message and "no longer shipped" in message and f"'{new}'" in message
        assert "git history" in message


def test_the_cli_refuses_a_former_name_in_one_line(frame, tmp_path):
    from PIL import Image

    frame_png = tmp_path / "f.png"
    Image.fromarray(frame).save(frame_png)
    r = subprocess.run([str(Path(sys.executable).parent / "compress"), str(frame_png), str(tmp_path / "a.bin"),
                        "--model", "vit-long2"], capture_output=True, text=True)
    assert r.returncode == 1 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert "no longer shipped" in r.stderr and "vit.default" in r.stderr and not (tmp_path / "a.bin").exists()


def test_unknown_names_list_the_shipped_ones():
    with pytest.raises(ModelError, match="unknown model 'nope'.*vit.default"):
        zoo.resolve("nope")


def test_find_shipped_looks_only_at_the_five_files():
    ids = {name: read_card(path).model_id for name, path in zoo.shipped_models().items()}
    for name, model_id in ids.items():
        assert zoo.find_shipped(model_id) == zoo.shipped_models()[name]
        assert zoo.name_of(zoo.find_shipped(model_id)) == name
    assert zoo.find_shipped(next(i for i in range(1 << 16) if i not in ids.values())) is None


def test_the_source_tree_holds_exactly_the_shipped_checkpoints():
    """Former checkpoints live in git history only; nothing else lies in checkpoints/ to be picked up."""
    if not zoo._SOURCE_CHECKPOINTS.is_dir():
        pytest.skip("installed from a wheel: no source tree")
    assert sorted(p.name for p in zoo._SOURCE_CHECKPOINTS.iterdir()) == sorted(m.file for m in zoo.SHIPPED.values())


def test_a_shipped_codec_goes_by_its_zoo_name():
    assert compressor.load("vit-distil2-snap").name == "vit.default" == compressor.load().name


def test_normalised_cards_keep_history_and_lose_paths():
    card = {
        "name": "x",
        "training": {"data": ["/srv/shared/data/train", "../shared/data/train/driving"],
                     "recipe": {"init_from": "checkpoints/vit-1m-distil.safetensors", "val_data": [], "steps": 3},
                     "warm_started_from": {"name": "vit-1m-distil", "frames_seen": 10},
                     "seed": "/work/runs/vit-1m-distil-ft.safetensors",
                     "note": "from runs/seed.safetensors on /home/someone/data/train/photos, 2 steps/s"},
    }
    clean = zoo.normalise_card(card)
    assert clean["training"]["data"] == ["train", "train/driving"]
    assert clean["training"]["recipe"] == {"init_from": "vit-1m-distil", "val_data": [], "steps": 3}
    assert clean["training"]["warm_started_from"] == card["training"]["warm_started_from"]
    assert clean["training"]["note"] == "from seed on train/photos, 2 steps/s"
    assert clean["training"]["seed"] == "vit-1m-distil-ft"  # an absolute checkpoint path: its name, no slash
    assert zoo.normalise_card(clean) == clean


def test_models_json_prints_no_paths():
    r = subprocess.run([str(Path(sys.executable).parent / "compressor"), "models", "--json"],
                       capture_output=True, text=True, check=True)
    cards = json.loads(r.stdout)
    assert [c["name"] for c in cards] == NAMES
    assert all(d == "train" or d.startswith("train/") for c in cards for d in c["training"]["data"])
    assert "../" not in r.stdout and "/work" not in r.stdout and ".safetensors" not in r.stdout


def test_normalising_the_shipped_cards_keeps_the_weights(tmp_path, monkeypatch):
    """`python -m compressor.zoo --normalise-cards`, run on copies: cards clean, ids and tensors unchanged."""
    import shutil

    monkeypatch.setattr(zoo, "_SOURCE_CHECKPOINTS", tmp_path)
    monkeypatch.setattr(zoo, "_INSTALLED_CHECKPOINTS", tmp_path / "none")
    source = zoo.Path(zoo.__file__).resolve().parent.parent / "checkpoints" / zoo.SHIPPED["cvit.equal-budget"].file
    shutil.copy(source, tmp_path / source.name)
    before = read_card(tmp_path / source.name)
    assert zoo.normalise_shipped_cards() == [f"cvit.equal-budget: rewrote the card of {source.name}"]
    after = read_card(tmp_path / source.name)
    assert after.model_id == before.model_id and after.name == "cvit.equal-budget"
    assert after.card["alias"] == "cvit-1m-distil-snap"
    assert after.card["training"]["data"] == ["train/driving", "train/photos"]
    assert after.card["results"] == before.card["results"]
    compressor.load(tmp_path / source.name)  # the weights still match the id


def test_the_wheel_carries_exactly_the_shipped_files():
    import tomllib

    pyproject = tomllib.loads((zoo._SOURCE_CHECKPOINTS.parent / "pyproject.toml").read_text())
    mapped = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    assert mapped == {f"checkpoints/{m.file}": f"compressor/checkpoints/{m.file}" for m in zoo.SHIPPED.values()}
