#!/usr/bin/env bash
# The "-1m" tier of the equal-budget comparison: each architecture's shipped 240,000-frame checkpoint
# continued with one recipe for 1,485 steps of 512 frames, to 1,000,320 frames each. Run on one GPU
# (measured: an H200, 80-186 s of training per model); every model gets the same data, crop pool,
# seed, steps, batch, schedule, rate weight and quantizer surrogate.
#
# usage: bash docs/scripts/equal_budget.sh [DATA_DIR] [RUNS_DIR]
set -euo pipefail
data=${1:-../shared/data/train}
runs=${2:-runs}
for arch in vit hybrid convnext cvit; do
    compressor train --encoder "$arch" --data "$data" --out "$runs/$arch-1m" --steps 1485 \
        --set device=cuda --set batch_size=512 --set lr=1e-3 --set warmup_steps=300 --set decay_fraction=0.3 \
        --set surrogate_temperature=8 --set pool_size=96000 --set val_every=500 \
        --set init_from="checkpoints/$arch.safetensors"
    bash "$(dirname "$0")/export_and_record.sh" "$runs/$arch-1m" "$arch-1m"
done
