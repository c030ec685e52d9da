#!/usr/bin/env bash
# Export a finished run as a release checkpoint and record its results on the three evaluation sets in
# its model card (`compressor eval --record`), as every tier script does for each architecture.
#
# usage: bash docs/scripts/export_and_record.sh RUN_DIR NAME      (writes checkpoints/NAME.safetensors)
set -euo pipefail
run=$1
name=$2
compressor export "$run" "checkpoints/$name.safetensors" --name "$name"
for set in kodak-frames-128x256 driving-frames-128x256 kodak; do
    compressor eval "../shared/data/eval/$set" --model "checkpoints/$name.safetensors" --record "$set" | tail -1
done
