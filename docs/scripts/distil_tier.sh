#!/usr/bin/env bash
# The "-1m-distil" tier of the equal-budget comparison: each architecture's "-1m" checkpoint with its
# encoder distilled from 30-step refinement (decoder frozen), one recipe for all four: 150 steps of 32
# frames, a batch refined every 4 steps (1,216 refined frames), same data, crop pool and seed. Runs on
# the CPU (measured: 2 threads, 8-12 minutes of training per model, most of it in the refinement).
# The shipped cards were then given "encode_precision": "bf16" (checkpoint.update_card) and evaluated
# again with --record; this script records float32-encoded results (within 0.01 dB of those).
#
# usage: bash docs/scripts/distil_tier.sh [DATA_DIR] [RUNS_DIR]
set -euo pipefail
data=${1:-../shared/data/train}
runs=${2:-runs}
for arch in vit hybrid convnext cvit; do
    compressor train --encoder "$arch" --data "$data" --out "$runs/$arch-1m-distil" --steps 150 \
        --set init_from="checkpoints/$arch-1m.safetensors" --set freeze_decoder=true --set distill_refine=30 \
        --set lr=2e-4 --set batch_size=32 --set warmup_steps=50 --set decay_fraction=0.3 --set val_every=50
    bash "$(dirname "$0")/export_and_record.sh" "$runs/$arch-1m-distil" "$arch-1m-distil"
done
