#!/usr/bin/env bash
# Give the five shipped comparison checkpoints context tables, one recipe for all (docs/entropy-coding.md),
# then re-record each card's results (same PSNR, fewer bytes). Rewrites checkpoints/*.safetensors in place:
# a checkpoint's model id changes, its old id is kept as legacy_model_id so version-1 files still decode.
#
# vit-distil2-ft (git show 1726f52:checkpoints/vit-distil2-ft.safetensors) was the default then; vit.default
# (vit-distil2-snap) carries its tables and net bit for bit, so refitting it would refuse that model's files.
#
# usage: bash examples/fit_context_shipped.sh [NAME ...]     (from the repository root; default: the five)
set -euo pipefail
data=../shared/data
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(vit-distil2-ft vit-1m-distil-ft cvit-1m-distil-ft hybrid-1m-distil-ft convnext-1m-distil-ft)
for name in "${names[@]}"; do
    compressor fit-context "$name" --images "$data/train/driving" "$data/train/photos" --in-place
    for set in kodak-frames-128x256 driving-frames-128x256 kodak; do
        compressor eval "$data/eval/$set" --model "checkpoints/$name.safetensors" --record "$set" | tail -1
    done
done
