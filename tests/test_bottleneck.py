import pytest
import torch

from compressor.bottleneck import Bottleneck, binarize, latent_from_symbols, symbols_from_latent


def test_binarize_is_sign_forward_and_tanh_backward():
    y = torch.tensor([-2.0, -0.1, 0.0, 0.3, 5.0], requires_grad=True)
    out = binarize(y)
    assert out.tolist() == [-1.0, -1.0, 1.0, 1.0, 1.0]
    out.sum().backward()
    torch.testing.assert_close(y.grad, 1 - torch.tanh(y.detach()) ** 2)


def test_surrogate_temperature_keeps_saturated_outputs_learning():
    """t * tanh(y / t): at t = 8 an output at 6 still gets 60% of the gradient; at t = 1, 0.0025%."""
    y = torch.tensor([-6.0, -0.5, 0.5, 6.0], requires_grad=True)
    out = binarize(y, 8.0)
    assert out.tolist() == [-1.0, -1.0, 1.0, 1.0]  # the forward pass does not depend on t
    out.sum().backward()
    torch.testing.assert_close(y.grad, 1 - torch.tanh(y.detach() / 8) ** 2)
    assert y.grad[0] > 0.59 and (1 - torch.tanh(torch.tensor(6.0)) ** 2) < 3e-5
    with pytest.raises(ValueError, match="positive"):
        binarize(y, 0.0)


def test_symbols_follow_the_same_rule_as_binarize():
    y = torch.randn(2, 14, 4, 8)
    s = symbols_from_latent(y)
    assert s.dtype == torch.uint8
    torch.testing.assert_close(latent_from_symbols(s), binarize(y))


def test_bits_of_frozen_table_match_information_content():
    b = Bottleneck(14)
    b.cdf[:, 1] = 16384  # P(0) = 1/4, P(1) = 3/4
    s = torch.zeros(1, 14, 2, 2)
    s[..., 0, 0] = 1
    expected = 14 * (-torch.log2(torch.tensor(0.75)) - 3 * torch.log2(torch.tensor(0.25)))
    torch.testing.assert_close(b.bits(s), expected.reshape(1))


def test_trainable_entropy_model_learns_and_freezes():
    torch.manual_seed(0)
    b = Bottleneck(14, trainable=True)
    opt = torch.optim.Adam(b.entropy_model.parameters(), lr=0.05)
    s = (torch.rand(64, 14, 4, 4) < torch.linspace(0.1, 0.9, 14)[None, :, None, None]).float()
    for _ in range(300):
        opt.zero_grad()
        b.bits(s).mean().backward()
        opt.step()
    b.freeze()
    p_one = 1 - b.cdf[:, 1].double() / 65536
    torch.testing.assert_close(p_one, s.mean((0, 2, 3)).double(), atol=0.03, rtol=0)


def test_probability_of_one_ignores_the_density_median():
    """P(1) is the density's mass at 1 over its mass at 0 and 1, read through the public evaluation-mode
    forward with the median pinned at 0; a median from elsewhere (an older training state) changes nothing."""
    torch.manual_seed(0)
    b = Bottleneck(14, trainable=True)
    with torch.no_grad():
        for p in b.entropy_model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    before = b.probability_of_one().detach()
    assert not torch.allclose(before, torch.full_like(before, 0.5), atol=1e-3)
    with torch.no_grad():
        b.entropy_model.quantiles[:, :, 1] = 0.37  # would round 0 and 1 to 0.37 and 1.37 if it stayed
    torch.testing.assert_close(b.probability_of_one().detach(), before)
    mass = torch.stack([b.entropy_model(torch.tensor([[v]]).expand(1, 14), training=False)[1][0] for v in (0.0, 1.0)])
    torch.testing.assert_close(before, mass[1] / mass.sum(0))
