"""The commands that make checkpoints: `compressor train`, `export` and `fit-context`."""
from __future__ import annotations

import json
from pathlib import Path

from compressor.cli.common import UserError, _check_paths


def _train(args) -> None:
    from compressor.extras import need

    for module in ("compressai", "tqdm", "matplotlib"):  # before anything is written
        need(module, "compressor train", "train")
    from compressor.training.config import TrainConfig, apply_overrides, check_config
    from compressor.training.run import train

    if args.resume:
        if args.out:
            raise UserError(f"--resume {args.resume} goes on in that folder; drop --out")
        run_dir = Path(args.resume)
        saved = run_dir / "config.json"
        if not (run_dir / "state.safetensors").is_file() or not saved.is_file():
            raise UserError(f"nothing to resume in {run_dir} (no state.safetensors and config.json)")
        cfg = TrainConfig.from_dict(json.loads(saved.read_text()))
        if args.encoder or args.decoder:
            raise UserError(f"a resumed run keeps its architecture ({cfg.model.encoder} / {cfg.model.decoder}); "
                            "drop --encoder / --decoder")
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
    if args.steps is not None:
        overrides.append(f"steps={args.steps}")
    resumed = cfg.to_dict() if args.resume else None
    cfg = apply_overrides(cfg, overrides)
    if resumed is not None:  # the card counts frames as steps x batch and names one architecture
        changed = [k for k in ("batch_size", "model", "crop") if cfg.to_dict()[k] != resumed[k]]
        if changed:
            raise UserError(f"a resumed run keeps its {', '.join(changed)}; export it and start a new run "
                            f"from it (--set init_from=EXPORTED.safetensors)")
    if args.data:
        cfg.data = [str(Path(d)) for d in args.data]
    check_config(cfg)
    missing = [d for d in cfg.data if not Path(d).expanduser().exists()]
    if missing:  # checked before the run folder is made, so a typo leaves nothing behind
        raise UserError(f"training data not found: {', '.join(missing)}")
    if not args.resume:
        from compressor.training.data import find_images, split_files

        files = find_images([Path(d).expanduser() for d in cfg.data])  # "no images or videos found in ..."
        if not cfg.val_data:
            split_files(files)  # one file leaves nothing to train on once validation is held out
    if args.minutes is not None and (args.steps is not None or args.resume):  # argparse keeps it above 0
        raise UserError("--minutes is for a new run without --steps")
    train(cfg, run_dir, resume=bool(args.resume), seconds=args.minutes * 60 if args.minutes else None)


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
    if args.keep_tables and not args.net:
        raise UserError("--keep-tables keeps the tables while --net fits a net: give --net too")
    entry = fit_context(src, args.images, out, frames=args.frames, exclude=args.exclude or [], net=args.net,
                        keep_tables=args.keep_tables, crops=args.crops, net_steps=args.net_steps)
    temporal = (f"temporal on {entry['temporal']['pairs']} pairs" if entry.get("temporal") else
                "no temporal table (no numbered frame sequences: clips will code each frame alone)")
    tables = ("its own tables kept" if args.keep_tables else
              f"spatial table on {entry['spatial']['frames']} frames, {temporal}")
    net = f", context net on {entry['net']['frames']} frames" if "net" in entry else ""
    print(f"wrote {out} (model id {entry['model_id']}, version-1 files of {entry['legacy_model_id']} still decode): "
          f"{tables}{net}, {entry['seconds']:.0f} s; its card's results are cleared (compressor eval --record)")
