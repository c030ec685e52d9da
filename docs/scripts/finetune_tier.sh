#!/usr/bin/env bash
# The "-1m-distil-ft" tier of the equal-budget comparison: each "-1m-distil" model with its decoder
# fine-tuned on its distilled encoder's fixed codes (freeze_encoder: the encoder stays bit for bit the
# seed's), one recipe for all four: 1,500 steps of 16 frames at lr 5e-5 (warmup 100, linear decay over
# the second half), the same data, crop pool (48,000 crops) and seed. `vit-distil-ft` is the same recipe
# at 12,000 steps from `vit-distil`. Runs on the CPU (measured: two models at a time, one thread each,
# 12-20 minutes of training per model). The export keeps the seed card's "encode_precision" (the
# encoder is the seed's), so the recorded results are measured as `compressor eval` runs the model.
#
# usage: bash docs/scripts/finetune_tier.sh [DATA_DIR] [RUNS_DIR]
set -euo pipefail
data=${1:-../shared/data/train}
runs=${2:-runs}
for arch in vit hybrid convnext cvit; do
    compressor train --encoder "$arch" --data "$data" --out "$runs/$arch-1m-distil-ft" --steps 1500 \
        --set init_from="checkpoints/$arch-1m-distil.safetensors" --set freeze_encoder=true --set lr=5e-5 \
        --set batch_size=16 --set warmup_steps=100 --set decay_fraction=0.5 --set pool_size=48000 --set val_every=500
    bash "$(dirname "$0")/export_and_record.sh" "$runs/$arch-1m-distil-ft" "$arch-1m-distil-ft"
done
