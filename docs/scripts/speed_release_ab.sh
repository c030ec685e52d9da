#!/usr/bin/env bash
# Whole-codec speed against the release issue 24 measured from: the code and default of c2baa42 (per-channel
# coding, run from a git worktree of that commit), beside today's code with that checkpoint (what the
# context coder alone costs) and today's vit.default (net + snap), interleaved, so the three share the
# machine's moods. Medians of the rounds are what the docs report.
#
# usage: bash docs/scripts/speed_release_ab.sh [ROUNDS]      (from the repository root, the venv active)
set -euo pipefail
rounds=${1:-4}
tmp=$(mktemp -d)
trap 'git worktree remove --force "$tmp/release" >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
git worktree add -q --detach "$tmp/release" c2baa42
git show c2baa42:checkpoints/vit-distil2-ft.safetensors > "$tmp/per-channel.safetensors"
speed=(speed --frames 256 --repeats 5 --threads 2)
for round in $(seq "$rounds"); do
    echo "round $round release c2baa42: $(cd "$tmp" && PYTHONPATH="$tmp/release" python -m compressor "${speed[@]}" | tail -1)"
    echo "round $round per-channel, today's code: $(compressor "${speed[@]}" --model "$tmp/per-channel.safetensors" | tail -1)"
    echo "round $round vit.default: $(compressor "${speed[@]}" | tail -1)"
done
