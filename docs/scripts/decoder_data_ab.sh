#!/usr/bin/env bash
# The default's decoder fine-tuned 600 more steps on its snapped codes, on photos only against the shipped
# recipe's driving + photos (docs/training-record.md, "Photos only for the decoder"): the encoder frozen,
# snap 0.8, lr 2e-5, warmup 50, linear decay over the second half, 5,208 crops, bf16 autocast where the CPU
# has bf16 units. Each arm is exported and scored on both evaluation frame sets.
#
# usage: bash docs/scripts/decoder_data_ab.sh [DATA_DIR] [RUNS_DIR]     (from the repository root)
set -euo pipefail
data=${1:-../shared/data/train}
runs=${2:-runs}
mkdir -p "$runs"
for arm in photos mix; do
    if [ "$arm" = mix ]; then folders=(--data "$data/driving" --data "$data/photos"); else folders=(--data "$data/photos"); fi
    compressor train --encoder vit "${folders[@]}" --out "$runs/data-$arm" --steps 600 \
        --set init_from=checkpoints/vit-distil2-snap.safetensors --set freeze_encoder=true --set snap=0.8 \
        --set lr=2e-5 --set warmup_steps=50 --set decay_fraction=0.5 --set pool_size=5208 --set val_every=600
    compressor export "$runs/data-$arm" "$runs/data-$arm.safetensors" --name "vit.data-$arm"
    for set in kodak-frames-128x256 driving-frames-128x256; do
        compressor eval "../shared/data/eval/$set" --model "$runs/data-$arm.safetensors" | tail -1
    done
done
