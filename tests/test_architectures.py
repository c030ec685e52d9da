"""Every registered architecture, through the registry: shapes at odd sizes, gradients, structure."""
import pytest
import torch
from torch import nn

from compressor.model import CompressionModel, ModelConfig
from compressor.registry import ARCHITECTURES

TINY_ARGS = {
    "vit": ({"dim": 32, "depth": 1, "heads": 2},
            {"dim": 32, "depth": 1, "heads": 2, "refine_dim": 16, "refine_depth": 1, "refine_heads": 1}),
    "hybrid": ({"stem": (8, 16, 32), "dim": 32, "depth": 1, "heads": 2},
               {"dim": 32, "depth": 1, "heads": 2, "up": (16, 8, 8, 8)}),
    "convnext": ({"dims": (8, 16, 32), "depths": (1, 1, 1)}, {"dims": (32, 16, 8), "depths": (1, 1, 1)}),
    "cvit": ({"dim": 32, "depth": 2, "heads": 2, "window": 4},
             {"dim": 32, "depth": 2, "heads": 2, "refine_dim": 16, "refine_depth": 2, "refine_heads": 1, "window": 4}),
}


def tiny_model(name: str) -> CompressionModel:
    enc_args, dec_args = TINY_ARGS[name]
    cfg = ModelConfig(encoder=name, decoder=name, encoder_args=enc_args, decoder_args=dec_args)
    return CompressionModel.from_config(cfg)


def test_every_architecture_has_tiny_arguments():
    assert set(TINY_ARGS) == set(ARCHITECTURES)


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
@pytest.mark.parametrize("size", [(128, 256), (16, 16), (1, 1), (37, 53), (64, 200)])
def test_shapes_at_any_size(name, size):
    model = tiny_model(name).eval()
    x = torch.rand(2, 3, *size)
    gh, gw = -(-size[0] // 16), -(-size[1] // 16)
    y = model.encoder(model.pad(x))
    assert y.shape == (2, 14, gh, gw)
    symbols = model.encode_symbols(x)
    assert symbols.shape == (2, 14, gh, gw) and symbols.dtype == torch.uint8
    out = model.decode_symbols(symbols, size)
    assert out.shape == (2, 3, *size)
    assert 0 <= out.min() and out.max() <= 1


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_gradients_reach_every_parameter(name):
    model = tiny_model(name).train()
    out = model(torch.rand(2, 3, 32, 48))
    loss = out["reconstruction"].square().mean() + out["bits"].mean() * 1e-3
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_contract_attributes(name):
    model = tiny_model(name)
    assert model.encoder.stride == model.decoder.stride == 16
    assert model.encoder.latent_channels == model.decoder.latent_channels == 14


@pytest.mark.parametrize("name", ["vit", "cvit"])
def test_attention_models_contain_no_convolution(name):
    model = CompressionModel.from_config(ModelConfig(encoder=name, decoder=name))
    conv_types = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
    assert not [m for m in model.modules() if isinstance(m, conv_types)]


def test_cvit_attention_never_sees_more_than_a_window():
    """At a 1024x2048 input every attention call of the shipped-size cvit sees 8x8 = 64 tokens."""
    from compressor.layers import Attention

    model = CompressionModel.from_config(ModelConfig(encoder="cvit", decoder="cvit")).eval()
    seen = set()
    hooks = [m.register_forward_pre_hook(lambda mod, args: seen.add(args[0].shape[1]))
             for m in model.modules() if isinstance(m, Attention)]
    with torch.inference_mode():
        y = model.encoder(torch.rand(1, 3, 1024, 2048))
        model.decoder(torch.sign(y)[..., :16, :32])  # the decoder at 256x512 keeps the test fast
    for h in hooks:
        h.remove()
    assert seen == {64}


def test_cvit_windows_are_local():
    """Changing one corner of a large image leaves the far corner's latent untouched (plain windows only)."""
    torch.manual_seed(0)
    from compressor.architectures.cvit import CViTEncoder

    enc = CViTEncoder(dim=32, depth=1, heads=2, window=4).eval()
    x = torch.rand(1, 3, 256, 256)
    x2 = x.clone()
    x2[..., :16, :16] = 1 - x2[..., :16, :16]
    with torch.inference_mode():
        a, b = enc(x), enc(x2)
    assert not torch.equal(a[..., :4, :4], b[..., :4, :4])
    assert torch.equal(a[..., 4:, 4:], b[..., 4:, 4:])


def test_convnext_contains_no_attention():
    from compressor.layers import Attention

    model = tiny_model("convnext")
    assert not [m for m in model.modules() if isinstance(m, (Attention, nn.MultiheadAttention))]


def test_hybrid_has_a_conv_stem_and_attention_on_top():
    from compressor.layers import Attention

    model = tiny_model("hybrid")
    assert any(isinstance(m, nn.Conv2d) for m in model.encoder.modules())
    assert any(isinstance(m, Attention) for m in model.encoder.modules())


def test_default_sizes_are_within_20_percent_of_each_other():
    counts = {}
    for name in ARCHITECTURES:
        model = CompressionModel.from_config(ModelConfig(encoder=name, decoder=name))
        counts[name] = sum(p.numel() for p in model.parameters())
    assert 5e6 < min(counts.values()) and max(counts.values()) <= 1.2 * min(counts.values()), counts


@pytest.mark.parametrize("pair", [("vit", "convnext"), ("convnext", "vit"), ("hybrid", "vit")])
def test_mixed_pairs(pair):
    enc, dec = pair
    cfg = ModelConfig(encoder=enc, decoder=dec, encoder_args=TINY_ARGS[enc][0], decoder_args=TINY_ARGS[dec][1])
    model = CompressionModel.from_config(cfg).eval()
    out = model.decode_symbols(model.encode_symbols(torch.rand(1, 3, 40, 70)), (40, 70))
    assert out.shape == (1, 3, 40, 70)


def test_mismatched_pair_is_refused():
    from compressor.architectures.vit import ViTDecoder, ViTEncoder
    from compressor.bottleneck import Bottleneck

    with pytest.raises(ValueError, match="does not fit"):
        CompressionModel(ViTEncoder(latent_channels=14, dim=32, depth=1, heads=2),
                         ViTDecoder(latent_channels=8, dim=32, depth=1, heads=2, refine_dim=16, refine_depth=1,
                                    refine_heads=1), Bottleneck(14))


@pytest.mark.parametrize("grid", [(8, 8), (5, 6)])
def test_window_block_equals_global_block_when_one_window_covers_the_grid(grid):
    """With zero relative bias and no shift, a window covering the grid (padding masked) is global attention."""
    from compressor.layers import TransformerBlock, WindowTransformerBlock

    torch.manual_seed(0)
    windowed = WindowTransformerBlock(32, heads=2, window=8)
    with torch.no_grad():
        windowed.relative_bias.zero_()
    plain = TransformerBlock(32, heads=2)
    plain.load_state_dict({k: v for k, v in windowed.state_dict().items() if k != "relative_bias"})
    x = torch.randn(2, *grid, 32)
    expected = plain(x.reshape(2, -1, 32)).reshape(2, *grid, 32)
    torch.testing.assert_close(windowed(x), expected, atol=1e-5, rtol=1e-5)
