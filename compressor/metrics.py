"""Quality metrics on 8-bit RGB images, as design.md defines them: PSNR and MS-SSIM per image.

`psnr` takes two uint8 arrays (measurement); `psnr_batch` two float tensor batches (training's validation).

MS-SSIM follows Wang et al. 2003 (11x11 Gaussian window, sigma 1.5, the five published scale
weights). A 128x256 frame is too small for five scales of an 11-pixel window (the coarsest would be
8x16 pixels), so small images use as many scales as fit, with the weights of those scales
renormalised to sum to one; `ms_ssim_scales` says how many.
"""
from __future__ import annotations

import numpy as np

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
WINDOW = 11


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 images: MSE over all pixels and channels."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def psnr_batch(a, b):
    """Per-image PSNR in dB of two batches of float tensors in [0, 1], each rounded to 8 bits first: (B,).

    `psnr` on each image's uint8 array gives the same values; this one stays on the tensors' device.
    """
    a8 = (a.clamp(0, 1) * 255).round()
    b8 = (b.clamp(0, 1) * 255).round()
    mse = ((a8 - b8) ** 2).flatten(1).mean(1)
    return 10 * (255.0**2 / mse.clamp_min(1e-10)).log10()


def ms_ssim_scales(height: int, width: int) -> int:
    """How many MS-SSIM scales fit: the coarsest scale must still hold one 11x11 window."""
    scales = 1
    while scales < len(MS_SSIM_WEIGHTS) and min(height, width) // 2**scales >= WINDOW:
        scales += 1
    return scales


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """MS-SSIM of two uint8 (H, W, 3) images, averaged over the RGB channels; nan if under 11 pixels."""
    import torch
    import torch.nn.functional as F

    h, w = a.shape[:2]
    if min(h, w) < WINDOW:
        return float("nan")
    scales = ms_ssim_scales(h, w)
    weights = torch.tensor(MS_SSIM_WEIGHTS[:scales], dtype=torch.float64)
    weights = weights / weights.sum()
    x = torch.tensor(a).permute(2, 0, 1)[:, None].double()  # (3, 1, H, W): channels as a batch
    y = torch.tensor(b).permute(2, 0, 1)[:, None].double()
    g = torch.exp(-((torch.arange(WINDOW, dtype=torch.float64) - WINDOW // 2) ** 2) / (2 * 1.5**2))
    g = (g / g.sum())[None, None]
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(t):
        return F.conv2d(F.conv2d(t, g[..., None, :]), g[..., :, None])  # separable, "valid" borders

    values = []
    for s in range(scales):
        mx, my = blur(x), blur(y)
        sxx, syy, sxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
        cs = ((2 * sxy + c2) / (sxx + syy + c2)).mean(dim=(1, 2, 3))  # (3,)
        if s == scales - 1:
            lum = ((2 * mx * my + c1) / (mx**2 + my**2 + c1)).mean(dim=(1, 2, 3))
            values.append(lum * cs)
        else:
            values.append(cs)
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    stack = torch.stack(values).clamp_min(0)  # (scales, 3)
    return float(torch.prod(stack ** weights[:, None], dim=0).mean())
