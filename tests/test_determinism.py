"""The same input gives the same bytes: across repeated runs, batch sizes 1 and 32, and 1 or 2 threads."""
import subprocess
import sys

import numpy as np
import pytest

from compressor.measure.evaluate import expand_paths
from compressor.zoo import shipped_models
from compressor.images import to_rgb_array
from tests.conftest import eval_dir

SCRIPT = """
import hashlib, sys, torch, compressor
from compressor.images import to_rgb_array
from compressor.measure.evaluate import expand_paths
torch.set_num_threads(int(sys.argv[1]))
codec = compressor.load(sys.argv[2])
frames = [to_rgb_array(f) for f in expand_paths(sys.argv[3:])]
print(hashlib.sha256(b"".join(codec.encode_batch(frames))).hexdigest())
"""


def test_batch_sizes_and_repeats_give_identical_bytes(tiny):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (128, 256, 3), dtype=np.uint8) for _ in range(33)]
    batched = tiny.encode_batch(frames)
    assert batched == [tiny.encode(f) for f in frames]
    assert batched == tiny.encode_batch(frames)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(shipped_models()))
def test_shipped_model_is_identical_across_batch_sizes(name):
    import compressor

    frames = [to_rgb_array(f) for f in expand_paths([eval_dir("kodak-frames-128x256")])]
    codec = compressor.load(name)
    assert codec.encode_batch(frames) == [codec.encode(f) for f in frames]


@pytest.mark.slow
@pytest.mark.parametrize("name", list(shipped_models()))
def test_one_and_two_threads_give_identical_bytes(name):
    folder = str(eval_dir("kodak-frames-128x256"))
    digests = {
        threads: subprocess.run([sys.executable, "-c", SCRIPT, str(threads), name, folder],
                                capture_output=True, text=True, check=True).stdout.strip()
        for threads in (1, 2)
    }
    assert digests[1] == digests[2] and len(digests[1]) == 64
