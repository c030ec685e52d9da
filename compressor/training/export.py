"""A run's state -> a release checkpoint: the entropy model frozen into its table, the card filled in."""
from __future__ import annotations

from pathlib import Path

import torch

from compressor.errors import TrainingError
from compressor.model import CompressionModel
from compressor.training.state import STATE_FILE, hardware, read_state, training_facts

LICENCE = ("weights trained on ImageNet samples, Cityscapes, CamVid, nuScenes and KITTI frames: "
           "non-commercial research use only")


def export_release(run_dir: str | Path, output: str | Path, *, name: str) -> int:
    """Freeze a run's entropy model into its table and write a release checkpoint; returns the model id.

    Weights are stored in float16 (half the size of float32, well under the 30 MB budget); the
    reported results must therefore be measured on the exported file, which `compressor eval
    --record` does. Only the state file is read: no optimizers, data or process group, and nothing in
    the run folder is touched, so a run that is still writing to it can be exported.
    """
    from safetensors import SafetensorError

    from compressor.checkpoint import read_card, save_release
    from compressor.layers import count_parameters
    from compressor.zoo import normalise_card

    state = Path(run_dir) / STATE_FILE
    if not state.is_file():
        raise FileNotFoundError(f"no training state in {run_dir} (expected {state})")
    try:
        saved = read_state(state)
    except (SafetensorError, OSError, KeyError, TypeError, ValueError) as e:  # a file from elsewhere
        raise TrainingError(f"{state} is not a compressor training state ({type(e).__name__}: {e})") from None
    cfg = saved.config
    model = CompressionModel.from_config(cfg.model, trainable_entropy_model=True)
    model.load_state_dict(saved.weights)
    model.bottleneck.freeze()
    card = {
        "parameters": count_parameters(model.encoder) + count_parameters(model.decoder),
        "encoder_parameters": count_parameters(model.encoder),
        "decoder_parameters": count_parameters(model.decoder),
        # Data folders and the seed's path as names, not this machine's paths (compressor.zoo.normalise_card).
        "training": normalise_card(training_facts(cfg, saved.progress, hardware(cfg))),
        "licence": LICENCE,
    }
    seed = None
    if cfg.freeze_encoder and Path(cfg.init_from).is_file():
        # The encoder is the seed's bit for bit, so the precision it was measured to encode at holds, and
        # so does the scale a search starts from (both measured on that encoder).
        seed = read_card(cfg.init_from)
        card.update({k: seed.card[k] for k in ("encode_precision", "refine_start_scale") if k in seed.card})
    if not cfg.snap:
        return save_release(output, model, cfg.model, name=name, card=card, weight_dtype=torch.float16)
    if seed is None:
        raise TrainingError(f"a snap run's release needs its seed checkpoint, {cfg.init_from}, which is gone")
    return _save_with_seed_coding(output, model, cfg, name, card, seed)


def _save_with_seed_coding(output, model, cfg, name: str, card: dict, seed) -> int:
    """A snap run's release: its decoder, with the seed's encoder and all of the seed's coding (per-channel
    table, context tables, context net), so that it encodes by the same rule the decoder was trained on
    (card "snap") and every file the seed wrote decodes to the same symbols (card "reads_files_of")."""
    from compressor.checkpoint import read_tensors, save_release, save_with_context

    seed_tensors, seed = read_tensors(seed.path)
    model.bottleneck.cdf.copy_(seed_tensors["bottleneck.cdf"])  # the table the seed's files were coded with
    former = [seed.model_id, seed.table_model_id, seed.legacy_model_id]
    former += [int(i, 16) for i in seed.card.get("reads_files_of", {}).get("model_ids", [])]
    save_release(output, model, cfg.model, name=name, card=card, weight_dtype=torch.float16)
    reads = {"name": card["training"]["warm_started_from"]["name"],
             "model_ids": sorted({f"{i:04x}" for i in former if i is not None})}
    coding = {"context": seed.card.get("context", {}), "snap": cfg.snap, "reads_files_of": reads}
    model_id, _ = save_with_context(output, output, seed.context_tables, coding, seed.context_net)
    return model_id
