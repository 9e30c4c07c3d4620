#!/usr/bin/env bash
# Real text with the controls, without Snakemake (issues 23, 28): on a prepared DDTP directory, the
# baseline of the iwslt_de_en recipe; SVD transfer at 3.8x fine-tuned with the finetune recipe; and
# the controls given the baseline's recipe and budget: random factors, random_svd, dense_small at
# 3.8x and sharing alone (all, sandwich). Then the task table, the convergence table and the
# light-weight comparison, as the workflow renders them (lightformer report ...).
#
#   DATA=DIR bash workflow/scripts/real_text_check.sh OUT     # one GPU, transformer_iwslt_de_en size
#   REDUCED=1 DATA=DIR bash workflow/scripts/real_text_check.sh OUT   # CPU, tiny model (tests)
#
# BASE_UPDATES / FT_UPDATES set the budgets (defaults 1,500 / 300 on a GPU). Each model's outputs
# land in OUT/<stage>/<model>/seed1/ as the workflow lays them out; OUT/real.log has every command.
set -euo pipefail
OUT=${1:?usage: DATA=PREPARED_DIR real_text_check.sh OUTDIR}
DATA=${DATA:?set DATA to a prepared directory, e.g. results/data/ddtp/prepared}
PY=${PYTHON:-python3}
export PYTHONPATH="$(pwd)${PYTHONPATH:+:$PYTHONPATH}"
LF="$PY -m lightformer"
mkdir -p "$OUT"
LOG="$OUT/real.log"
: > "$LOG"

if [ "${REDUCED:-0}" = 1 ]; then
    BASE=(--recipe synthetic arch=transformer_tiny max_updates=${BASE_UPDATES:-12} validate_interval_updates=6
          eval_max_sentences=8 device=cpu)
    FT=(--recipe synthetic max_updates=${FT_UPDATES:-4} lr=0.001 warmup_updates=2 validate_interval_updates=2
        eval_max_sentences=8 device=cpu)
    GEN=(--beam 2 --device cpu)
else
    BASE=(--recipe iwslt_de_en max_updates=${BASE_UPDATES:-1500} warmup_updates=400 validate_interval_updates=250
          save_interval_updates=0 eval_max_sentences=300 device=cuda)
    FT=(--recipe finetune max_updates=${FT_UPDATES:-300} warmup_updates=50 validate_interval_updates=50
        save_interval_updates=0 eval_max_sentences=300 device=cuda)
    GEN=(--beam 5 --device cuda)
fi

run() { echo "+ $*" >> "$LOG"; "$@" >> "$LOG" 2>&1; }
timed() { local start; start=$(date +%s); "$@"; echo "# $*: $(( $(date +%s) - start )) s" >> "$LOG"; }

train() {  # STAGE MODEL [init_from] -- recipe args...
    local stage=$1 model=$2 init=$3; shift 3
    local dir="$OUT/$stage/$model/seed1" runs="$OUT/runs/$stage/$model"
    mkdir -p "$dir" "$OUT/evaluate/$model/seed1"
    local who="{\"task\": \"ddtp\", \"model\": \"$model\", \"seed\": 1}"  # what the reports group by
    run $LF train --restart-if-changed --record "$who" "$@" data="$DATA" save_dir="$runs" seed=1 ${init:+init_from=$init}
    cp "$runs/checkpoints/$(cat "$runs/checkpoints/best")/model.safetensors" "$dir/model.safetensors"
    cp "$runs/curve.csv" "$dir/curve.csv"
    run $LF generate "$dir/model.safetensors" --data "$DATA" "${GEN[@]}" --remove-bpe --record "$who" \
        --out "$OUT/evaluate/$model/seed1/hyps.txt"
    $LF params "$dir/model.safetensors" --json --record "{\"task\": \"ddtp\", \"model\": \"$model\"}" \
        > "$OUT/params/$model.json"
}

mkdir -p "$OUT/params" "$OUT/evaluate"
{ echo "# $(date -u +%FT%TZ) $(uname -n)"; $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"; } >> "$LOG"
timed train train baseline "" "${BASE[@]}"
base="$OUT/train/baseline/seed1/model.safetensors"
for init in svd random random_svd; do  # svd: fine-tuned; the random inits: the baseline's budget
    name=r3.8_k1_$init; budget=finetune; label=$init; args=("${FT[@]}")
    if [ "$init" != svd ]; then name=${name}_full; budget=full; label=${init}_full; args=("${BASE[@]}"); fi
    mkdir -p "$OUT/compress/$name/seed1"
    record="{\"task\": \"ddtp\", \"seed\": 1, \"variant\": \"$name\", \"family\": \"$name\", \"init\": \"$init\", \"budget\": \"$budget\", \"init_label\": \"$label\", \"lr_scale\": 1.0}"
    run $LF compress "$base" --ratio 3.8 --init "$init" --seed 1 --out "$OUT/compress/$name/seed1/model.safetensors" \
        --report "$OUT/compress/$name/seed1/report.json" --record "$record"
    timed train finetune "$name" "$OUT/compress/$name/seed1/model.safetensors" "${args[@]}"
done
for control in dense_small share_all share_sandwich; do
    name=$control; ratio=()
    if [ "$control" = dense_small ]; then name=dense_small_r3.8; ratio=(--ratio 3.8); fi
    mkdir -p "$OUT/controls/$name/seed1"
    run $LF control init --control "$control" "${ratio[@]}" --seed 1 --data "$DATA" \
        --out "$OUT/controls/$name/seed1/init.safetensors" --record "$OUT/controls/$name/seed1/control.json" \
        --identity "{\"task\": \"ddtp\", \"seed\": 1, \"variant\": \"$name\", \"family\": \"$name\", \"lr_scale\": 1.0}" \
        "${BASE[@]}"
    timed train controls "$name" "$OUT/controls/$name/seed1/init.safetensors" "${BASE[@]}"
done

models=(baseline r3.8_k1_svd r3.8_k1_random_full r3.8_k1_random_svd_full dense_small_r3.8 share_all share_sandwich)
evals=(); params=(); curves=(); records=()
for m in "${models[@]}"; do
    case $m in
        baseline) stage=train ;;
        r3.8_*) stage=finetune; records+=("$OUT/compress/$m/seed1/report.json") ;;
        *) stage=controls; records+=("$OUT/controls/$m/seed1/control.json") ;;
    esac
    evals+=("$OUT/evaluate/$m/seed1/hyps.txt.json"); params+=("$OUT/params/$m.json")
    curves+=("$OUT/$stage/$m/seed1/curve.csv")
done
mkdir -p "$OUT/tables"
run $LF report tables --tasks ddtp --evals "${evals[@]}" --params "${params[@]}" --reports "${records[@]}" \
    --curves "${curves[@]}" --out "$OUT/tables"
run $LF report convergence --curves "${curves[@]}" --records "${records[@]}" --out "$OUT/tables/convergence_ddtp.csv" \
    --markdown "$OUT/tables/convergence_ddtp.md" --figure "$OUT/tables/convergence_ddtp.png"
run $LF report lightweight --table "$OUT/tables/ddtp.csv" --task ddtp --dataset ddtp \
    --out "$OUT/tables/lightweight_ddtp.csv" --markdown "$OUT/tables/lightweight_ddtp.md"
cat "$OUT/tables/convergence_ddtp.md" | tee -a "$LOG"
