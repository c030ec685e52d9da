#!/usr/bin/env bash
# The equal-budget comparison's coding made the default's (docs/training-record.md, "Snapping the
# equal-budget models"): each architecture's shipped model (the "-1m-distil-ft" tier, from git history)
# seeds a run with its encoder frozen, and its decoder trains on its codes snapped at c = 0.8 by its own
# context net, with vit.default's recipe (docs/scripts/snap_default.sh): 800 steps of 16 frames, lr
# 2e-5, warmup 50, linear decay over the second half, bf16 autocast, the same data and crop pool. The
# export keeps each seed's encoder and whole coding, so the files it wrote still decode.
#
# usage: bash docs/scripts/snap_equal_budget.sh [DATA_DIR] [RUNS_DIR] [ARCH...]   (from the repository root)
set -euo pipefail
data=${1:-../shared/data/train}
runs=${2:-runs}
shift $(( $# < 2 ? $# : 2 ))
archs=("$@")
[ ${#archs[@]} -gt 0 ] || archs=(vit cvit hybrid convnext)
mkdir -p "$runs"
for arch in "${archs[@]}"; do
    git show "1726f52:checkpoints/$arch-1m-distil-ft.safetensors" > "$runs/$arch-1m-distil-ft.safetensors"
    compressor train --encoder "$arch" --data "$data/driving" --data "$data/photos" --out "$runs/$arch-snap" \
        --steps 800 --set init_from="$runs/$arch-1m-distil-ft.safetensors" --set freeze_encoder=true --set snap=0.8 \
        --set lr=2e-5 --set warmup_steps=50 --set decay_fraction=0.5 --set pool_size=5208 --set val_every=400
    compressor export "$runs/$arch-snap" "checkpoints/$arch-1m-distil-snap.safetensors" --name "$arch.equal-budget"
    for set in kodak-frames-128x256 driving-frames-128x256 kodak; do
        compressor eval "../shared/data/eval/$set" --model "checkpoints/$arch-1m-distil-snap.safetensors" \
            --record "$set" | tail -1
    done
done
# The shipped cards then got their zoo alias (the file's stem) as `python -m compressor.zoo --normalise-cards`
# writes it (`zoo.normalise_card`), applied to these four files only.
