#!/usr/bin/env bash
# The distillation A/B of docs/training-record.md ("Equally good searches disagree"), on one GPU: the
# default's encoder distilled again from 30-step refinement with one search a frame against four
# (distill_searches), everything else equal; releases split in 15 MB parts for the GPU machine's trip back.
# Score them with `python docs/scripts/search_ties_probe.py graft k1.safetensors k4.safetensors`.
#
# usage (on the GPU machine, from the repository root, with compressai installed):
#   OUT=/tmp/out DATA=DIR SEED=checkpoints/vit-distil2-snap.safetensors bash docs/scripts/distil_searches_ab.sh
# DATA held every 6th file of train/driving + train/photos (434 files) when it ran.
set -u
OUT=${OUT:-/tmp/out}; PY=${PY:-python3}; DEV=${DEV:-cuda}; STEPS=${STEPS:-200}; B=${B:-128}; R=${R:-/tmp/runs}
POOL=${POOL:-16000}; REFINE=${REFINE:-30}; ARMS=${ARMS:-4 1}; DATA=${DATA:-../shared/data/train}
SEED=${SEED:-checkpoints/vit-distil2-snap.safetensors}
mkdir -p "$OUT" "$R"
T0=$(date +%s)
for K in $ARMS; do
  echo "[$(( $(date +%s) - T0 ))s] arm K=$K" | tee -a "$OUT/ab.log"
  $PY -m compressor train --encoder vit --data "$DATA" --out "$R/k$K" --steps "$STEPS" --set device=$DEV \
    --set batch_size=$B --set lr=2e-4 --set warmup_steps=50 --set decay_fraction=0.3 --set freeze_decoder=true \
    --set distill_refine=$REFINE --set distill_start_scale=0.25 --set distill_searches=$K \
    --set init_from="$SEED" --set pool_size=$POOL --set cache_dir=/tmp/cache \
    --set val_every=100 --set log_every=25 >> "$OUT/ab.log" 2>&1 || echo "arm K=$K failed" | tee -a "$OUT/ab.log"
  $PY -m compressor export "$R/k$K" "$R/k$K.safetensors" >> "$OUT/ab.log" 2>&1 && \
    split -b 15000000 -d "$R/k$K.safetensors" "$OUT/k$K.safetensors.part" && \
    sha256sum "$R/k$K.safetensors" | tee -a "$OUT/ab.log"
  cp "$R/k$K/metrics.jsonl" "$OUT/k$K.metrics.jsonl" 2>/dev/null
  echo "[$(( $(date +%s) - T0 ))s] arm K=$K done" | tee -a "$OUT/ab.log"
done
