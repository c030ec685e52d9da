"""Where a codec's networks run: the device a user names, checked, and whether this CPU computes bf16 fast.

torch is imported on first use, like everywhere in the codec core."""
from __future__ import annotations


def cpu_name() -> str:
    """This CPU's model name ("AMD EPYC", "Intel(R) Xeon(R) Platinum 8480+"), as speeds and cards name
    the machine: Linux's /proc/cpuinfo, else what `platform` knows (often only the architecture)."""
    import platform

    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and ":" in line:
                    return line.split(":", 1)[1].strip() or platform.machine()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def fast_bf16() -> bool:
    """Whether this CPU has bf16 matrix instructions (AVX512-BF16 or AMX), where bf16 beats float32 2-3x."""
    import torch

    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:  # private helpers; without them, stay in float32
        return False


def check_device(device):
    """"cpu", "cuda", "cuda:1" or a torch.device -> torch.device; a clear error where it is not there."""
    import torch

    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"not a device: {device!r} ({e})") from None
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be cpu or cuda, not {device.type!r}")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device cuda asked for, but this PyTorch sees no CUDA GPU")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {device} asked for, but this machine has {torch.cuda.device_count()} GPU(s)")
    return device
