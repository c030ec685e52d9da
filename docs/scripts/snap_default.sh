#!/usr/bin/env bash
# vit.default's decoder fine-tuned on snapped codes (docs/training-record.md, "Snapping shipped"): the
# former default (vit-distil2-ft, from git history) seeds the run with its encoder frozen; the decoder
# trains 800 steps of 16 frames on its codes snapped at c = 0.8 by its context net (lr 2e-5, warmup 50,
# linear decay over the second half, bf16 autocast). The export keeps the seed's encoder, per-channel
# table, context tables and net, and writes "snap": 0.8 and the seed's ids (reads_files_of) into the card,
# so the seed's files still decode. 2 cores of an AMD EPYC: about 9 minutes of training.
#
# usage: bash docs/scripts/snap_default.sh [DATA_DIR] [RUNS_DIR]     (from the repository root)
set -euo pipefail
data=${1:-../shared/data/train}
runs=${2:-runs}
mkdir -p "$runs"
git show 1726f52:checkpoints/vit-distil2-ft.safetensors > "$runs/vit-distil2-ft.safetensors"
compressor train --encoder vit --data "$data/driving" --data "$data/photos" --out "$runs/vit-snap" --steps 800 \
    --set init_from="$runs/vit-distil2-ft.safetensors" --set freeze_encoder=true --set snap=0.8 --set lr=2e-5 \
    --set warmup_steps=50 --set decay_fraction=0.5 --set pool_size=5208 --set val_every=400
compressor export "$runs/vit-snap" checkpoints/vit-distil2-snap.safetensors --name vit.default
for set in kodak-frames-128x256 driving-frames-128x256 kodak; do
    compressor eval "../shared/data/eval/$set" --model checkpoints/vit-distil2-snap.safetensors --record "$set" | tail -1
done
