#!/usr/bin/env bash
# About 9 minutes of one H200, three stretches chained through release checkpoints; what
# made vit-distil2 and vit-distil2-ft (docs/training-record.md, Training):
#   j: the seed trained jointly on more frames                    -> vit-long3 (not shipped)
#   d: an encoder distilled from 30-step refinement, decoder fixed -> vit-distil2 (seeded from j if j's
#      final validation PSNR beats SEEDVAL, else from the seed itself: for vit-distil2-ft j lost, 22.36 dB)
#   f: the decoder fine-tuned on d's fixed codes                   -> vit-distil2-ft
# Each stretch is `compressor train --minutes M` (its speed probe fits the steps to the time). The releases
# land in $OUT split in 15 MB parts (the GPU machine returned files of at most 16 MiB): `cat NAME.part* >
# NAME.safetensors` puts one together again. Every knob is an environment variable.
#
# usage (on the GPU machine, from the repository root):
#   git show d948f12:checkpoints/vit-distil-ft.safetensors > /tmp/vit-distil-ft.safetensors  # a former model
#   OUT=/tmp/out DATA=../shared/data/train SEED=/tmp/vit-distil-ft.safetensors bash docs/scripts/gpu_chain.sh
set -u
T0=$(date +%s)
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
PY=${PY:-python3}; DEV=${DEV:-cuda}; DATA=${DATA:-../shared/data/train}
SEED=${SEED:-/tmp/vit-distil-ft.safetensors}; SEEDVAL=${SEEDVAL:-22.74}
M1=${M1:-4.8}; M2=${M2:-1.7}; M3=${M3:-1.3}; LIMIT=${LIMIT:-560}
B1=${B1:-512}; B2=${B2:-128}; B3=${B3:-256}; POOL=${POOL:-96000}; R=${R:-/tmp/runs}
mkdir -p "$R"
say() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a "$OUT/chain.log"; }
left() { echo $(( LIMIT - ($(date +%s) - T0) )); }
train() { local run=$1; shift; $PY -m compressor train --encoder vit --data "$DATA" --out "$R/$run" \
    --set device=$DEV --set pool_size=$POOL --set val_every=500 --set log_every=50 "$@" >> "$OUT/chain.log" 2>&1; }
export_split() { local run=$1 name=$2
    $PY -m compressor export "$R/$run" "$R/$name.safetensors" >> "$OUT/chain.log" 2>&1 || return 1
    split -b 15000000 -d "$R/$name.safetensors" "$OUT/$name.safetensors.part"
    say "exported $name: $(sha256sum "$R/$name.safetensors" | cut -c1-16)"; }
lastval() { $PY -c "import json,sys; v=[json.loads(l) for l in open(sys.argv[1])]; v=[r for r in v if 'val_psnr' in r]; print(v[-1]['val_psnr'] if v else 0)" "$1/metrics.jsonl"; }
pack_logs() { tar czf "$OUT/runs.tgz" -C "$R" $(cd "$R" && ls -d */metrics.jsonl */config.json */curves.png 2>/dev/null) 2>/dev/null; }

say "start: seed $SEED, device $DEV"
train j --minutes "$M1" --set batch_size=$B1 --set lr=3e-4 --set warmup_steps=200 --set decay_fraction=0.5 \
    --set surrogate_temperature=8 --set init_from="$SEED" && export_split j vit-long3
JVAL=$(lastval "$R/j" 2>/dev/null || echo 0); say "joint: final val $JVAL (seed $SEEDVAL)"; pack_logs
BASE=$SEED
if [ -f "$R/vit-long3.safetensors" ] && $PY -c "import sys; sys.exit(0 if float(sys.argv[1]) > float(sys.argv[2]) else 1)" "$JVAL" "$SEEDVAL"; then
    BASE=$R/vit-long3.safetensors
fi
say "distil from $BASE ($(left) s left)"
if [ "$(left)" -gt 150 ]; then
    train d --minutes "$M2" --set batch_size=$B2 --set lr=2e-4 --set warmup_steps=50 --set decay_fraction=0.3 \
        --set freeze_decoder=true --set distill_refine=30 --set distill_start_scale=0.25 --set init_from="$BASE" \
        && export_split d vit-distil2
    say "distil: final val $(lastval "$R/d" 2>/dev/null)"; pack_logs
fi
say "fine-tune ($(left) s left)"
if [ -f "$R/vit-distil2.safetensors" ] && [ "$(left)" -gt 90 ]; then
    train f --minutes "$M3" --set batch_size=$B3 --set lr=1e-4 --set warmup_steps=100 --set decay_fraction=0.5 \
        --set freeze_encoder=true --set init_from="$R/vit-distil2.safetensors" && export_split f vit-distil2-ft
    say "fine-tune: final val $(lastval "$R/f" 2>/dev/null)"; pack_logs
fi
say "done"
