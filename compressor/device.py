"""Where a codec's networks run: the device a user names, checked, and whether this CPU computes bf16 fast.

torch is imported on first use, like everywhere in the codec core."""
from __future__ import annotations


def cpu_name() -> str:
    """This CPU's model name and its widest vector units ("AMD EPYC (AVX2)", "Intel(R) Xeon(R) Platinum
    8480+ (AMX)"), as speeds and cards name the machine: Linux's /proc/cpuinfo, else what `platform`
    knows (often only the architecture). The units are named because they set the speed: one model name
    covers EPYC generations with and without AVX-512 BF16, 2x apart on this codec."""
    import platform

    name, flags = "", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and not name:
                    name = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = set(value.split())
                if name and flags:
                    break
    except OSError:
        pass
    name = name or platform.processor() or platform.machine()
    units = vector_units(flags)
    return f"{name} ({units})" if units else name


def vector_units(flags: set[str]) -> str:
    """/proc/cpuinfo's flags -> the widest units this codec's speed depends on, or "" where none is known."""
    for flag, units in (("amx_bf16", "AMX"), ("avx512_bf16", "AVX-512 BF16"), ("avx512f", "AVX-512"),
                        ("avx2", "AVX2")):
        if flag in flags:
            return units
    return ""


def fast_bf16(device=None) -> bool:
    """Whether bf16 runs fast on `device`: a GPU with bf16, or (None or a CPU) a CPU with bf16 matrix
    instructions (AVX512-BF16 or AMX), where bf16 beats float32 2-3x; elsewhere it is emulated, far slower."""
    import torch

    if device is not None and torch.device(device).type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:  # private helpers; without them, stay in float32
        return False


def check_device(device):
    """"cpu", "cuda", "cuda:1" or a torch.device -> torch.device; a DeviceError where it is not there."""
    import torch

    from compressor.errors import DeviceError

    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise DeviceError(f"not a device: {device!r} ({e})") from None
    if device.type not in ("cpu", "cuda"):
        raise DeviceError(f"device must be cpu or cuda, not {device.type!r}")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError("device cuda asked for, but this PyTorch sees no CUDA GPU")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(f"device {device} asked for, but this machine has {torch.cuda.device_count()} GPU(s)")
    return device
