#!/usr/bin/env bash
# Give the five shipped comparison checkpoints context tables, one recipe for all (docs/entropy-coding.md),
# then re-record each card's results (same PSNR, fewer bytes). Rewrites checkpoints/*.safetensors in place:
# a checkpoint's model id changes, its old id is kept as legacy_model_id so version-1 files still decode.
#
# It was run on vit-distil2-ft and the four *-1m-distil-ft models, the shipped models then (their files:
# git show 1726f52:checkpoints/NAME.safetensors). Today's shipped models carry those tables and nets bit
# for bit under a decoder fine-tuned on snapped codes, and refitting one would refuse the files its seed
# wrote, so the script takes the names (or paths) to fit and has no default.
#
# usage: bash examples/fit_context_shipped.sh NAME_OR_PATH...     (from the repository root)
set -euo pipefail
data=../shared/data
[ $# -gt 0 ] || { echo "usage: bash examples/fit_context_shipped.sh NAME_OR_PATH..." >&2; exit 2; }
for name in "$@"; do
    compressor fit-context "$name" --images "$data/train/driving" "$data/train/photos" --in-place
    for set in kodak-frames-128x256 driving-frames-128x256 kodak; do
        compressor eval "$data/eval/$set" --model "$name" --record "$set" | tail -1
    done
done
