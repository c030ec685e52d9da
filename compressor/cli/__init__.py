"""Command-line entry points: `compress`, `decompress` and `compressor <subcommand>`.

User errors print one line on stderr and exit with status 1 (2 for bad arguments); outputs are
written to a temporary file and renamed into place, so a failure leaves no partial file, and the
input is never overwritten.

This file holds the argument parsers; the commands live by role: `common` (errors, exit statuses,
path checks), `files` (compress, decompress, info, models, eval, speed), `training` (train, export,
fit-context), `bench`, `tokens` (tokens, frames, export-onnx), `clips` (clip archives) and
`sequences` (what tokens and clips share).
"""
from __future__ import annotations

import argparse
import math

from compressor.archive_writer import KEYFRAME_INTERVAL
from compressor.cli.bench import _bench
from compressor.cli.common import UserError, _run
from compressor.cli.files import _compress, _decompress, _eval, _info, _models, _speed
from compressor.cli.training import _export, _fit_context, _train
from compressor.registry import ARCHITECTURES
from compressor.zoo import DEFAULT_MODEL

__all__ = ["compress_main", "decompress_main", "compressor_main", "UserError"]


def _steps(text: str) -> int:
    n = int(text)
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {n}")
    return n


def _positive(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {n}")
    return n


_steps.__name__ = _positive.__name__ = "whole number"  # argparse says "invalid whole number value: 'abc'"


def _weight(text: str) -> float:
    x = float(text)
    if not (math.isfinite(x) and x >= 0):  # nan and inf too
        raise argparse.ArgumentTypeError(f"must be a finite number, 0 or more, not {text}")
    return x


def _above_zero(text: str) -> float:
    """A finite number above 0: a frame rate (a sidecar's JSON and a video's time base need one), minutes."""
    x = float(text)
    if not (math.isfinite(x) and x > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, not {text}")
    return x


def _keyframe_interval(text: str) -> int:
    """K: from 1 to what the clip header holds."""
    from compressor.clip import MAX_KEYFRAME_INTERVAL

    n = _positive(text)
    if n > MAX_KEYFRAME_INTERVAL:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_KEYFRAME_INTERVAL}, not {n}")
    return n


def _fps(text: str) -> float:
    """A frame rate: above 0, and within what video writers and the clip header hold (`tokens.MIN_FPS`, `MAX_FPS`)."""
    from compressor.tokens import MAX_FPS, MIN_FPS

    x = _above_zero(text)
    if not MIN_FPS <= x <= MAX_FPS:
        raise argparse.ArgumentTypeError(f"must be from {MIN_FPS:g} to {MAX_FPS:g} frames a second, not {text}")
    return x


_weight.__name__ = _above_zero.__name__ = _fps.__name__ = "number"
_keyframe_interval.__name__ = "whole number"


def _add_device_arg(p, what: str = "where the networks run") -> None:
    """--device for every command that runs a network (a GPU: "cuda"; entropy coding stays on the CPU)."""
    p.add_argument("--device", default="cpu", help=f"cpu or cuda[:N]: {what} (default: cpu)")


def _add_search_args(p: argparse.ArgumentParser, what: str) -> None:
    """--refine and --flips, the encoder-side searches (compressor.search), for compress, eval and speed."""
    search = p.add_mutually_exclusive_group()
    search.add_argument("--refine", type=_steps, default=0, metavar="STEPS",
                        help=f"{what} STEPS Adam steps of search for a better code (slow; 30 gave vit.default "
                             "+0.4 dB, at about 3 frames/s on 2 cores)")
    search.add_argument("--flips", type=_steps, default=0, metavar="ROUNDS",
                        help=f"{what} ROUNDS rounds of greedy bit flips (2 gave vit.default +0.25 dB, encoding "
                             "about a sixth as fast as plain; gains stop near 5)")


def compress_main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="compress", description="Compress an image to a .bin file, or a video, "
                                "folder of frames or token file to one clip archive.")
    p.add_argument("input", help="image file (PNG, JPEG, WebP, ...), or a video or folder of frames for a clip, or "
                                 "a token file (.npy of compressor tokens) to code as it is")
    p.add_argument("output", help=".bin file to write")
    p.add_argument("--model", default=None, help=f"shipped model name or .safetensors path (default: {DEFAULT_MODEL}; "
                                                 "for a token file, the model its sidecar names)")
    _add_search_args(p, "search with")
    p.add_argument("--rate-weight", type=_weight, default=0.0, metavar="W",
                   help="with --flips: minimise MSE + W x bits under the model's context tables, for smaller files "
                        "(4e-6 with --flips 8: vit.default 5 B smaller on kodak-frames, 0.04 dB ahead of plain "
                        "flips net of what those bytes buy AVIF); in a clip, under the temporal table off keyframes "
                        "(1.6e-5 with --flips 3: 3-5%% fewer bytes than plain at about the same PSNR on driving clips)")
    p.add_argument("--no-tile", action="store_true",
                   help="vit/hybrid: code an image larger than 128x256 whole, not in tiles (slower, much worse)")
    p.add_argument("--no-overlap", action="store_true",
                   help="vit/hybrid: cut a large image in tiles side by side, not overlapping (3.5x faster, 0.2 dB worse)")
    clip = p.add_argument_group("clips (a video or a folder of frames)")
    clip.add_argument("--keyframe-interval", type=_keyframe_interval, default=KEYFRAME_INTERVAL, metavar="K",
                      help="code every Kth frame without the previous one, the start of any random access "
                           f"(default {KEYFRAME_INTERVAL})")
    clip.add_argument("--no-resize", action="store_true", help="keep the frames' own size (all must match), "
                      "instead of resizing them to the model's 128x256 frame (Lanczos cover, centre crop)")
    clip.add_argument("--fps", type=_fps, default=None, help="frame rate to record for a folder (default: the video's)")
    _add_device_arg(p, "where the encoder runs")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    return _run("compress", _compress, p.parse_args(argv))


def decompress_main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="decompress", description="Decompress a .bin file to an image.")
    p.add_argument("input", help=".bin file")
    p.add_argument("output", help="image file to write; the format follows the extension (for a clip: a .mp4, "
                                  ".mkv (lossless) or a new folder of PNG frames)")
    p.add_argument("--model", default=None, help="model to decode with (default: the shipped model named in the file)")
    p.add_argument("--frames", default=None, metavar="A:B",
                   help="clip archives: decode only frames A to B-1 (seeks to the keyframe before A)")
    _add_device_arg(p, "where the decoder runs")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    return _run("decompress", _decompress, p.parse_args(argv))


def _tokens(args) -> None:
    from compressor.cli.tokens import tokens_command

    tokens_command(args)


def _frames(args) -> None:
    from compressor.cli.tokens import frames_command

    frames_command(args)


def _export_onnx(args) -> None:
    from compressor.cli.tokens import export_onnx_command

    export_onnx_command(args)


def _add_info_parser(sub) -> None:
    """`compressor info`."""
    s = sub.add_parser("info", help="describe a .bin file, a clip archive or a token file")
    s.add_argument("file")
    s.add_argument("--json", action="store_true", help="print JSON instead of text")
    s.set_defaults(fn=_info)


def _add_token_parsers(sub) -> None:
    """Tokens, frames and export-onnx (compressor.cli.tokens)."""
    s = sub.add_parser("tokens", help="frames (images, folders, videos) or .bin files -> a .npy of 14-bit tokens + "
                                      "JSON sidecar")
    s.add_argument("inputs", nargs="+", help="image files, folders of images, or videos (PyAV); or .bin files and clip "
                                             "archives, whose tokens are read exactly as coded, with no network")
    s.add_argument("--out", required=True, help="the .npy file to write (its sidecar: the same name with .json)")
    s.add_argument("--model", default=None,
                   help=f"for frames (default: {DEFAULT_MODEL}); for .bin files, only a checkpoint not shipped")
    s.add_argument("--no-resize", action="store_true",
                   help="keep the frames' own size (all must match) instead of the model's 128x256 frame")
    s.add_argument("--fps", type=_fps, default=None, help="frame rate to record (default: the first video's)")
    s.add_argument("--frames", default=None, metavar="A:B",
                   help="one clip archive: only frames A to B-1 (decoded from the keyframe before A)")
    s.add_argument("--threads", type=_positive, default=None,
                   help="torch threads for frames (default: all cores; on a busy machine 1 can be faster)")
    _add_device_arg(s, "where the encoder runs, for frames")
    s.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    s.set_defaults(fn=_tokens)

    s = sub.add_parser("frames", help="a token file -> a video (.mp4, .mkv) or a folder of PNG frames")
    s.add_argument("tokens", help="a .npy written by compressor tokens (its .json sidecar beside it)")
    s.add_argument("--out", required=True, help="a .mp4 / .mkv (lossless) file or a new folder")
    s.add_argument("--model", default=None, help="default: the shipped model the sidecar names")
    _add_device_arg(s, "where the decoder runs")
    s.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    s.set_defaults(fn=_frames)

    s = sub.add_parser("export-onnx", help="write a model's encoder and decoder as ONNX (tokens without torch)")
    s.add_argument("model", help="shipped model name or .safetensors path")
    s.add_argument("outdir", help="folder to write encoder.onnx, decoder.onnx and model.json into")
    s.set_defaults(fn=_export_onnx)


def _add_measure_parsers(sub) -> None:
    """Models, eval and speed (compressor.cli.files)."""
    s = sub.add_parser("models", help="list the shipped models")
    s.add_argument("--json", action="store_true", help="print JSON instead of text")
    s.set_defaults(fn=_models)

    s = sub.add_parser("eval", help="compress and decompress images; print bytes and PSNR")
    s.add_argument("paths", nargs="+", help="image files or folders")
    s.add_argument("--model", default=None, help=f"shipped model name or .safetensors path (default: {DEFAULT_MODEL})")
    s.add_argument("--json", action="store_true", help="print JSON instead of text")
    s.add_argument("--record", metavar="SET_NAME",
                   help="store the results in the model card of the checkpoint named by --model (rewrites it)")
    _add_search_args(s, "encode with")
    s.add_argument("--no-tile", action="store_true", help="code large images whole (see compress)")
    s.add_argument("--no-overlap", action="store_true", help="cut large images in tiles side by side (see compress)")
    _add_device_arg(s)
    s.set_defaults(fn=_eval)

    s = sub.add_parser("speed", help="measure batched encode and decode frames/s")
    s.add_argument("--model", default=DEFAULT_MODEL)
    s.add_argument("--batch", type=_positive, default=32)
    s.add_argument("--frames", type=_positive, default=256)
    s.add_argument("--threads", type=_positive, default=None, help="torch threads (default: all cores)")
    s.add_argument("--height", type=_positive, default=128)
    s.add_argument("--width", type=_positive, default=256)
    s.add_argument("--repeats", type=_positive, default=5)
    _add_search_args(s, "time encoding with")
    _add_device_arg(s, "where the networks run (on a GPU, pass a larger --batch, e.g. 1024)")
    s.add_argument("--json", action="store_true", help="print JSON instead of text")
    s.set_defaults(fn=_speed)


def _add_train_parser(sub) -> None:
    """Train (compressor.cli.training)."""
    s = sub.add_parser("train", help="train a codec (rate-distortion, resumable)")
    s.add_argument("--encoder", help=f"architecture name from the registry ({', '.join(ARCHITECTURES)})")
    s.add_argument("--decoder", help="decoder architecture (default: same as the encoder)")
    s.add_argument("--data", action="append", help="folder of training images (repeatable)")
    s.add_argument("--steps", type=_positive, help="train up to this step")
    s.add_argument("--minutes", type=_above_zero, help="train for about this long instead (data preparation included): "
                                                 "the step count is set by a speed probe at the start")
    s.add_argument("--out", help="run directory to create")
    s.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint")
    s.add_argument("--config", help="JSON file with TrainConfig fields")
    s.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config field (repeatable)")
    s.set_defaults(fn=_train)


def _add_bench_parser(sub) -> None:
    """Bench (compressor.cli.bench)."""
    s = sub.add_parser("bench", help="models and classic codecs side by side: JSON, markdown, plots")
    s.add_argument("--images", action="append", help="image folder (repeatable; at least one)")
    s.add_argument("--models", help="comma-separated names or .safetensors paths (default: all shipped)")
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument("--no-classic", action="store_true", help="skip the classic codecs")
    s.add_argument("--scaling", action="store_true", help="also time 128x256 .. 1024x2048 (slow)")
    s.add_argument("--threads", type=_positive, default=None, help="torch threads (default: all cores)")
    s.add_argument("--speed-frames", type=_positive, default=128)
    _add_search_args(s, "encode every model with")
    _add_device_arg(s)
    s.set_defaults(fn=_bench)


def _add_checkpoint_parsers(sub) -> None:
    """Export and fit-context (compressor.cli.training)."""
    s = sub.add_parser("export", help="freeze a training run into a release checkpoint")
    s.add_argument("run_dir")
    s.add_argument("output", help="the .safetensors file to write (a bare NAME becomes NAME.safetensors)")
    s.add_argument("--name", default=None, help="model name in the card (default: the file's stem)")
    s.set_defaults(fn=_export)

    s = sub.add_parser("fit-context", help="fit a checkpoint's context tables on image folders; write a new checkpoint")
    s.add_argument("checkpoint", help="registered name or .safetensors path")
    s.add_argument("--images", nargs="+", required=True, metavar="DIR", help="folders of training images or frames")
    s.add_argument("--out", help="the .safetensors file to write")
    s.add_argument("--in-place", action="store_true", help="rewrite the checkpoint itself (atomically)")
    s.add_argument("--frames", type=_positive, default=None, help="fit on at most N frames (default: all)")
    s.add_argument("--exclude", action="append", metavar="GLOB",
                   help="leave out files whose names match (repeatable), e.g. held-out sequences")
    s.add_argument("--net", action="store_true", help="also fit a context net (file format version 3; CPU minutes)")
    s.add_argument("--keep-tables", action="store_true",
                   help="keep the checkpoint's own tables (files coded with them still decode); with --net")
    s.add_argument("--crops", type=_steps, default=3, help="random crops of each file added to the net's frames (default 3)")
    s.add_argument("--net-steps", type=_positive, default=5000, help="the net's training steps (default 5000)")
    s.set_defaults(fn=_fit_context)


def compressor_main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="compressor", description="Learned image compression at extreme rates.")
    sub = p.add_subparsers(dest="command", required=True)
    for add in (_add_info_parser, _add_token_parsers, _add_measure_parsers, _add_train_parser, _add_bench_parser,
                _add_checkpoint_parsers):  # in this order in --help
        add(sub)
    args = p.parse_args(argv)
    return _run(f"compressor {args.command}", args.fn, args)
