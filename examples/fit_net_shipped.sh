#!/usr/bin/env bash
# Give the five shipped checkpoints a context net (format version 3), one recipe for all
# (docs/entropy-coding.md): each keeps its own context tables, and the net is fitted on the codes of
# train/driving + train/photos (2,604 frames) and of 3 random crops of every one of those files
# (7,812 more), 5,000 steps of 4,096 tokens. Then re-records each card's results (same PSNR, fewer
# bytes). Rewrites checkpoints/*.safetensors in place: the model id changes; the id with the tables
# alone is kept as table_model_id, so version-1 and version-2 files and clips written before still decode.
#
# usage: bash examples/fit_net_shipped.sh [NAME ...]     (from the repository root; default: the five)
set -euo pipefail
data=../shared/data
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(vit.default vit.equal-budget cvit.equal-budget hybrid.equal-budget convnext.equal-budget)
for name in "${names[@]}"; do
    compressor fit-context "$name" --images "$data/train/driving" "$data/train/photos" --net --keep-tables --in-place
    for set in kodak-frames-128x256 driving-frames-128x256 kodak; do
        compressor eval "$data/eval/$set" --model "$name" --record "$set" | tail -1
    done
done
