"""Command-line entry points: `compress`, `decompress` and `compressor <subcommand>`.

User errors print one line on stderr and exit with status 1 (2 for bad arguments); outputs are
written to a temporary file and renamed into place, so a failure leaves no partial file, and the
input is never overwritten.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from compressor.atomic import write_atomic
from compressor.checkpoint import warm_start_note
from compressor.errors import CompressorError
from compressor.registry import ARCHITECTURES
from compressor.zoo import DEFAULT_MODEL


class UserError(CompressorError):
    """A bad command line or file that is not the library's concern (same path twice, say)."""


def _run(prog: str, fn, args) -> int:
    try:
        return fn(args) or 0
    except CompressorError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as e:  # unreadable files, full disks, bad numbers
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


def _check_paths(src: Path, dst: Path) -> None:
    if not src.is_file():
        raise UserError(f"input not found: {src}")
    if dst.exists() and dst.resolve() == src.resolve():
        raise UserError(f"output {dst} is the input; refusing to overwrite it")
    if dst.is_dir():
        raise UserError(f"output {dst} is a folder; give a file name")


# --- compress / decompress ------------------------------------------------------------------------
def _compress(args) -> None:
    import compressor

    src, dst = Path(args.input), Path(args.output)
    from compressor.video_cli import compress_clip, is_clip_input

    if is_clip_input(src):
        if not src.exists():
            raise UserError(f"input not found: {src}")
        return compress_clip(args)
    _check_paths(src, dst)
    codec = compressor.load(args.model)
    data = codec.encode(src, refine=args.refine, flips=args.flips, tile=not args.no_tile, overlap=not args.no_overlap)
    write_atomic(dst, data)
    if not args.quiet:
        from compressor import bitstream

        header, _ = bitstream.unpack(data)
        bpp = 8 * len(data) / (header.height * header.width)
        print(f"{src} -> {dst}: {len(data)} bytes ({bpp:.4f} bpp), {header.height}x{header.width}, model {codec.name}")


def _image_format(path: Path) -> str:
    from PIL import Image

    Image.init()
    fmt = Image.EXTENSION.get(path.suffix.lower())
    if fmt is None:
        raise UserError(f"cannot tell the image format of {path}; use .png, .jpg, .webp, ...")
    if fmt not in Image.SAVE:  # Pillow reads some formats (PSD, CUR, FITS, ...) it cannot write
        raise UserError(f"cannot write {fmt} images ({path}); use .png, .jpg, .webp, ...")
    return fmt


def _decompress(args) -> int | None:
    import compressor

    src, dst = Path(args.input), Path(args.output)
    if src.is_file():
        from compressor.clip import is_clip

        with open(src, "rb") as f:
            if is_clip(f.read(4)):
                from compressor.video_cli import decompress_clip

                return decompress_clip(args)
    if args.frames is not None:
        raise UserError(f"--frames is for clip archives; {src} is not one")
    _check_paths(src, dst)
    fmt = _image_format(dst)
    data = src.read_bytes()
    image = compressor.decode(data, model=args.model)
    write_atomic(dst, writer=lambda tmp: image.save(tmp, format=fmt))
    if not args.quiet:
        print(f"{src} -> {dst}: {image.height}x{image.width}")


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


def _add_search_args(p: argparse.ArgumentParser, what: str) -> None:
    """--refine and --flips, the encoder-side searches (compressor.search), for compress, eval and speed."""
    search = p.add_mutually_exclusive_group()
    search.add_argument("--refine", type=_steps, default=0, metavar="STEPS",
                        help=f"{what} STEPS Adam steps of search for a better code (slow; 30 gave vit-distil +0.5 dB)")
    search.add_argument("--flips", type=_steps, default=0, metavar="ROUNDS",
                        help=f"{what} ROUNDS rounds of greedy bit flips (1 gave vit-distil +0.17 dB, encoding 41 "
                             "frames/s against 517 plain; gains stop near 5)")


def compress_main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="compress", description="Compress an image to a .bin file, or a video or "
                                "folder of frames to one clip archive.")
    p.add_argument("input", help="image file (PNG, JPEG, WebP, ...), or a video or folder of frames for a clip")
    p.add_argument("output", help=".bin file to write")
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"shipped model name or .safetensors path (default: {DEFAULT_MODEL})")
    _add_search_args(p, "search with")
    p.add_argument("--no-tile", action="store_true",
                   help="vit/hybrid: code an image larger than 128x256 whole, not in tiles (slower, much worse)")
    p.add_argument("--no-overlap", action="store_true",
                   help="vit/hybrid: cut a large image in tiles side by side, not overlapping (3.5x faster, 0.2 dB worse)")
    clip = p.add_argument_group("clips (a video or a folder of frames)")
    clip.add_argument("--keyframe-interval", type=_positive, default=30, metavar="K",
                      help="code every Kth frame without the previous one, the start of any random access (default 30)")
    clip.add_argument("--no-resize", action="store_true", help="keep the frames' own size (all must match), "
                      "instead of resizing them to the model's 128x256 frame (Lanczos cover, centre crop)")
    clip.add_argument("--fps", type=float, default=None, help="frame rate to record for a folder (default: the video's)")
    p.add_argument("-q", "--quiet", action="store_true")
    return _run("compress", _compress, p.parse_args(argv))


def decompress_main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="decompress", description="Decompress a .bin file to an image.")
    p.add_argument("input", help=".bin file")
    p.add_argument("output", help="image file to write; the format follows the extension (for a clip: a .mp4, "
                                  ".mkv (lossless) or a new folder of PNG frames)")
    p.add_argument("--model", default=None, help="model to decode with (default: the shipped model named in the file)")
    p.add_argument("--frames", default=None, metavar="A:B",
                   help="clip archives: decode only frames A to B-1 (seeks to the keyframe before A)")
    p.add_argument("-q", "--quiet", action="store_true")
    return _run("decompress", _decompress, p.parse_args(argv))


# --- compressor subcommands -----------------------------------------------------------------------
def _info(args) -> None:
    from compressor import bitstream
    from compressor.zoo import find_shipped, name_of

    path = Path(args.file)
    if not path.is_file():
        raise UserError(f"file not found: {path}")
    from compressor.clip import is_clip

    with open(path, "rb") as f:
        clip = is_clip(f.read(4))
    if clip:
        from compressor.video_cli import clip_info

        info = clip_info(path)
        if args.json:
            print(json.dumps(info))
        else:
            for k, v in info.items():
                print(f"{k:>20}: {v}")
        return
    data = path.read_bytes()
    header, payload = bitstream.unpack(data)
    shipped = find_shipped(header.model_id, header.version)
    model = name_of(shipped) if shipped else None
    info = {
        "file": str(path),
        "bytes": len(data),
        "header_bytes": len(data) - len(payload),
        "payload_bytes": len(payload),
        "version": header.version,
        "payload": "raw bits" if header.raw else "context-coded" if header.context else "entropy-coded",
        "tiled": header.tiled,
        "overlap": header.overlap,
        "size": f"{header.height}x{header.width}",
        "bpp": round(8 * len(data) / (header.height * header.width), 5),
        "model_id": f"{header.model_id:04x}",
        "model": model or "not a shipped model",
    }
    if args.json:
        print(json.dumps(info))
    else:
        for k, v in info.items():
            print(f"{k:>14}: {v}")


def _tokens(args) -> None:
    from compressor.video_cli import tokens_command

    tokens_command(args)


def _frames(args) -> None:
    from compressor.video_cli import frames_command

    frames_command(args)


def _export_onnx(args) -> None:
    from compressor.video_cli import export_onnx_command

    export_onnx_command(args)


def _models(args) -> None:
    import compressor
    from compressor.zoo import normalise_card

    cards = compressor.list_models()
    if args.json:  # cards as shipped, with any build-machine path replaced by a data-set or model name
        print(json.dumps([{**normalise_card(c.card), "name": c.name, "model_id": f"{c.model_id:04x}"} for c in cards]))
        return
    if not cards:
        print("no shipped models found")
        return
    sets = ("kodak-frames-128x256", "driving-frames-128x256")
    print(f"{'name':22}{'arch':9}{'params':>6}  {'kodak-frames':>16}  {'driving-frames':>16}")
    for c in cards:
        results = c.card.get("results", {})
        cells = [f"{results[s]['mean_bytes']:.1f} B {results[s]['mean_psnr']:.2f} dB" if s in results else "-"
                 for s in sets]
        print(f"{c.name:22}{c.config['encoder']:9}{c.card.get('parameters', 0) / 1e6:5.2f}M  "
              f"{cells[0]:>16}  {cells[1]:>16}{'  (default)' if c.name == DEFAULT_MODEL else ''}")
    print("file bytes and PSNR: means over the 24 frames of each eval set; more: compressor models --json")


def _eval(args) -> None:
    from compressor.measure.evaluate import evaluate_paths, record_results

    result = evaluate_paths(args.paths, model=args.model, refine=args.refine, flips=args.flips, tile=not args.no_tile,
                            overlap=not args.no_overlap, device=args.device, verbose=not args.json)
    if args.json:
        print(json.dumps(result))
    if args.record:
        record_results(args.model, args.record, result)
        print(f"recorded as '{args.record}' in the model card of {args.model}")


def _speed(args) -> None:
    from compressor.measure.evaluate import measure_speed

    r = measure_speed(args.model, batch=args.batch, frames=args.frames, threads=args.threads,
                      size=(args.height, args.width), repeats=args.repeats, refine=args.refine, flips=args.flips,
                      device=args.device)
    print(json.dumps(r) if args.json else
          f"{r['model']}: {r['size']} batch {r['batch']}, {r['threads']} threads, {r['device']}"
          f"{f', refine {args.refine}' if args.refine else ''}{f', flips {args.flips}' if args.flips else ''}: "
          f"encode {r['encode_fps']:.1f} frames/s, decode {r['decode_fps']:.1f} frames/s (median of {r['repeats']})")


def _train(args) -> None:
    from compressor.extras import need

    for module in ("compressai", "tqdm", "matplotlib"):  # before anything is written
        need(module, "compressor train", "train")
    from compressor.training.config import TrainConfig, apply_overrides, check_config
    from compressor.training.run import train

    if args.resume:
        run_dir = Path(args.resume)
        saved = run_dir / "config.json"
        if not (run_dir / "state.safetensors").is_file() or not saved.is_file():
            raise UserError(f"nothing to resume in {run_dir} (no state.safetensors and config.json)")
        cfg = TrainConfig.from_dict(json.loads(saved.read_text()))
    else:
        if not args.out:
            raise UserError("--out RUN_DIR is required (or --resume RUN_DIR)")
        run_dir = Path(args.out)
        if (run_dir / "state.safetensors").exists():
            raise UserError(f"{run_dir} already holds a run; use --resume {run_dir} to continue it")
        cfg = TrainConfig()
        if args.config:
            try:
                fields = json.loads(Path(args.config).read_text())
            except ValueError as e:
                raise UserError(f"{args.config} is not valid JSON: {e}") from None
            if not isinstance(fields, dict):
                raise UserError(f"{args.config} must hold a JSON object of TrainConfig fields")
            try:
                cfg = TrainConfig.from_dict(fields)
            except (TypeError, ValueError) as e:
                raise UserError(f"{args.config}: {e}") from None
    overrides = list(args.set or [])
    if args.encoder:
        overrides.append(f"model.encoder={args.encoder}")
        if not args.decoder:
            overrides.append(f"model.decoder={args.encoder}")
    if args.decoder:
        overrides.append(f"model.decoder={args.decoder}")
    if args.steps:
        overrides.append(f"steps={args.steps}")
    cfg = apply_overrides(cfg, overrides)
    if args.data:
        cfg.data = [str(Path(d)) for d in args.data]
    check_config(cfg)
    missing = [d for d in cfg.data if not Path(d).expanduser().exists()]
    if missing:  # checked before the run folder is made, so a typo leaves nothing behind
        raise UserError(f"training data not found: {', '.join(missing)}")
    if args.minutes is not None and (args.steps or args.resume or args.minutes <= 0):
        raise UserError("--minutes takes a positive number, for a new run without --steps")
    train(cfg, run_dir, resume=bool(args.resume), seconds=args.minutes * 60 if args.minutes else None)


def _bench(args) -> None:
    from compressor.extras import need

    need("matplotlib", "compressor bench", "bench")
    from compressor.measure.bench import run_bench

    images = args.images or []  # no default: data folders live outside the package
    if not images:
        raise UserError("no image folders: pass --images DIR (repeatable)")
    missing = [d for d in images if not Path(d).is_dir()]
    if missing:  # before minutes of speed measurements, and before the output folder is made
        raise UserError(f"image folder not found: {', '.join(missing)}")
    if args.models:
        models = [m for m in args.models.split(",") if m]
    else:
        from compressor.zoo import shipped_models

        models = list(shipped_models())  # the default first
    run_bench(images, models, args.out, classic=not args.no_classic, scaling=args.scaling, threads=args.threads,
              speed_frames=args.speed_frames)
    print(f"wrote {args.out}/results.json, results.md and plots")


def _export(args) -> None:
    from compressor.extras import need

    need("compressai", "compressor export", "train")
    from compressor.training.export import export_release

    output = Path(args.output)
    if output.suffix != ".safetensors":  # `compressor export RUN mycodec` writes mycodec.safetensors
        output = output.with_name(output.name + ".safetensors")
    state = Path(args.run_dir) / "state.safetensors"
    if not state.is_file():
        raise UserError(f"no training state in {args.run_dir} (expected state.safetensors)")
    _check_paths(state, output)  # never the run's own state, nor a folder
    if not output.parent.is_dir():
        raise UserError(f"output folder does not exist: {output.parent}")
    model_id = export_release(args.run_dir, output, name=args.name or output.stem)
    print(f"wrote {output} (model id {model_id:04x}); use it with: compress --model {output} in.png out.bin")


def _fit_context(args) -> None:
    from compressor.zoo import resolve
    from compressor.context_fit import fit_context

    src = resolve(args.checkpoint)
    out = Path(args.out) if args.out else None
    if out is None and not args.in_place:
        raise UserError("give --out OUT.safetensors, or --in-place to rewrite the checkpoint itself")
    if out is not None and args.in_place:
        raise UserError("give --out or --in-place, not both")
    out = out or src
    if out.suffix != ".safetensors":
        raise UserError(f"output must be a .safetensors file, not {out}")
    if not args.in_place and out.exists() and out.resolve() == src.resolve():
        raise UserError(f"output {out} is the input; pass --in-place to rewrite it")
    if out.is_dir() or not out.parent.is_dir():
        raise UserError(f"output {out} is a folder or its folder does not exist")
    for folder in args.images:
        if not Path(folder).is_dir():
            raise UserError(f"image folder not found: {folder}")
    entry = fit_context(src, args.images, out, frames=args.frames, exclude=args.exclude or [])
    print(f"wrote {out} (model id {entry['model_id']}, version-1 files of {entry['legacy_model_id']} still decode): "
          f"spatial table on {entry['spatial']['frames']} frames, temporal on {entry['temporal']['pairs']} pairs, "
          f"{entry['seconds']:.0f} s")


def compressor_main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="compressor", description="Learned image compression at extreme rates.")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("info", help="describe a .bin file or a clip archive")
    s.add_argument("file")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=_info)

    s = sub.add_parser("tokens", help="frames (images, folders, videos) -> a .npy of 14-bit tokens + JSON sidecar")
    s.add_argument("inputs", nargs="+", help="image files, folders of images, or videos (PyAV)")
    s.add_argument("--out", required=True, help="the .npy file to write (its sidecar: the same name with .json)")
    s.add_argument("--model", default=DEFAULT_MODEL)
    s.add_argument("--no-resize", action="store_true",
                   help="keep the frames' own size (all must match) instead of the model's 128x256 frame")
    s.add_argument("--fps", type=float, default=None, help="frame rate to record (default: the first video's)")
    s.add_argument("--threads", type=_positive, default=None,
                   help="torch threads (default: all cores; on a busy machine 1 can be faster)")
    s.add_argument("-q", "--quiet", action="store_true")
    s.set_defaults(fn=_tokens)

    s = sub.add_parser("frames", help="a token file -> a video (.mp4, .mkv) or a folder of PNG frames")
    s.add_argument("tokens", help="a .npy written by compressor tokens (its .json sidecar beside it)")
    s.add_argument("--out", required=True, help="a .mp4 / .mkv (lossless) file or a new folder")
    s.add_argument("--model", default=None, help="default: the shipped model the sidecar names")
    s.add_argument("-q", "--quiet", action="store_true")
    s.set_defaults(fn=_frames)

    s = sub.add_parser("export-onnx", help="write a model's encoder and decoder as ONNX (tokens without torch)")
    s.add_argument("model", help="shipped model name or .safetensors path")
    s.add_argument("outdir", help="folder to write encoder.onnx, decoder.onnx and model.json into")
    s.set_defaults(fn=_export_onnx)

    s = sub.add_parser("models", help="list the shipped models")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=_models)

    s = sub.add_parser("eval", help="compress and decompress images; print bytes and PSNR")
    s.add_argument("paths", nargs="+", help="image files or folders")
    s.add_argument("--model", default=DEFAULT_MODEL)
    s.add_argument("--json", action="store_true")
    s.add_argument("--record", metavar="SET_NAME", help="store the results in the checkpoint's model card")
    _add_search_args(s, "encode with")
    s.add_argument("--no-tile", action="store_true", help="code large images whole (see compress)")
    s.add_argument("--no-overlap", action="store_true", help="cut large images in tiles side by side (see compress)")
    s.add_argument("--device", default="cpu", help="cpu or cuda[:N]: where the networks run (default: cpu)")
    s.set_defaults(fn=_eval)

    s = sub.add_parser("speed", help="measure batched encode and decode frames/s")
    s.add_argument("--model", default=DEFAULT_MODEL)
    s.add_argument("--batch", type=_positive, default=32)
    s.add_argument("--frames", type=_positive, default=256)
    s.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    s.add_argument("--height", type=_positive, default=128)
    s.add_argument("--width", type=_positive, default=256)
    s.add_argument("--repeats", type=_positive, default=5)
    _add_search_args(s, "time encoding with")
    s.add_argument("--device", default="cpu", help="cpu or cuda[:N] (on a GPU, pass a larger --batch, e.g. 1024)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=_speed)

    s = sub.add_parser("train", help="train a codec (rate-distortion, resumable)")
    s.add_argument("--encoder", help=f"architecture name from the registry ({', '.join(ARCHITECTURES)})")
    s.add_argument("--decoder", help="decoder architecture (default: same as the encoder)")
    s.add_argument("--data", action="append", help="folder of training images (repeatable)")
    s.add_argument("--steps", type=int, help="train up to this step")
    s.add_argument("--minutes", type=float, help="train for about this long instead (data preparation included): "
                                                 "the step count is set by a speed probe at the start")
    s.add_argument("--out", help="run directory to create")
    s.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint")
    s.add_argument("--config", help="JSON file with TrainConfig fields")
    s.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config field (repeatable)")
    s.set_defaults(fn=_train)

    s = sub.add_parser("bench", help="models and classic codecs side by side: JSON, markdown, plots")
    s.add_argument("--images", action="append", help="image folder (repeatable; at least one)")
    s.add_argument("--models", help="comma-separated names or .safetensors paths (default: all shipped)")
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument("--no-classic", action="store_true", help="skip the classic codecs")
    s.add_argument("--scaling", action="store_true", help="also time 128x256 .. 1024x2048 (slow)")
    s.add_argument("--threads", type=int, default=None)
    s.add_argument("--speed-frames", type=int, default=128)
    s.set_defaults(fn=_bench)

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
    s.set_defaults(fn=_fit_context)

    args = p.parse_args(argv)
    return _run(f"compressor {args.command}", args.fn, args)


if __name__ == "__main__":
    sys.exit(compressor_main())
