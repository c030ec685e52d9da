"""Probe: where a GPU's time goes when a global-attention model codes large frames in windows
(`compressor/tiling.py`). Times, for 4 frames of 1024x2048 (900 overlapping windows), the encoder and the
decoder on all windows in one pass, the same through the tiling, and the tiling with the network replaced
by a slice (cutting and blending alone). Random weights from a model config: the speed does not depend on
them.

    python docs/scripts/tiling_gpu_probe.py CONFIG.json      # a checkpoint card's config, e.g. vit's
"""
import json
import sys
import time

import torch

from compressor.model import CompressionModel, ModelConfig
from compressor.tiling import Tiling


def timed_ms(fn, n: int = 5) -> float:
    for _ in range(2):
        fn()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / n * 1e3


def main() -> None:
    config = ModelConfig.from_dict(json.load(open(sys.argv[1])))
    m = CompressionModel.from_config(config).cuda().eval()
    tiling = Tiling((8, 16))  # the 128x256 training frame, in latent cells
    x = torch.rand(4, 3, 1024, 2048, device="cuda")  # (B, 3, H, W)
    windows = torch.rand(900, 3, 128, 256, device="cuda")  # 225 windows a frame
    latent = torch.sign(torch.randn(4, 14, 64, 128, device="cuda"))  # (B, C, gh, gw)
    latent_windows = torch.sign(torch.randn(900, 14, 8, 16, device="cuda"))
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
        rows = {
            "encoder, the 900 windows in one pass": lambda: m.encoder(windows),
            "encoder through the tiling": lambda: m.encode_latent(x, tiling),
            "the tiling alone, encoder side (a slice for the network)":
                lambda: tiling.run(lambda b: b[:, :14, ::16, ::16], x, cell_in=16, cell_out=1),
            "decoder, the 900 windows in one pass": lambda: m.decoder(latent_windows),
            "decoder through the tiling": lambda: m.decode_latent(latent, tiling),
            "the tiling alone, decoder side":
                lambda: tiling.run(lambda b: b[:, :3].repeat_interleave(16, -1).repeat_interleave(16, -2), latent,
                                   cell_in=1, cell_out=16),
        }
        for name, fn in rows.items():
            print(f"{name}: {timed_ms(fn):.1f} ms")


if __name__ == "__main__":
    main()
