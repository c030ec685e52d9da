#!/usr/bin/env bash
# Whole-codec speed A/B (docs/entropy-coding.md, "Snapping"): per-channel coding (c2baa42's checkpoint), the
# former default with its net (vit-distil2-ft, 1726f52) and vit.default (net + snap), interleaved, so the
# three share the machine's moods. Medians of the rounds are what the docs report.
#
# usage: bash docs/scripts/speed_ab.sh [ROUNDS]      (from the repository root)
set -euo pipefail
rounds=${1:-4}
tmp=$(mktemp -d)
git show c2baa42:checkpoints/vit-distil2-ft.safetensors > "$tmp/per-channel.safetensors"
git show 1726f52:checkpoints/vit-distil2-ft.safetensors > "$tmp/vit-distil2-ft.safetensors"
for round in $(seq "$rounds"); do
    for model in "$tmp/per-channel.safetensors" "$tmp/vit-distil2-ft.safetensors" vit.default; do
        echo "round $round $(basename "$model"): $(compressor speed --model "$model" --frames 256 --repeats 5 --threads 2 | tail -1)"
    done
done
rm -rf "$tmp"
