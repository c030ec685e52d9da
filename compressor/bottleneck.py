"""The bottleneck: binary quantizer and the learned entropy model over its symbols.

    y (B, C, h, w) real  --sign-->  y_hat in {-1, +1}  -->  symbols s = (y_hat + 1) / 2 in {0, 1}
                                                              |
         CompressAI EntropyBottleneck (one learned density per channel, trained)      (training)
         -> p_c = P(s = 1 | channel c) = L_c(1) / (L_c(0) + L_c(1))
         -> frozen as 16-bit integer frequencies `cdf` (C, 3) = [0, f_c(0), 65536]  (checkpoint)
                                                              |
                                          entropy_coder.py codes s with those tables   (bytes)

This is the one module that imports compressai, and only when a trainable bottleneck is built: the
encode/decode path reads the frozen table and never imports it.
"""
from __future__ import annotations

import torch
from torch import nn

from compressor.entropy_coder import CDF_TOTAL  # the tables' scale, defined where they are coded


def hard_sign(y: torch.Tensor) -> torch.Tensor:
    """y -> {-1, +1} in y's dtype, no gradient. sign(0) would be 0, a third level: 0 maps to +1."""
    return torch.where(y >= 0, 1.0, -1.0).to(y.dtype)


class BinarySign(torch.autograd.Function):
    """sign(y) forward; backward, the gradient of the smooth surrogate t * tanh(y / t) (straight-through).

    t = 1 is tanh's own gradient. It all but vanishes once |y| > 3, and a trained encoder puts a large
    share of its outputs there (vit-long: 41% of them beyond 2, a tenth beyond 6), so those bits stop
    learning. A larger t keeps them movable; t -> infinity is the identity straight-through estimator.
    """

    @staticmethod
    def forward(ctx, y: torch.Tensor, temperature: float) -> torch.Tensor:
        ctx.save_for_backward(y)
        ctx.temperature = temperature
        return hard_sign(y)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (y,) = ctx.saved_tensors
        return grad * (1 - torch.tanh(y / ctx.temperature) ** 2), None


def binarize(y: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Quantize to {-1, +1}, differentiable through the surrogate t * tanh(y / t) with t = `temperature`."""
    if temperature <= 0:
        raise ValueError(f"surrogate temperature must be positive, got {temperature}")
    return BinarySign.apply(y, temperature)


def symbols_from_latent(y: torch.Tensor) -> torch.Tensor:
    """Real latent (B, C, h, w) -> uint8 symbols in {0, 1}; the same rule as `binarize`."""
    return (y >= 0).to(torch.uint8)


def latent_from_symbols(symbols: torch.Tensor, dtype=torch.float32) -> torch.Tensor:
    """uint8 symbols in {0, 1} -> the decoder's input in {-1, +1}."""
    return symbols.to(dtype) * 2 - 1


class Bottleneck(nn.Module):
    """Binary quantizer + per-channel entropy model.

    The buffer `cdf` is what inference uses: per channel, the quantized cumulative frequencies of the
    symbols 0 and 1 at 16-bit precision. `entropy_model` (a CompressAI EntropyBottleneck) exists only
    in training; `freeze()` turns it into `cdf`.
    """

    def __init__(self, latent_channels: int = 14, *, trainable: bool = False):
        super().__init__()
        self.latent_channels = latent_channels
        cdf = torch.tensor([0, CDF_TOTAL // 2, CDF_TOTAL], dtype=torch.int32).repeat(latent_channels, 1)
        self.register_buffer("cdf", cdf)  # (C, 3)
        self.entropy_model = None
        if trainable:
            from compressor.extras import need

            need("compressai", "training an entropy model")  # a one-line error where the train extra is missing
            from compressai.entropy_models import EntropyBottleneck

            self.entropy_model = EntropyBottleneck(latent_channels)
            # Its quantiles serve CompressAI's own range coding, which we replace with the frozen
            # binary table; frozen here so no optimizer or DDP sees a parameter without gradient.
            self.entropy_model.quantiles.requires_grad_(False)
            self._pin_median()

    def _pin_median(self) -> None:
        """Set the density's median to 0: evaluation-mode `forward` rounds its input around the median
        (round(x - m) + m), so with m = 0 the symbols 0 and 1 are evaluated exactly where they lie."""
        with torch.no_grad():
            self.entropy_model.quantiles[:, :, 1] = 0.0

    def probability_of_one(self) -> torch.Tensor:
        """(C,) P(s = 1) per channel, from the learned density if training, else the frozen table."""
        if self.entropy_model is None:
            return 1.0 - self.cdf[:, 1].double() / CDF_TOTAL
        # The public evaluation-mode forward: its input is (B, C) with B = the two symbol values, and
        # the pinned median leaves them unrounded; it returns each value's probability mass per channel.
        self._pin_median()  # again: a loaded training state may carry another median
        values = torch.tensor([[0.0], [1.0]], device=self.cdf.device).expand(2, self.latent_channels)  # (2, C)
        _, likelihood = self.entropy_model(values, training=False)  # (2, C), bounded below by 1e-9
        return likelihood[1] / likelihood.sum(dim=0)

    def bits(self, symbols: torch.Tensor) -> torch.Tensor:
        """Estimated code length in bits of each image's symbols: (B, C, h, w) in [0, 1] -> (B,).

        Differentiable with respect to `symbols` (through the quantizer's surrogate) and to the
        entropy model, so it is the rate term of the loss. Computed in float32.
        """
        p1 = self.probability_of_one().float().clamp(1.0 / CDF_TOTAL, 1 - 1.0 / CDF_TOTAL)[None, :, None, None]
        s = symbols.float()
        bits = -(s * torch.log2(p1) + (1 - s) * torch.log2(1 - p1))  # (B, C, h, w)
        return bits.flatten(1).sum(dim=1)

    @torch.no_grad()
    def freeze(self) -> None:
        """Write the learned probabilities into the integer table `cdf` that the coder uses."""
        p1 = self.probability_of_one().double()
        freq_one = torch.round(p1 * CDF_TOTAL).clamp(1, CDF_TOTAL - 1).to(torch.int32)
        self.cdf[:, 1] = CDF_TOTAL - freq_one
