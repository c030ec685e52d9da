"""`compressor bench`: models and classic codecs side by side."""
from __future__ import annotations

from pathlib import Path

from compressor.cli.common import UserError


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
    from compressor.measure.evaluate import expand_paths

    for folder in images:  # "no images in DIR", before the speed measurements
        expand_paths([folder])
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise UserError(f"--out {args.out} is a file; give a folder")
    if args.models:
        models = [m for m in args.models.split(",") if m]
    else:
        from compressor.zoo import shipped_models

        models = list(shipped_models())  # the default first
    run_bench(images, models, args.out, classic=not args.no_classic, scaling=args.scaling, threads=args.threads,
              speed_frames=args.speed_frames, refine=args.refine, flips=args.flips, device=args.device)
    print(f"wrote {args.out}/results.json, results.md and plots")
