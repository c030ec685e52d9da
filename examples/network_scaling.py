"""How each architecture's networks cost grows with the frame, on a GPU or the CPU: frames/s, megapixels/s
and peak memory of the encoder (pixels -> symbols) and the decoder (symbols -> pixels), batched, per size.

The networks alone: entropy coding (on the CPU, the same for every architecture) is left out, so this is
the part of the cost the architecture decides. Global-attention models (`vit`, `hybrid`) are run as the
codec runs them, in overlapping windows of their 128x256 training frame (`compressor.tiling`), and with
`--whole` also over the whole grid at once, where attention's cost grows with the square of the tokens.

    python examples/network_scaling.py --device cuda              # the five shipped models
    python examples/network_scaling.py --models vit.default --device cpu --sizes 128x256,256x512 --batch-pixels 4194304
    python examples/network_scaling.py --models cfg/vit.json ...  # a model config alone (random weights: the
                                                                  # speed does not depend on them)

Each size gets batch max(1, batch-pixels / (H x W)) frames (default: 256 frames of 128x256 on a GPU, 32 on
the CPU); the time is the median of --repeats passes after two warm-up passes, under bf16 autocast where
the device computes bf16 fast (as the codec decodes there). `--out FILE.json` keeps the numbers.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from compressor.bottleneck import latent_from_symbols, symbols_from_latent
from compressor.device import check_device, cpu_name, fast_bf16
from compressor.measure.scaling import fitted_exponent
from compressor.model import CompressionModel, ModelConfig, load_model
from compressor import tiling
from compressor.tiling import Tiling
from compressor.zoo import resolve, shipped_models

TRAINING_FRAME = (128, 256)  # every shipped model's crop: the window global attention is coded in


def build(spec: str) -> tuple[str, CompressionModel]:
    """A shipped name, a .safetensors path, or a JSON model config (random weights) -> (label, model)."""
    if spec.endswith(".json"):
        config = ModelConfig.from_dict(json.loads(Path(spec).read_text()))
        return Path(spec).stem, CompressionModel.from_config(config).eval()
    model, _ = load_model(resolve(spec))
    return spec, model


def timed(fn, device: torch.device, repeats: int) -> float:
    """Median seconds of fn() after two warm-up calls, the device synchronised around each."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(2):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_mb(fn, device: torch.device) -> float | None:
    """Peak device memory (MB) one call of fn() allocates above what was held before (GPU only)."""
    if device.type != "cuda":
        return None
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2**20


def measure(model: CompressionModel, size: tuple[int, int], batch: int, device: torch.device, repeats: int,
            whole: bool) -> dict:
    h, w = size
    gh, gw = model.latent_grid(h, w)
    cells = (TRAINING_FRAME[0] // model.stride, TRAINING_FRAME[1] // model.stride)
    tiling = Tiling(cells) if model.global_attention and not whole and (gh > cells[0] or gw > cells[1]) else None
    x = torch.rand(batch, 3, h, w, device=device)  # (B, 3, H, W)
    bf16 = fast_bf16(device)

    def encode():
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            return symbols_from_latent(model.encode_latent(model.pad(x), tiling).float())  # (B, C, gh, gw)

    symbols = encode()

    def decode():
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            return model.decode_latent(latent_from_symbols(symbols, torch.float32), tiling)  # (B, 3, 16gh, 16gw)

    enc, dec = timed(encode, device, repeats), timed(decode, device, repeats)
    return {"size": f"{h}x{w}", "pixels": h * w, "batch": batch, "windows": tiling is not None,
            "encode_fps": batch / enc, "decode_fps": batch / dec,
            "encode_mpx_s": batch * h * w / enc / 1e6, "decode_mpx_s": batch * h * w / dec / 1e6,
            "encode_peak_mb": peak_mb(encode, device), "decode_peak_mb": peak_mb(decode, device)}


def exponents(rows: list[dict]) -> tuple[float, float] | None:
    """(encode, decode) k in (seconds a frame) ~ pixels^k over the sizes (`measure.scaling`'s fit); None for
    fewer than two sizes."""
    if len(rows) < 2:
        return None
    pixels = [r["pixels"] for r in rows]
    return tuple(fitted_exponent(pixels, [1 / r[f"{k}_fps"] for r in rows]) for k in ("encode", "decode"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=",".join(shipped_models()), help="comma-separated names, paths or .json configs")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--sizes", default="128x256,256x512,512x1024,1024x2048")
    ap.add_argument("--batch-pixels", type=int, default=None, help="pixels a batch (default: 256 or 32 frames of 128x256)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--whole", action="store_true", help="also run global-attention models over the whole grid")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--tiles-per-pass", type=int, default=None,
                    help="windows a network pass takes on a GPU (default: compressor.tiling.GPU_TILES_PER_PASS)")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.tiles_per_pass:
        tiling.GPU_TILES_PER_PASS = args.tiles_per_pass
    device = check_device(args.device)
    budget = args.batch_pixels or (256 if device.type == "cuda" else 32) * TRAINING_FRAME[0] * TRAINING_FRAME[1]
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    where = (f"{torch.cuda.get_device_name(device)}, bf16 autocast" if device.type == "cuda"
             else f"{cpu_name()}, {torch.get_num_threads()} threads, {'bf16 autocast' if fast_bf16(device) else 'float32'}")
    result = {"device": where, "torch": torch.__version__, "batch_pixels": budget,
              "tiles_per_pass": tiling.GPU_TILES_PER_PASS if device.type == "cuda" else tiling.TILES_PER_PASS, "models": {}}
    print(f"# networks alone on {where}; batch = {budget} pixels, windows: {result['tiles_per_pass']} a pass")
    print("| model | params | size | batch | coded in | encode frames/s | decode frames/s | encode Mpx/s | "
          "decode Mpx/s | peak MB (enc / dec) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for spec in args.models.split(","):
        label, model = build(spec)
        model.to(device)
        params = sum(p.numel() for p in model.encoder.parameters()) + sum(p.numel() for p in model.decoder.parameters())
        modes = [False, True] if args.whole and model.global_attention else [False]
        for whole in modes:
            rows = []
            for size in sizes:
                batch = max(1, budget // (size[0] * size[1]))
                try:
                    row = measure(model, size, batch, device, args.repeats, whole)
                except torch.OutOfMemoryError:
                    torch.cuda.empty_cache()
                    print(f"| {label} | | {size[0]}x{size[1]} | {batch} | {'whole' if whole else ''} | out of memory |")
                    continue
                rows.append(row)
                how = "windows" if row["windows"] else "whole"
                peak = (f"{row['encode_peak_mb']:.0f} / {row['decode_peak_mb']:.0f}" if row["encode_peak_mb"] is not None
                        else "")
                print(f"| {label} | {params / 1e6:.2f}M | {row['size']} | {batch} | {how} | {row['encode_fps']:,.0f} | "
                      f"{row['decode_fps']:,.0f} | {row['encode_mpx_s']:,.1f} | {row['decode_mpx_s']:,.1f} | {peak} |",
                      flush=True)
            k = exponents(rows)
            if k is not None:
                print(f"| {label} | | time ~ pixels^k | | {'whole' if whole else 'as coded'} | k = {k[0]:.2f} | "
                      f"k = {k[1]:.2f} | | | |")
            result["models"][label + (" (whole)" if whole else "")] = {
                "params": params, "rows": rows, "exponent": k and k[0], "decode_exponent": k and k[1]}
        model.cpu()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
