#!/usr/bin/env bash
# Training-throughput check (issue 14): no network, no data. Times the training step (forward,
# label-smoothed loss, backward, fused AdamW; bf16 autocast) of the paper-size IWSLT and WMT-base
# models, their LightFormer versions at the abstract's compression, and Hugging Face's Marian of
# the same configuration on the same synthetic batches (the task's vocabularies and sentence
# lengths), eager and torch.compile'd, and ours once more with the dense (unfused) loss as the
# before of the fused loss. Then prices workflow/configs/paper.yaml in GPU-hours from
# those rows (lightformer plan-cost).
#
#   bash workflow/scripts/train_check.sh [OUTDIR]         # one H100/H200: a few minutes
#   REDUCED=1 bash workflow/scripts/train_check.sh DIR    # CPU, fp32, a few steps (tests)
#
# Writes OUTDIR/train.csv (one row per model, engine and setting; the command in each),
# OUTDIR/plan_cost.csv and OUTDIR/train.log. Runs from the repository root; needs torch and transformers.
set -euo pipefail
OUTDIR=${1:-results/speed/train}
PY=${PYTHON:-python3}
export PYTHONPATH="$(pwd)${PYTHONPATH:+:$PYTHONPATH}"
LF="$PY -m lightformer"
mkdir -p "$OUTDIR"
LOG="$OUTDIR/train.log"
CSV="$OUTDIR/train.csv"
: > "$LOG"
rm -f "$CSV"

if [ "${REDUCED:-0}" = 1 ]; then
    COMMON=(--device cpu --dtype fp32 --steps 2 --warmup 1)
    RUNS=("--paper-size iwslt14 --max-tokens 512" "--paper-size wmt14 --max-tokens 512"
          "--paper-size iwslt14 --max-tokens 512 --loss fused --no-hf")
else
    COMMON=(--device cuda --dtype bf16 --steps ${STEPS:-30} --warmup ${WARMUP:-5})
    RUNS=("--paper-size iwslt14 --max-tokens 4096"
          "--paper-size iwslt14 --max-tokens 16384"
          "--paper-size wmt14 --max-tokens 4096"
          "--paper-size wmt14 --max-tokens 16384"
          "--paper-size iwslt14 --max-tokens 16384 --loss dense --no-hf"
          "--paper-size wmt14 --max-tokens 16384 --loss dense --no-hf"
          "--paper-size iwslt14 --max-tokens 16384 --compile"
          "--paper-size wmt14 --max-tokens 16384 --compile")
fi

{ echo "# $(date -u +%FT%TZ) $(uname -n)"; $PY -c "import torch, transformers; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'transformers', transformers.__version__)"; } >> "$LOG"
for run in "${RUNS[@]}"; do
    start=$(date +%s)
    # shellcheck disable=SC2086  # each run is a list of options
    $LF bench train $run "${COMMON[@]}" --out "$CSV" --append 2>&1 | tee -a "$LOG"
    echo "# $run: $(( $(date +%s) - start )) s" >> "$LOG"
done
$LF plan-cost workflow/configs/paper.yaml --bench "$CSV" --out "$OUTDIR/plan_cost.csv" 2>&1 | tee -a "$LOG"
