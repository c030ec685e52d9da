"""The shared attention: its CPU inference path computes what PyTorch's fused kernel computes."""
import pytest
import torch
import torch.nn.functional as F

from compressor import layers
from compressor.layers import attend, cpu_attention_path


@pytest.mark.parametrize("bias_shape", [None, (1, 2, 64, 64), (6, 2, 64, 64), (64, 64)], ids=str)
def test_cpu_bf16_inference_path_matches_sdpa(monkeypatch, bias_shape):
    monkeypatch.setattr(layers, "_CPU_SCORES", 2 * 64 * 64 * 4)  # chunks of 4 frames: 6 frames take two
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(6, 2, 64, 16, generator=g) for _ in range(3))
    bias = torch.randn(bias_shape, generator=g) if bias_shape else None
    reference = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)  # float32, fused kernel
    with torch.inference_mode(), cpu_attention_path():
        fast = attend(*(t.bfloat16() for t in (q, k, v)), None if bias is None else bias.bfloat16())
    assert fast.dtype == torch.bfloat16 and fast.shape == reference.shape
    assert torch.allclose(fast.float(), reference, atol=0.03, rtol=0.03)


def test_only_bf16_on_the_cpu_inside_the_context_leaves_the_fused_kernel(monkeypatch):
    calls = []
    monkeypatch.setattr(layers.F, "scaled_dot_product_attention", lambda *a, **kw: calls.append(1) or a[0])
    q = torch.randn(2, 2, 8, 4).bfloat16()
    with cpu_attention_path():
        attend(q.requires_grad_(), q, q)  # a search's decoder pass, with gradients: the batched matmuls
        with torch.inference_mode():
            attend(*(q.detach(),) * 3)  # bf16 inference on the CPU: the batched matmuls
            attend(*(torch.randn(2, 2, 8, 4),) * 3)  # float32: the fused kernel
    attend(q, q, q)  # outside the context (training): the fused kernel
    with torch.inference_mode():
        attend(*(q.detach(),) * 3)  # outside the context (encoding): the fused kernel
    assert len(calls) == 3


def test_cpu_path_gradients_match_sdpa(monkeypatch):
    """The searches differentiate the decoder through the path: its backward is SDPA's, to bf16 precision."""
    monkeypatch.setattr(layers, "_CPU_SCORES", 2 * 64 * 64 * 4)  # chunks of 4 frames: 6 frames take two
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(6, 2, 64, 16, generator=g) for _ in range(3))
    bias = torch.randn(1, 2, 64, 64, generator=g)
    weight = torch.randn(6, 2, 64, 16, generator=g)  # a loss that weighs every output element differently

    def grads(fn, dtype):
        leaves = [t.detach().to(dtype).requires_grad_() for t in (q, k, v)]
        (fn(*leaves, bias.to(dtype)).float() * weight).sum().backward()
        return [t.grad.float() for t in leaves]

    reference = grads(lambda *a: F.scaled_dot_product_attention(*a[:3], attn_mask=a[3]), torch.float32)
    with cpu_attention_path():
        fast = grads(attend, torch.bfloat16)
    for r, f in zip(reference, fast):
        assert torch.allclose(f, r, atol=0.05 * r.abs().max().item(), rtol=0.05)


def test_encoding_and_decoding_take_the_cpu_path(monkeypatch, tiny_path, frame):
    import compressor

    seen = []
    monkeypatch.setattr(layers, "attend", lambda *a, **kw: seen.append(layers._CPU_PATH.get()) or
                        F.scaled_dot_product_attention(*a[:3], attn_mask=a[3] if len(a) > 3 else None))
    codec = compressor.load(tiny_path)
    data = codec.encode(frame)
    assert seen and all(seen)
    seen.clear()
    codec.decode(data)
    assert seen and all(seen)


@pytest.mark.parametrize("search", [{"flips": 1}, {"refine": 2}], ids=str)
def test_searches_run_the_decoder_on_the_cpu_path(monkeypatch, tiny_path, frame, search):
    """A search scores codes as decoding computes them, and both searches start from the latent plain encoding
    computes (`Codec._encode_latent`, on the path too)."""
    import compressor

    codec = compressor.load(tiny_path)
    half, seen = [], []
    for name in ("encoder", "decoder"):
        module = getattr(codec.model, name)
        forward = module.forward
        monkeypatch.setattr(module, "forward", lambda *a, _n=name, _f=forward, **kw: half.append(_n) or _f(*a, **kw))
    monkeypatch.setattr(layers, "attend", lambda *a, **kw: seen.append((half[-1], layers._CPU_PATH.get())) or
                        F.scaled_dot_product_attention(*a[:3], attn_mask=a[3] if len(a) > 3 else None))
    codec.encode(frame, **search)
    assert {s for s in seen if s[0] == "encoder"} == {("encoder", True)}
    assert {s for s in seen if s[0] == "decoder"} == {("decoder", True)}
