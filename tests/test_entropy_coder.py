import numpy as np
import pytest

from compressor import entropy_coder
from compressor.errors import BitstreamError


def _table(p_one: np.ndarray) -> np.ndarray:
    cdf = np.zeros((len(p_one), 3), np.int32)
    cdf[:, 1] = np.clip(np.round((1 - p_one) * 65536), 1, 65535)
    cdf[:, 2] = 65536
    return cdf


@pytest.mark.parametrize("shape", [(14, 8, 16), (14, 1, 1), (14, 3, 7), (14, 32, 48)])
def test_decoded_symbols_equal_encoded_symbols(shape):
    rng = np.random.default_rng(sum(shape))
    p = rng.uniform(0.02, 0.98, shape[0])
    cdf = _table(p)
    symbols = (rng.random(shape) < p[:, None, None]).astype(np.uint8)
    coded = entropy_coder.encode(symbols, cdf)
    decoded = entropy_coder.decode(coded, cdf, shape)
    assert decoded.dtype == np.uint8
    np.testing.assert_array_equal(decoded, symbols)


def test_code_length_is_close_to_information_content():
    rng = np.random.default_rng(0)
    p = rng.uniform(0.05, 0.95, 14)
    cdf = _table(p)
    symbols = (rng.random((14, 8, 16)) < p[:, None, None]).astype(np.uint8)
    q = 1 - cdf[:, 1] / 65536
    info_bits = -np.sum(np.where(symbols, np.log2(q)[:, None, None], np.log2(1 - q)[:, None, None]))
    coded = entropy_coder.encode(symbols, cdf)
    assert info_bits / 8 - 1 <= len(coded) <= info_bits / 8 + 8


def test_skewed_symbols_compress_below_raw_and_uniform_do_not():
    cdf = _table(np.full(14, 0.05))
    zeros = np.zeros((14, 8, 16), np.uint8)
    assert len(entropy_coder.encode(zeros, cdf)) < 20
    uniform = _table(np.full(14, 0.5))
    rng = np.random.default_rng(1)
    noise = rng.integers(0, 2, (14, 8, 16)).astype(np.uint8)
    assert len(entropy_coder.encode(noise, uniform)) >= entropy_coder.raw_size(noise.size) - 4


def test_raw_bits_round_trip_and_length_check():
    rng = np.random.default_rng(2)
    symbols = rng.integers(0, 2, (14, 8, 16)).astype(np.uint8)
    raw = entropy_coder.pack_raw(symbols)
    assert len(raw) == 224
    np.testing.assert_array_equal(entropy_coder.unpack_raw(raw, symbols.shape), symbols)
    with pytest.raises(BitstreamError):
        entropy_coder.unpack_raw(raw[:-1], symbols.shape)


def test_garbage_payloads_never_crash():
    rng = np.random.default_rng(3)
    cdf = _table(rng.uniform(0.1, 0.9, 14))
    for _ in range(2000):
        data = rng.integers(0, 256, int(rng.integers(0, 300))).astype(np.uint8).tobytes()
        try:
            out = entropy_coder.decode(data, cdf, (14, 8, 16))
        except BitstreamError:
            continue
        assert out.shape == (14, 8, 16) and set(np.unique(out)) <= {0, 1}
