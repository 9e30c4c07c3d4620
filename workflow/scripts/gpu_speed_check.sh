#!/usr/bin/env bash
# GPU speed check (issue 6): no network, no data. Builds the IWSLT and WMT-base architectures with
# random weights, their LightFormer versions near the abstract's compression (3.8x / 1.8x), and
# times them interleaved: batch-1 latency (HAT) and batch-128 throughput, fp32 and bf16, eager and
# CUDA-graph. Random weights need fixed-length decoding, so every model runs the same steps.
#
#   bash workflow/scripts/gpu_speed_check.sh [OUTDIR]       # on one GPU: about 5 minutes
#   REDUCED=1 bash workflow/scripts/gpu_speed_check.sh DIR  # CPU, tiny models, few runs (tests)
#
# Writes OUTDIR/speed.csv (one row per model and configuration, every condition recorded) and
# OUTDIR/speed.log. Needs python3 with torch; runs from the repository root without installing.
set -euo pipefail
OUTDIR=${1:-results/speed/gpu}
PY=${PYTHON:-python3}
export PYTHONPATH="$(pwd)${PYTHONPATH:+:$PYTHONPATH}"
LF="$PY -m lightformer"
mkdir -p "$OUTDIR"
CK=${CK:-$OUTDIR/checkpoints}  # override to keep large checkpoints elsewhere
mkdir -p "$CK"
LOG="$OUTDIR/speed.log"
: > "$LOG"

if [ "${REDUCED:-0}" = 1 ]; then
    DEVICE=cpu; LAT_RUNS=2; TP_RUNS=1; WARMUP=1; SENTENCES=12; BATCH=4
    IWSLT=(transformer_tiny6 50 40 --share-decoder-input-output-embed)
    WMT=(transformer_tiny6 64 64 --share-all-embeddings)
    PRECISIONS=("fp32:")
else
    DEVICE=cuda; LAT_RUNS=100; TP_RUNS=10; WARMUP=5; SENTENCES=512; BATCH=128
    IWSLT=(transformer_iwslt_de_en 8848 6632 --share-decoder-input-output-embed)
    WMT=(transformer_wmt_en_de 32768 32768 --share-all-embeddings)
    read -r -a PRECISIONS <<< "${PRECISIONS:-fp32: bf16: bf16:--cuda-graph}"  # dtype:extra-flags
fi

build() {  # task arch src tgt share ratio
    local task=$1 arch=$2 src=$3 tgt=$4 share=$5 ratio=$6
    $LF init --arch "$arch" --src-vocab "$src" --tgt-vocab "$tgt" $share --seed 1 \
        --out "$CK/${task}_baseline.safetensors" 2>> "$LOG"
    $LF compress "$CK/${task}_baseline.safetensors" --ratio "$ratio" \
        --out "$CK/${task}_lf_k1.safetensors" >> "$LOG" 2>&1
    $LF compress "$CK/${task}_baseline.safetensors" --ratio "$ratio" --share-layers 2 --share-qkv \
        --out "$CK/${task}_lf_k2qkv.safetensors" >> "$LOG" 2>&1
}

speed() {  # one configuration; a failure is logged and the others still run
    local title=$1; shift
    echo "== $title" | tee -a "$LOG"
    if $LF speed "$@" --device "$DEVICE" --out "$OUTDIR/speed.csv" --append > "$OUTDIR/.last" 2>> "$LOG"; then
        tee -a "$LOG" < "$OUTDIR/.last"
    else
        echo "FAILED: $title (see speed.log)" | tee -a "$LOG"
    fi
}

measure() {  # task beam lenpen src_len
    local task=$1 beam=$2 lenpen=$3 src_len=$4 p dtype flags
    local models=("$CK/${task}_baseline.safetensors" "$CK/${task}_lf_k1.safetensors" "$CK/${task}_lf_k2qkv.safetensors")
    local common=(--beam "$beam" --lenpen "$lenpen" --src-len "$src_len" --warmup "$WARMUP")
    for p in "${PRECISIONS[@]}"; do
        dtype=${p%%:*}; flags=${p#*:}
        speed "$task latency $dtype $flags" "${models[@]}" --dtype "$dtype" $flags --protocol latency \
            "${common[@]}" --runs "$LAT_RUNS"
        [ "$dtype" = fp32 ] && [ "$DEVICE" = cuda ] && continue  # throughput in bf16 only on GPU
        speed "$task throughput $dtype $flags" "${models[@]}" --dtype "$dtype" $flags --protocol throughput \
            "${common[@]}" --runs "$TP_RUNS" --batch "$BATCH" --sentences "$SENTENCES"
    done
}

rm -f "$OUTDIR/speed.csv"
if [ "$DEVICE" = cuda ]; then  # the graph path can only be checked here: it must decode like eager
    $PY - <<'PYEOF' 2>&1 | tee -a "$LOG"
import torch, lightformer as lf
from lightformer.decode import SearchConfig, beam_search
from lightformer.speed.fast import prepare_for_inference
torch.manual_seed(0)
m = lf.compress(lf.build_model("transformer_tiny6", 50, 50, seed=1, share_all_embeddings=True), rank=6, share_qkv=True)
m = prepare_for_inference(m, device="cuda")
src = torch.randint(4, 50, (3, 9), device="cuda"); src[:, -1] = 2; src[0, :3] = 1
cfg = SearchConfig(beam=4, max_len_b=10)
eager, graph = beam_search(m, src, cfg), beam_search(m, src, cfg, cuda_graph=True, graph_pool={})
same = all([h.tokens for h in a] == [h.tokens for h in b] and
           max(abs(x.score - y.score) for x, y in zip(a, b)) < 1e-4 for a, b in zip(eager, graph))
print("cuda-graph decoding equals eager decoding:", "OK" if same else "MISMATCH")
PYEOF
fi
build iwslt14 "${IWSLT[0]}" "${IWSLT[1]}" "${IWSLT[2]}" "${IWSLT[3]}" 3.8
build wmt14 "${WMT[0]}" "${WMT[1]}" "${WMT[2]}" "${WMT[3]}" 1.8
# docs/reference.md §6: IWSLT beam 5, 23-token source; WMT beam 4, lenpen 0.6, 30-token source
measure iwslt14 5 1.0 23
measure wmt14 4 0.6 30
echo "wrote $OUTDIR/speed.csv" | tee -a "$LOG"
