"""Probe: snapping in time. The codec snaps each frame's unsure bits to its context net's prediction where
that saves bits (`context_net.snap`); in a clip, off a keyframe, the same rule can snap them to what the
temporal table predicts given the previous frame's final code: a cell flips where the flip saves bits
under that table (every cell given the others as they are, one pass) and the encoder's margin |y| is
below c x the bits saved. No search and no decoder pass: plain-mode speed. Bytes a frame of clip archives
(every record the shortest kind, as `compress` writes clips) and mean PSNR, at the sequences' frame rate
and at half of it, for each c (0: clips today).

    compressor fit-context vit.default --images ../shared/data/train/driving ../shared/data/train/photos \
        --exclude 'cityscapes_seq0002_*' --exclude 'cityscapes_seq0003_*' --exclude 'sullychen_03*' \
        --net --crops 1 --net-steps 3000 --out /tmp/heldout.safetensors
    python docs/scripts/temporal_snap_probe.py /tmp/heldout.safetensors \
        --only 'cityscapes_seq0002_*' --only 'cityscapes_seq0003_*' [--c 0 0.4 0.8 1.6 3.2]

With `--decoder-steps N --train-c C`, also an A/B of the decoder at equal data and steps: the shipped
decoder fine-tuned N steps on the training drives' codes as the codec makes them (the control), and on the
same frames' codes snapped in time at C (each drive's frames in name order, a keyframe every K); both
arms scored on the held-out clips at every c, and on `--eval` folders' single frames (which must not
get worse). The training drives are `--data` minus `--exclude` globs (the held-out sequences).
"""
from __future__ import annotations

import numpy as np

import copy
import fnmatch
from pathlib import Path

import compressor
from compressor import context_model, context_net
from compressor.context_fit import load_frames
from probe_args import eval_frames  # this folder's shared probe arguments
from snap_probe import latent  # this folder's sibling probes
from surprise_probe import decoder_input, fine_tune
from surprise_probe import score as decoded_psnr
from temporal_hold_probe import sequence_files, sequence_parser, sweep


def time_snapped(codec, latent: np.ndarray, c: float, interval: int) -> list[np.ndarray]:
    """(T, C, h, w) latents of consecutive frames -> their codes: the codec's own (snapped by its net), and
    off keyframes each then snapped toward the temporal table's prediction given the previous final code."""
    own = context_net.snap(codec._net, latent, codec.snap) if codec._net is not None else (latent >= 0).astype(np.uint8)
    table = context_model.Tables.of(codec.card.context_tables).probabilities(context_model.TEMPORAL, latent.shape[1])
    codes = []
    for t, code in enumerate(own):
        if t % interval and c > 0:
            rows = context_model._table_rows(code, context_model.TEMPORAL, codes[-1])  # (C, h, w)
            saved = context_net.saved_bits(table[rows], code)
            code = np.where((saved > 0) & (np.abs(latent[t]) < c * saved), 1 - code, code).astype(np.uint8)
        codes.append(code)
    return codes


def training_drives(args) -> list[list[Path]]:
    """`--data`'s files grouped into drives by name (all but the last '_' field), in name order, without
    the `--exclude` globs; at most `--train-frames` frames in all, taken from each drive's start."""
    drives: dict[str, list[Path]] = {}
    for f in sorted(Path(args.data).iterdir()):
        if not any(fnmatch.fnmatch(f.name, g) for g in args.exclude + args.only):
            drives.setdefault(f.name.rsplit("_", 1)[0], []).append(f)
    share = args.train_frames / sum(len(d) for d in drives.values())
    return [d[: max(2, round(share * len(d)))] for d in drives.values()]


def decoder_ab(codec, args, clips: list[np.ndarray]) -> None:
    """The decoder fine-tuned on the codec's codes (control) and on time-snapped codes; both scored."""
    k, c_train = args.keyframe_interval, args.train_c
    drives = [load_frames(d) for d in training_drives(args)]  # each (T, 128, 256, 3)
    frames = np.concatenate(drives)
    mirrored = [d[:, :, ::-1].copy() for d in drives]
    print(f"decoder A/B: {len(frames)} training frames in {len(drives)} drives, {args.decoder_steps} steps, "
          f"time snap c = {c_train} for the second arm", flush=True)
    singles = [(f, context_net.snap(codec._net, latent(codec, f), codec.snap)) for f in map(eval_frames, args.eval)]
    print("| decoder | " + " | ".join(f"clips c = {c:g}" for c in args.c) + " | " +
          " | ".join(Path(e).name for e in args.eval) + " |")
    print("|---|" + "---|" * (len(args.c) + len(args.eval)))
    for arm, c in (("control: the codec's codes", 0.0), (f"time-snapped codes, c = {c_train:g}", c_train)):
        decoder = copy.deepcopy(codec.model.decoder).float()
        inputs = {flip: decoder_input(None, np.concatenate([np.stack(time_snapped(codec, latent(codec, d), c, k))
                                                            for d in (mirrored if flip else drives)]), False)
                  for flip in (False, True)}
        fine_tune(decoder, frames, inputs, args.decoder_steps, 2e-5, 2e-5, 16)
        cells = []
        for c in args.c:
            total, n = 0.0, 0
            for f in clips:
                codes = np.stack(time_snapped(codec, latent(codec, f), c, k))
                total += decoded_psnr(decoder, f, decoder_input(None, codes, False)) * len(f)
                n += len(f)
            cells.append(f"{total / n:.3f}")
        cells += [f"{decoded_psnr(decoder, f, decoder_input(None, s, False)):.3f}" for f, s in singles]
        print(f"| {arm} | " + " | ".join(cells) + " |", flush=True)


def main() -> None:
    p = sequence_parser(__doc__.splitlines()[0], keyframe_interval=10)
    p.add_argument("--c", type=float, nargs="+", default=[0.0, 0.4, 0.8, 1.6, 3.2])
    p.add_argument("--decoder-steps", type=int, default=0)
    p.add_argument("--train-c", type=float, default=1.6)
    p.add_argument("--train-frames", type=int, default=3000)
    p.add_argument("--exclude", action="append", default=[], metavar="GLOB", help="held out of the training drives")
    p.add_argument("--eval", nargs="*", default=[], help="folders of single frames to score both decoders on")
    args = p.parse_args()
    codec = compressor.load(args.checkpoint)
    k = args.keyframe_interval
    if args.decoder_steps:
        decoder_ab(codec, args, [load_frames(f) for f in sequence_files(args, 1)])
        return
    print(f"{codec.name}: snap {codec.snap}, K = {k}")
    print("| frames | c | coded alone | clip archive | PSNR |")
    print("|---|---|---|---|---|")
    sweep(codec, args, args.c, lambda latent, c: time_snapped(codec, latent.float().numpy(), c, k), k)


if __name__ == "__main__":
    main()
