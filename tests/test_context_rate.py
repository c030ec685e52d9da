"""The context tables as a torch rate: the coder's ideal code length, and each bit's flip cost, exactly."""
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compressor import context_model
from compressor.context_rate import ContextRate
from tests.conftest import fitted_tables, structured_symbols

TABLES = fitted_tables()
RATE = ContextRate(TABLES["spatial"])


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(h=st.integers(1, 9), w=st.integers(1, 17), seed=st.integers(0, 2**31), flip=st.floats(0, 0.5))
def test_bits_and_flip_costs_match_the_coder_on_any_grid(h, w, seed, flip):
    symbols = structured_symbols(seed, (14, h, w), flip=flip)
    batch = torch.from_numpy(np.stack([symbols, 1 - symbols]))
    bits = RATE.bits(batch)
    assert bits[0].item() == pytest.approx(context_model.code_bits(symbols, TABLES), abs=1e-3)
    assert bits[1].item() == pytest.approx(context_model.code_bits(1 - symbols, TABLES), abs=1e-3)
    deltas = RATE.flip_bits(batch[:1])[0]
    rng = np.random.default_rng(seed)
    base = context_model.code_bits(symbols, TABLES)
    for c, i, j in zip(rng.integers(0, 14, 8), rng.integers(0, h, 8), rng.integers(0, w, 8)):
        flipped = symbols.copy()
        flipped[c, i, j] ^= 1
        assert deltas[c, i, j].item() == pytest.approx(context_model.code_bits(flipped, TABLES) - base, abs=1e-3)


@settings(max_examples=20, deadline=None)
@given(h=st.integers(1, 9), w=st.integers(1, 17), seed=st.integers(0, 2**31), moved=st.floats(0, 0.5))
def test_the_temporal_table_given_the_previous_frame_matches_the_coder(h, w, seed, moved):
    """The temporal rate: "prev" terms fixed, "diff" terms (cur xor prev) moving with the flipped bit."""
    prev = structured_symbols(seed, (14, h, w))
    rng = np.random.default_rng(seed)
    symbols = prev ^ (rng.random(prev.shape) < moved).astype(np.uint8)
    rate = ContextRate(TABLES["temporal"], layout=context_model.TEMPORAL, prev=torch.from_numpy(prev[None]))
    base = context_model.code_bits(symbols, TABLES, prev=prev)
    assert rate.bits(torch.from_numpy(symbols[None]))[0].item() == pytest.approx(base, abs=1e-3)
    deltas = rate.flip_bits(torch.from_numpy(symbols[None]))[0]
    for c, i, j in zip(rng.integers(0, 14, 8), rng.integers(0, h, 8), rng.integers(0, w, 8)):
        flipped = symbols.copy()
        flipped[c, i, j] ^= 1
        assert deltas[c, i, j].item() == pytest.approx(context_model.code_bits(flipped, TABLES, prev=prev) - base, abs=1e-3)


def test_a_table_that_is_not_spatial_is_refused():
    with pytest.raises(ValueError, match="spatial-7 table"):
        ContextRate(np.zeros((14, 81), np.uint16))
    with pytest.raises(ValueError, match="needs previous frame"):
        ContextRate(TABLES["temporal"], layout=context_model.TEMPORAL)
    with pytest.raises(ValueError, match="takes no previous frame"):
        ContextRate(TABLES["spatial"], prev=torch.zeros((1, 14, 8, 16), dtype=torch.uint8))
