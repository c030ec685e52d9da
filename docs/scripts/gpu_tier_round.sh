#!/usr/bin/env bash
# A GPU round, not yet run at full length (checked on the CPU with tiny step counts only): the
# comparison tier's second round of distillation and decoder fine-tuning, the recipe that made
# vit-distil2 / vit-distil2-ft from vit-distil-ft (docs/scripts/gpu_chain.sh), given to each
# "-1m-distil-ft" model with one step count for all (not --minutes, so every architecture sees the same
# frames):
#   ARCH-1m-distil2     the encoder distilled from 30-step refinement started at 0.25 of its latent
#                       (on kodak-frames that start beats 1 for all four: vit 22.52 -> 22.58 dB, cvit
#                       22.42 -> 22.48, hybrid 22.04 -> 22.22, convnext 22.59 -> 22.62), decoder fixed
#   ARCH-1m-distil2-ft  the decoder fine-tuned on those codes, encoder fixed
# Expected time on an H200 at the default steps: vit about 2 minutes (53 + 61 s for vit-distil2 and vit-distil2-ft), the
# others up to 2.5x that; run two architectures a call (ARCHS). Releases land in $OUT split in 15 MB parts
# (the machine returns files of at most 16 MiB): `cat NAME.safetensors.part* > NAME.safetensors`, then
# `compressor eval DIR --model NAME.safetensors --record SET` for each set, as export_and_record.sh does.
#
# usage (on the GPU machine, from the repository root, with the training data and wheels in place, see
# docs/training-record.md, Training):
#   OUT=/tmp/out ARCHS="vit cvit" bash docs/scripts/gpu_tier_round.sh     # then ARCHS="hybrid convnext"
set -u
T0=$(date +%s)
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
PY=${PY:-python3}; DEV=${DEV:-cuda}; DATA=${DATA:-../shared/data/train}; R=${R:-/tmp/runs}; mkdir -p "$R"
ARCHS=${ARCHS:-vit cvit hybrid convnext}; POOL=${POOL:-96000}
D_STEPS=${D_STEPS:-500}; D_BATCH=${D_BATCH:-128}; F_STEPS=${F_STEPS:-2000}; F_BATCH=${F_BATCH:-256}
say() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a "$OUT/tier.log"; }
train() { local arch=$1 run=$2; shift 2; $PY -m compressor train --encoder "$arch" --data "$DATA" --out "$R/$run" \
    --set device=$DEV --set pool_size=$POOL --set val_every=500 --set log_every=50 "$@" >> "$OUT/tier.log" 2>&1; }
release() { local run=$1
    $PY -m compressor export "$R/$run" "$R/$run.safetensors" --name "$run" >> "$OUT/tier.log" 2>&1 || return 1
    split -b 15000000 -d "$R/$run.safetensors" "$OUT/$run.safetensors.part"
    say "exported $run: $(sha256sum "$R/$run.safetensors" | cut -c1-16)"; }

for arch in $ARCHS; do
    say "$arch: distil $D_STEPS x $D_BATCH"
    train "$arch" "$arch-1m-distil2" --steps "$D_STEPS" --set batch_size="$D_BATCH" --set lr=2e-4 \
        --set warmup_steps=50 --set decay_fraction=0.3 --set freeze_decoder=true --set distill_refine=30 \
        --set distill_start_scale=0.25 --set init_from="checkpoints/$arch-1m-distil-ft.safetensors" \
        && release "$arch-1m-distil2" || { say "$arch: distillation failed (see tier.log)"; continue; }
    say "$arch: fine-tune $F_STEPS x $F_BATCH"
    train "$arch" "$arch-1m-distil2-ft" --steps "$F_STEPS" --set batch_size="$F_BATCH" --set lr=1e-4 \
        --set warmup_steps=100 --set decay_fraction=0.5 --set freeze_encoder=true \
        --set init_from="$R/$arch-1m-distil2.safetensors" \
        && release "$arch-1m-distil2-ft" || say "$arch: fine-tuning failed (see tier.log)"
done
tar czf "$OUT/runs.tgz" -C "$R" $(cd "$R" && ls -d */metrics.jsonl */config.json 2>/dev/null) 2>/dev/null
say "done"
