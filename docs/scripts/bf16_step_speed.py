"""A training step of the default's decoder under bf16 autocast against float32, on this CPU.

Forward and backward of 16 random-code frames through `vit.default`'s decoder, 2 threads, the two
precisions interleaved, three rounds after one of warm-up; prints the CPU (with its vector units) and
each precision's median seconds a step. On a CPU without bf16 units bf16 is emulated, which is why
`TrainConfig.bf16` is left to the hardware.

usage: python docs/scripts/bf16_step_speed.py
"""
import statistics
import time

import torch
import torch.nn.functional as F

import compressor
from compressor.device import cpu_name, fast_bf16


def step(decoder, code, x, bf16: bool) -> float:
    start = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        out = decoder(code)
    F.mse_loss(out.float(), x).backward()
    return time.perf_counter() - start


def main() -> None:
    torch.set_num_threads(2)
    torch.manual_seed(0)
    decoder = compressor.load().model.decoder.train()
    for p in decoder.parameters():  # a loaded codec's weights are frozen
        p.requires_grad_(True)
    code = torch.randint(0, 2, (16, 14, 8, 16)).float() * 2 - 1  # (B, C, gh, gw) in {-1, +1}
    x = torch.rand(16, 3, 128, 256)
    times = {False: [], True: []}
    for round_ in range(4):
        for bf16 in (False, True):
            seconds = step(decoder, code, x, bf16)
            if round_:
                times[bf16].append(seconds)
    print(f"{cpu_name()}, bf16 units: {fast_bf16()}: a decoder step of 16 frames takes "
          f"{statistics.median(times[False]):.2f} s in float32, {statistics.median(times[True]):.2f} s in bf16 autocast")


if __name__ == "__main__":
    main()
