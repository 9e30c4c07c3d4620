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
# Then the training loop itself (batching, prefetch, the one host sync per update; validation
# excluded): `lightformer train` on a synthetic corpus of the paper vocabulary's size and
# IWSLT-like lengths, with the fused and the dense loss, tokens/s and MFU from summary.json.
#
# Writes OUTDIR/train.csv (one row per model, engine and setting; the command in each),
# OUTDIR/plan_cost.csv, OUTDIR/loop.csv and OUTDIR/train.log. Runs from the repository root; needs torch and transformers.
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
    LOOP_DATA=(--vocab 200 --train 600 --min-len 5 --max-len 20)
    LOOP_TRAIN=(--recipe synthetic arch=transformer_tiny max_updates=4 max_tokens=512 device=cpu)
    COMMON=(--device cpu --dtype fp32 --steps 2 --warmup 1)
    RUNS=("--paper-size iwslt14 --max-tokens 512" "--paper-size wmt14 --max-tokens 512"
          "--paper-size iwslt14 --max-tokens 512 --loss fused --no-hf")
else
    LOOP_DATA=(--vocab 8000 --train 60000 --min-len 5 --max-len 50)
    LOOP_TRAIN=(--recipe iwslt_de_en max_updates=${LOOP_UPDATES:-300} device=cuda)  # the paper recipe, 4k tokens
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

$LF data synthetic --out "$OUTDIR/loop_data" "${LOOP_DATA[@]}" --valid 64 --test 8 >> "$LOG" 2>&1
for loss in on off; do
    start=$(date +%s)
    $LF train "${LOOP_TRAIN[@]}" data="$OUTDIR/loop_data" save_dir="$OUTDIR/loop_$loss" \
        fused_loss=$loss eval_bleu=false validate_interval_updates=0 save_interval_updates=0 >> "$LOG" 2>&1
    echo "# loop fused_loss=$loss: $(( $(date +%s) - start )) s" >> "$LOG"
done
$PY - "$OUTDIR" <<'PY' | tee -a "$LOG"
import csv, json, sys
from pathlib import Path
out = Path(sys.argv[1])
keys = ["num_updates", "tokens_seen", "train_tokens_per_s", "train_tflops", "mfu", "device_name"]
rows = [{"fused_loss": loss} | {k: json.loads((out / f"loop_{loss}" / "summary.json").read_text()).get(k) for k in keys}
        for loss in ("on", "off")]
with open(out / "loop.csv", "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
for r in rows:
    print(f"loop fused_loss={r['fused_loss']}: {r['train_tokens_per_s']:.0f} tok/s, MFU {r['mfu']}")
PY
