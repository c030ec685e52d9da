import json
import pickle

import pytest
import torch
from safetensors.torch import load_file, save_file

from compressor.checkpoint import read_card
from compressor.model import load_model
from compressor.zoo import resolve
from compressor.errors import ModelError


def test_round_trip_rebuilds_identical_model(tiny_path):
    model, card = load_model(tiny_path)
    again, card2 = load_model(tiny_path)
    assert card.model_id == card2.model_id
    for (k, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        torch.testing.assert_close(a, b, msg=k)
    assert card.config["encoder"] == "vit"
    assert "bottleneck.cdf" in load_file(str(tiny_path))


def _rewrite(src, dst, *, tensors=None, metadata=None):
    t = load_file(str(src))
    with open(src, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        meta = json.loads(f.read(n))["__metadata__"]
    if tensors:
        t.update(tensors)
    if metadata:
        meta.update(metadata)
    save_file(t, str(dst), metadata=meta)
    return dst


def test_tampered_weights_are_refused(tiny_path, tmp_path):
    t = load_file(str(tiny_path))
    w = t["encoder.head.weight"].clone()
    w[0, 0] += 0.5
    bad = _rewrite(tiny_path, tmp_path / "bad.safetensors", tensors={"encoder.head.weight": w})
    with pytest.raises(ModelError, match="model id"):
        load_model(bad)


def test_wrong_shapes_are_refused_even_with_a_matching_id(tiny_path, tmp_path):
    from compressor.checkpoint import tensors_digest

    t = load_file(str(tiny_path))
    t["encoder.head.weight"] = torch.zeros(14, 48, dtype=t["encoder.head.weight"].dtype)
    model_id = int.from_bytes(tensors_digest(t)[:2], "big")
    bad = _rewrite(tiny_path, tmp_path / "bad.safetensors", tensors=t, metadata={"model_id": f"{model_id:04x}"})
    with pytest.raises(ModelError, match="do not fit"):
        load_model(bad)


def test_wrong_or_missing_config_is_refused(tiny_path, tmp_path):
    bad = _rewrite(tiny_path, tmp_path / "bad.safetensors", metadata={"config": json.dumps({"encoder": "nope"})})
    with pytest.raises(ModelError):
        load_model(bad)
    bad2 = _rewrite(tiny_path, tmp_path / "bad2.safetensors", metadata={"config": "{not json"})
    with pytest.raises(ModelError, match="malformed"):
        read_card(bad2)


def test_metadata_of_the_wrong_json_types_is_refused(tiny_path, tmp_path):
    former = [{"reads_files_of": v} for v in ([1], {"model_ids": ["zz"]}, {"model_ids": [7]}, {"model_ids": 3})]
    for i, metadata in enumerate([{"card": "[1, 2]"}, {"config": "[1, 2]"}, {"card": "3"}]
                                 + [{"card": json.dumps(card)} for card in former]):
        bad = _rewrite(tiny_path, tmp_path / f"bad{i}.safetensors", metadata=metadata)
        with pytest.raises(ModelError, match="malformed"):
            read_card(bad)
    for i, header in enumerate([[1, 2], {"__metadata__": "text"}, {"__metadata__": None}]):
        text = json.dumps(header).encode()
        path = tmp_path / f"header{i}.safetensors"
        path.write_bytes(len(text).to_bytes(8, "little") + text)
        with pytest.raises(ModelError, match="not a compressor checkpoint"):
            read_card(path)
    config = dict(read_card(tiny_path).config, latent_channels=-5)
    bad = _rewrite(tiny_path, tmp_path / "negative.safetensors", metadata={"config": json.dumps(config)})
    with pytest.raises(ModelError, match="does not build a model"):
        load_model(bad)


def test_pickle_is_never_executed(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    evil = tmp_path / "evil.safetensors"
    evil.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(ModelError):
        load_model(evil)
    assert not marker.exists()


def test_unknown_name_and_missing_path():
    with pytest.raises(ModelError, match="unknown model"):
        resolve("no-such-model")
    with pytest.raises(ModelError, match="not found"):
        resolve("/nonexistent/model.safetensors")


def test_checkpoints_get_the_umasks_permissions(tmp_path):
    """safetensors writes owner-only files; an exported checkpoint is readable as the umask allows."""
    import os
    import stat

    from tests.conftest import make_release

    old = os.umask(0o022)
    try:
        path = make_release(tmp_path / "m.safetensors")
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
    finally:
        os.umask(old)
