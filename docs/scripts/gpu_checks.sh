#!/usr/bin/env bash
# One call of a GPU machine (an NVIDIA H200 when it ran): the commands that run a network on a GPU, the
# architectures' networks against the frame size there, and the searches' speed there. Every step logs to
# $OUT/gpu.log and goes on if one fails.
#   1. the tests that need a CUDA GPU (files moving between CPU and GPU; every command's --device)
#   2. examples/network_scaling.py: the four architectures' encoder and decoder alone at 128x256 to
#      1024x2048, in the codec's windows and (global attention) whole
#   3. compressor speed on the GPU: plain, --flips 2 and --refine 30; compressor eval --refine 30
#   4. the 1,200-frame test clip: compressor tokens, compress and decompress with --device cuda against
#      the machine's CPU cores, and the share of token bits the two agree on
#
# usage (on the GPU machine, from the repository root). It needs, in GPU_DIR (default .gpu/): wheels of
# the packages the machine lacks (constriction, av), the default's checkpoint, the test clip
# (examples/driving_clip.py --frames 1200 --fps 20), an evaluation frame set in kodak-frames/, and the
# four architectures' model configs in cfg/ (a checkpoint's card config; the speed needs no weights).
#   OUT=/tmp/out bash docs/scripts/gpu_checks.sh
set -u
T0=$(date +%s)
OUT=${OUT:-/tmp/out}; G=${GPU_DIR:-.gpu}; PY=${PY:-python3}; DEV=${DEV:-cuda}; CLIP=${CLIP:-$G/drive1200.mp4}
EVAL=${EVAL:-$G/kodak-frames}; FRAMES=${FRAMES:-2048}; SEARCH_FRAMES=${SEARCH_FRAMES:-512}; SIZES=${SIZES:-128x256,256x512,512x1024,1024x2048}
mkdir -p "$OUT"
say() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a "$OUT/gpu.log"; }
run() { say "\$ $*"; "$@" >> "$OUT/gpu.log" 2>&1 || say "failed ($?): $*"; }
timed() { local s; s=$(date +%s.%N); run "$@"; say "took $(awk "BEGIN { print $(date +%s.%N) - $s }") s"; }

$PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$G"/*.whl \
    >> "$OUT/gpu.log" 2>&1 || say "wheels failed"
export PYTHONPATH=$PWD:/tmp/site PYTHONUNBUFFERED=1
mkdir -p checkpoints && cp -n "$G"/vit-distil2-snap.safetensors checkpoints/ 2>/dev/null
run nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
say "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2) x $(nproc)"
run $PY -c "import torch, numpy, PIL, av, constriction, compressor; print(torch.__version__, numpy.__version__, PIL.__version__, av.__version__)"

say "1. tests"
run $PY -m pytest -q -p no:cacheprovider tests/test_codec.py::test_files_move_between_cpu_and_gpu \
    tests/test_tokens.py::test_commands_that_run_a_network_run_it_on_the_device_asked_for

say "2. networks against frame size"
CFG=$(ls "$G"/cfg/*.json | tr '\n' ',' | sed 's/,$//')
run $PY examples/network_scaling.py --models "$CFG" --device $DEV --sizes $SIZES --whole --out "$OUT/scaling.json"

say "3. whole codec and searches"
run $PY -m compressor speed --device $DEV --batch 256 --frames $FRAMES --repeats 3
run $PY -m compressor speed --device $DEV --batch 256 --frames $SEARCH_FRAMES --repeats 2 --flips 2
run $PY -m compressor speed --device $DEV --batch 256 --frames $SEARCH_FRAMES --repeats 2 --refine 30
timed $PY -m compressor eval "$EVAL" --device $DEV
timed $PY -m compressor eval "$EVAL" --device $DEV --refine 30
timed $PY -m compressor eval "$EVAL" --device $DEV --flips 2

say "4. the 1,200-frame clip"
timed $PY -m compressor tokens "$CLIP" --out /tmp/t-gpu.npy --device $DEV
timed $PY -m compressor tokens "$CLIP" --out /tmp/t-cpu.npy
run $PY -c "import numpy as np; a, b = (np.unpackbits(np.load(p).view(np.uint8)) for p in ('/tmp/t-gpu.npy', '/tmp/t-cpu.npy')); print(f'token bits equal GPU / CPU: {np.mean(a == b):.5f} of {a.size}')"
timed $PY -c "from compressor.cli import compress_main; compress_main(['$CLIP', '/tmp/c-gpu.bin', '--device', '$DEV'])"
timed $PY -c "from compressor.cli import compress_main; compress_main(['$CLIP', '/tmp/c-cpu.bin'])"
timed $PY -c "from compressor.cli import decompress_main; decompress_main(['/tmp/c-gpu.bin', '/tmp/c-gpu.mkv', '--device', '$DEV'])"
timed $PY -c "from compressor.cli import decompress_main; decompress_main(['/tmp/c-gpu.bin', '/tmp/c-cpu.mkv'])"
run ls -l /tmp/c-gpu.bin /tmp/c-cpu.bin
say "done"
