"""The commands on single files and models: `compress` / `decompress` of an image, `compressor info`,
`models`, `eval` and `speed` (clip archives are handed to `compressor.cli.clips`)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from compressor.atomic import write_atomic
from compressor.cli.common import UserError, _check_compressed_output, _check_paths, _image_format
from compressor.zoo import DEFAULT_MODEL


def _compress(args) -> None:
    import compressor

    src, dst = Path(args.input), Path(args.output)
    from compressor.cli.clips import compress_clip, compress_tokens, is_clip_input

    if src.suffix.lower() == ".npy":  # a token file: its tokens, entropy coded into one clip archive
        return compress_tokens(args)
    if args.rate_weight and not args.flips:
        raise UserError("--rate-weight weights the --flips search: give --flips ROUNDS too")
    if is_clip_input(src):
        if not src.exists():
            raise UserError(f"input not found: {src}")
        return compress_clip(args)
    _check_paths(src, dst)
    _check_compressed_output(dst)
    codec = compressor.load(args.model, device=args.device)
    data = codec.encode(src, refine=args.refine, flips=args.flips, tile=not args.no_tile, overlap=not args.no_overlap,
                        rate_weight=args.rate_weight)
    write_atomic(dst, data)
    if not args.quiet:
        from compressor import bitstream

        header, _ = bitstream.unpack(data)
        bpp = 8 * len(data) / (header.height * header.width)
        print(f"{src} -> {dst}: {len(data)} bytes ({bpp:.4f} bpp), {header.height}x{header.width}, model {codec.name}")


def _decompress(args) -> int | None:
    from compressor.codec import codec_for

    src, dst = Path(args.input), Path(args.output)
    if src.is_file():
        from compressor.clip import is_clip

        with open(src, "rb") as f:
            if is_clip(f.read(4)):
                from compressor.cli.clips import decompress_clip

                return decompress_clip(args)
    if args.frames is not None:
        raise UserError(f"--frames is for clip archives; {src} is not one")
    _check_paths(src, dst)
    fmt = _image_format(dst)
    data = src.read_bytes()
    image = codec_for(data, args.model, args.device).decode(data)
    write_atomic(dst, writer=lambda tmp: image.save(tmp, format=fmt))
    if not args.quiet:
        print(f"{src} -> {dst}: {image.height}x{image.width}")


def _info(args) -> None:
    from compressor import bitstream
    from compressor.zoo import find_shipped, name_of

    path = Path(args.file)
    if not path.is_file():
        raise UserError(f"{path} is a folder; give a file" if path.is_dir() else f"file not found: {path}")
    from compressor.clip import is_clip

    with open(path, "rb") as f:
        clip = is_clip(f.read(4))
    if clip or path.suffix.lower() == ".npy":
        from compressor.cli.clips import clip_info
        from compressor.cli.tokens import token_file_info

        info = clip_info(path) if clip else token_file_info(path)
        if args.json:
            print(json.dumps(info))
        else:
            for k, v in info.items():
                print(f"{k:>20}: {v}")
        return
    data = path.read_bytes()
    header, payload = bitstream.unpack(data)
    shipped = find_shipped(header.model_id, header.coding_version)
    model = name_of(shipped) if shipped else None
    info = {
        "file": str(path),
        "bytes": len(data),
        "header_bytes": len(data) - len(payload),
        "payload_bytes": len(payload),
        "version": header.version,
        "payload": ("raw bits" if header.raw else "context net" if header.net else "context-coded" if header.context
                    else "entropy-coded"),
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
    print("file bytes and PSNR: means over 24 Kodak and 115 driving frames; more: compressor models --json")


def _eval(args) -> None:
    from compressor.measure.evaluate import evaluate_paths, record_results

    if args.record is not None and not args.record.strip():
        raise UserError("--record needs a set name")
    if args.record and args.model is None:  # never rewrite the shipped default's file unasked
        raise UserError("--record rewrites a checkpoint's model card: name the checkpoint with --model")
    args.model = args.model or DEFAULT_MODEL
    result = evaluate_paths(args.paths, model=args.model, refine=args.refine, flips=args.flips, tile=not args.no_tile,
                            overlap=not args.no_overlap, device=args.device, verbose=not args.json)
    if args.json:
        print(json.dumps(result))
    if args.record:
        record_results(args.model, args.record, result)
        print(f"recorded as '{args.record}' in the model card of {args.model}",
              file=sys.stderr if args.json else sys.stdout)  # stdout stays one JSON document


def _speed(args) -> None:
    from compressor.measure.evaluate import measure_speed

    r = measure_speed(args.model, batch=args.batch, frames=args.frames, threads=args.threads,
                      size=(args.height, args.width), repeats=args.repeats, refine=args.refine, flips=args.flips,
                      device=args.device)
    print(json.dumps(r) if args.json else
          f"{r['model']}: {r['size']} batch {r['batch']}, {r['threads']} threads, {r['device']}"
          f"{f', refine {args.refine}' if args.refine else ''}{f', flips {args.flips}' if args.flips else ''}: "
          f"encode {r['encode_fps']:.1f} frames/s, decode {r['decode_fps']:.1f} frames/s (median of {r['repeats']})")
