"""A short fuzz run of `decode` in CI; the long one is `python tests/fuzz_decode.py` (see its docstring)."""
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compressor import bitstream
from compressor.errors import CompressorError
from tests.fuzz_decode import fix_check, one_input, run, seed_files

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FAST
@given(data=st.binary(max_size=400))
def test_random_bytes(tiny, data):
    assert one_input(tiny, data) in ("decoded", "rejected")


_SEEDS: dict = {}  # the seed files, encoded once: encoding them for each of 300 examples took most of the test


@pytest.mark.slow  # 300 decodes of mutated files, some claiming large images; the seeded run below covers them by default
@FAST
@given(st.data())
def test_mutated_valid_files(tiny, data):
    if tiny.model_id not in _SEEDS:
        _SEEDS[tiny.model_id] = seed_files(tiny)
    seeds = _SEEDS[tiny.model_id]
    original = seeds[data.draw(st.integers(0, len(seeds) - 1))]
    edits = data.draw(st.lists(st.tuples(st.integers(0, len(original) - 1), st.integers(1, 255)), min_size=1,
                               max_size=4))
    buf = bytearray(original)
    for i, x in edits:
        buf[i] ^= x
    for candidate in (bytes(buf), fix_check(bytes(buf)), bytes(buf[: data.draw(st.integers(0, len(buf)))])):
        assert one_input(tiny, candidate) in ("decoded", "rejected")


def test_seeded_mutation_run_has_no_crash_or_hang(tiny):
    # A generous hang limit: CI machines can be busy, and a header may honestly claim a large image;
    # the long run (`python tests/fuzz_decode.py`) keeps the one-second limit.
    result = run(tiny, seed_files(tiny), iterations=2000, seed=1, hang_s=30.0)
    assert result["crashes"] == 0 and result["hangs"] == 0, result["crash_examples"]
    assert result["rejected"] > 0 and result["decoded"] > 0


def test_short_input_raises_the_library_error(tiny):
    with pytest.raises(CompressorError, match="truncated"):
        tiny.decode(b"\xcf\x10")


def test_seeded_mutation_run_with_context_tables_has_no_crash_or_hang(tiny_ctx):
    seeds = seed_files(tiny_ctx)
    assert {f[1] >> 4 for f in seeds} == {1, 2, 4} and "context" in _standard_codings(seeds)
    result = run(tiny_ctx, seeds, iterations=1500, seed=2, hang_s=30.0)
    assert result["crashes"] == 0 and result["hangs"] == 0, result["crash_examples"]
    assert result["rejected"] > 0 and result["decoded"] > 0


def test_seeded_mutation_run_with_a_context_net_has_no_crash_or_hang(tiny_net):
    seeds = seed_files(tiny_net)
    assert {f[1] >> 4 for f in seeds} == {1, 2, 3, 4} and {"context", "net"} <= _standard_codings(seeds)
    result = run(tiny_net, seeds, iterations=1000, seed=3, hang_s=30.0)
    assert result["crashes"] == 0 and result["hangs"] == 0, result["crash_examples"]
    assert result["rejected"] > 0 and result["decoded"] > 0


def _standard_codings(files: list[bytes]) -> set[str]:
    """The payload codings among version-4 (5-byte header) files."""
    return {bitstream.unpack(f)[0].coding for f in files if f[1] >> 4 == bitstream.VERSION_STANDARD}
