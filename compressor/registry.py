"""The single table of architecture names: which encoder and decoder class each name means.

Entries are import paths, resolved on first use, so `import compressor` stays free of torch.
Adding an architecture is one file in `architectures/` plus one line here.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass

from compressor.errors import ModelError


@dataclass(frozen=True)
class Architecture:
    name: str
    module: str
    encoder: str
    decoder: str
    summary: str

    def encoder_class(self):
        return getattr(importlib.import_module(self.module), self.encoder)

    def decoder_class(self):
        return getattr(importlib.import_module(self.module), self.decoder)


ARCHITECTURES: dict[str, Architecture] = {
    a.name: a
    for a in [
        Architecture("vit", "compressor.architectures.vit", "ViTEncoder", "ViTDecoder",
                     "pure ViT: linear 16x16 patch embedding, global attention, no convolution"),
        Architecture("hybrid", "compressor.architectures.hybrid", "HybridEncoder", "HybridDecoder",
                     "conv / stride / pool stem to the 16-pixel grid, then global attention (DETR-style)"),
        Architecture("convnext", "compressor.architectures.convnext", "ConvNeXtEncoder", "ConvNeXtDecoder",
                     "ConvNeXt stages only: depthwise 7x7, LayerNorm, pointwise MLP; no attention"),
        Architecture("cvit", "compressor.architectures.cvit", "CViTEncoder", "CViTDecoder",
                     "convolutional ViT: vit's patch embedding, attention in shifted 8x8-token windows only"),
    ]
}


def get_architecture(name: str) -> Architecture:
    try:
        return ARCHITECTURES[name]
    except KeyError:
        known = ", ".join(sorted(ARCHITECTURES))
        raise ModelError(f"unknown architecture '{name}' (known: {known})") from None
