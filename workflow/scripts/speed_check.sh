#!/usr/bin/env bash
# Speed check (issues 6, 13): no network, no data. Builds the IWSLT and WMT-base architectures
# with random weights, their LightFormer versions at the abstract's compression (3.8x / 1.8x: k1 =
# one rank; k2qkv = bases shared by pairs of layers and by q/k/v), and CTranslate2 exports of the
# dense models, then times them interleaved at batch 1 (HAT latency), batch 128 and a large batch
# (1,024 sentences), fp32 and bf16, every decoder step a CUDA graph, with and without the fused
# low-rank kernel, and with the whole search step in the graph (NO_WHOLE=1: without). Random
# weights need fixed-length decoding, so every model runs the same steps.
# First it checks, on the GPU, what the CPU tests cannot: the fused kernel in bf16, fused and
# graphed decoding against eager decoding.
#
#   bash workflow/scripts/speed_check.sh [OUTDIR]            # one H100/H200: ~10 min (TASKS=iwslt14 / wmt14: half)
#   DEVICE=cpu bash workflow/scripts/speed_check.sh DIR      # CPU: batch 1, 1 thread, fp32 and int8; batch 32,
#                                                            # all threads; eager, compiled, ONNX Runtime and
#                                                            # OpenVINO (ENGINES=...; about 1 h per task on 2 cores)
#   REDUCED=1 bash workflow/scripts/speed_check.sh DIR       # CPU, tiny models, few runs (tests)
#
# CTranslate2 rows need the ctranslate2 package (carry its wheel to an offline GPU host); its wheels
# are built for CUDA 12, so on a CUDA-13-only host the script points libcublas.so.12 at the
# libcublas.so.13 it finds (logged). If CTranslate2 still cannot run on the GPU, its rows are left
# out and the log says why.
#
# Writes OUTDIR/speed.csv (one row per model and configuration, every condition recorded),
# OUTDIR/speed.md and OUTDIR/speed.log. Needs python3 with torch; runs from the repository root.
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

if [ "${DEVICE:-}" = cpu ] && [ "${REDUCED:-0}" != 1 ]; then  # paper sizes, the CPU protocol
    LAT_RUNS=${LAT_RUNS:-30}; WARMUP=3; GRAPH=""; FUSED=""; WHOLE=""
    IWSLT=(transformer_iwslt_de_en 8848 6632 --share-decoder-input-output-embed)
    WMT=(transformer_wmt_en_de 32768 32768 --share-all-embeddings)
elif [ "${REDUCED:-0}" = 1 ]; then
    DEVICE=cpu; LAT_RUNS=2; TP_RUNS=1; WARMUP=1; SENTENCES=12; BATCH=4; LARGE=8; GRAPH=""; FUSED=""; WHOLE=--whole-step
    IWSLT=(transformer_tiny6 50 40 --share-decoder-input-output-embed)
    WMT=(transformer_tiny6 64 64 --share-all-embeddings)
else
    DEVICE=cuda; LAT_RUNS=${LAT_RUNS:-60}; TP_RUNS=${TP_RUNS:-5}; WARMUP=3; SENTENCES=512; BATCH=128; LARGE=1024
    GRAPH=--cuda-graph; FUSED=--fused-lowrank; WHOLE=--whole-step
    [ "${NO_FUSED:-0}" = 1 ] && FUSED=""
    [ "${NO_WHOLE:-0}" = 1 ] && WHOLE=""
    IWSLT=(transformer_iwslt_de_en 8848 6632 --share-decoder-input-output-embed)
    WMT=(transformer_wmt_en_de 32768 32768 --share-all-embeddings)
fi

CT2=0  # can CTranslate2 run on this device? (set by probe_ct2)
probe_ct2() {
    # a real load and translation: listing compute types works without the CUDA libraries
    local code="import sys, tempfile, ctranslate2, lightformer as lf; from lightformer.export.ct2 import export_ct2; d = tempfile.mkdtemp() + '/m'; export_ct2(lf.build_model('transformer_tiny', 16, 16, seed=1), d); t = ctranslate2.Translator(d, device=sys.argv[1]); print('ctranslate2', ctranslate2.__version__, 'runs on', sys.argv[1], t.translate_batch([['w5', 'w6']], max_decoding_length=3)[0].hypotheses[0])"
    if $PY -c "$code" "$DEVICE" >> "$LOG" 2>&1; then CT2=1; return; fi
    if [ "$DEVICE" = cuda ]; then  # CUDA-12 build on a CUDA-13 host: try the host's cuBLAS under the old name
        local lib
        lib=$($PY -c "import glob, site, sys; print(next(iter(sorted(p for d in site.getsitepackages() + sys.path for p in glob.glob(d + '/nvidia/**/libcublas.so.1[3-9]', recursive=True))), ''))" 2>/dev/null || true)
        if [ -n "$lib" ]; then
            local shim
            shim=$(cd "$CK" && pwd)/cublas-shim
            mkdir -p "$shim"
            ln -sf "$lib" "$shim/libcublas.so.12"
            ln -sf "$(dirname "$lib")/libcublasLt.so.${lib##*.so.}" "$shim/libcublasLt.so.12"
            export LD_LIBRARY_PATH="$shim:$(dirname "$lib")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
            echo "ctranslate2: libcublas.so.12 -> $lib (shim)" | tee -a "$LOG"
            if $PY -c "$code" "$DEVICE" >> "$LOG" 2>&1; then CT2=1; return; fi
        fi
    fi
    echo "ctranslate2 cannot run on $DEVICE here: its rows are left out (see speed.log)" | tee -a "$LOG"
}

build() {  # task arch src tgt share ratio
    local task=$1 arch=$2 src=$3 tgt=$4 share=$5 ratio=$6
    $LF init --arch "$arch" --src-vocab "$src" --tgt-vocab "$tgt" $share --seed 1 \
        --out "$CK/${task}_baseline.safetensors" 2>> "$LOG"
    $LF compress "$CK/${task}_baseline.safetensors" --ratio "$ratio" \
        --out "$CK/${task}_lf_k1.safetensors" >> "$LOG" 2>&1
    $LF compress "$CK/${task}_baseline.safetensors" --ratio "$ratio" --share-layers 2 --share-qkv \
        --out "$CK/${task}_lf_k2qkv.safetensors" >> "$LOG" 2>&1
    if [ "$CT2" = 1 ]; then
        $LF export ct2 "$CK/${task}_baseline.safetensors" --out "$CK/${task}_baseline.ct2" --force >> "$LOG" 2>&1
    fi
}

speed() {  # title, then lightformer speed arguments; a failure is logged and the others still run
    local title=$1; shift
    echo "== $title" | tee -a "$LOG"
    local t0=$SECONDS
    if $LF speed "$@" --device "$DEVICE" --out "$OUTDIR/speed.csv" --append > "$OUTDIR/.last" 2>> "$LOG"; then
        tee -a "$LOG" < "$OUTDIR/.last"
        echo "   ($((SECONDS - t0)) s)" | tee -a "$LOG"
    else
        echo "FAILED: $title (see speed.log)" | tee -a "$LOG"
    fi
}

measure_cpu() {  # task beam lenpen src_len: batch 1, one thread, fp32 then int8; then batch 32, all threads;
    # each run times our models under every engine (ENGINES: eager, compiled = decode/compiled.py,
    # onnxruntime and openvino = speed/runtime.py), interleaved with CTranslate2's
    local task=$1 beam=$2 lenpen=$3 src_len=$4
    local ours=("$CK/${task}_baseline.safetensors" "$CK/${task}_lf_k1.safetensors" "$CK/${task}_lf_k2qkv.safetensors")
    local names=("${task}_baseline" "${task}_lf_k1" "${task}_lf_k2qkv")
    local engines=(${ENGINES:-eager compiled onnxruntime openvino}) int8_engines=() e
    for e in "${engines[@]}"; do [ "$e" = openvino ] || int8_engines+=("$e"); done  # int8: ONNX Runtime's quantisation
    local common=(--beam "$beam" --lenpen "$lenpen" --src-len "$src_len" --warmup "$WARMUP" --task "$task")
    local lat=(--protocol latency --runs "$LAT_RUNS" --threads "${THREADS:-1}")
    local tp=(--protocol throughput --batch 32 --sentences "${CPU_SENTENCES:-128}" --runs "${TP_RUNS:-3}"
              --threads "${TP_THREADS:-$(nproc)}")
    local ct=() ctn=() ct8=() ct8n=()
    if [ "$CT2" = 1 ]; then
        ct=("ct2:$CK/${task}_baseline.ct2:fp32" "ct2:$CK/${task}_baseline.ct2:int8")
        ctn=("${task}_ct2_fp32" "${task}_ct2_int8")
        ct8=("ct2:$CK/${task}_baseline.ct2:int8"); ct8n=("${task}_ct2_int8")
    fi
    speed "$task batch 1, fp32" "${ours[@]}" "${ct[@]}" --names "${names[@]}" "${ctn[@]}" "${lat[@]}" "${common[@]}" \
        --engine "${engines[@]}"
    speed "$task batch 1, int8" "${ours[@]}" "${ct8[@]}" --names "${names[@]/%/_int8}" "${ct8n[@]}" --int8 \
        "${lat[@]}" "${common[@]}" --engine "${int8_engines[@]}"
    [ "${THROUGHPUT:-1}" = 1 ] && speed "$task batch 32, fp32" "${ours[@]}" "${ct[@]}" --names "${names[@]}" \
        "${ctn[@]}" "${tp[@]}" "${common[@]}" --engine "${engines[@]}"
    return 0
}

measure() {  # task beam lenpen src_len
    local task=$1 beam=$2 lenpen=$3 src_len=$4
    local ours=("$CK/${task}_baseline.safetensors" "$CK/${task}_lf_k1.safetensors" "$CK/${task}_lf_k2qkv.safetensors")
    local names=("${task}_baseline" "${task}_lf_k1" "${task}_lf_k2qkv")
    local common=(--beam "$beam" --lenpen "$lenpen" --src-len "$src_len" --warmup "$WARMUP" --task "$task")
    local ct=() ctn=() ct16=() ct16n=()
    if [ "$CT2" = 1 ]; then
        ct=("ct2:$CK/${task}_baseline.ct2:fp32" "ct2:$CK/${task}_baseline.ct2:int8")
        ctn=("${task}_ct2_fp32" "${task}_ct2_int8")
        ct16=("ct2:$CK/${task}_baseline.ct2:fp16" "ct2:$CK/${task}_baseline.ct2:int8")
        ct16n=("${task}_ct2_fp16" "${task}_ct2_int8")
        [ "$DEVICE" = cpu ] && ct16=("${ct[@]}") && ct16n=("${ctn[@]}")  # CTranslate2 has no fp16 on CPU
    fi
    local lat=(--protocol latency --runs "$LAT_RUNS")
    local b128=(--protocol throughput --runs "$TP_RUNS" --batch "$BATCH" --sentences "$SENTENCES")
    local big=(--protocol throughput --runs "$TP_RUNS" --batch "$LARGE" --sentences "$LARGE")
    local bf16=bf16 g=${GRAPH:+, graph} wdt=bf16
    [ "$DEVICE" = cpu ] && wdt=fp32  # REDUCED: the whole-step rows run on the CPU too
    whole() {  # batch label, protocol arguments: the whole search step in the graph, beside CTranslate2
        local label=$1; shift
        speed "$task batch $label, $wdt$g${FUSED:+ + fused} + whole step" "${ours[@]}" "${ct16[@]}" \
            --names "${names[@]/%/_whole}" "${ct16n[@]}" --dtype $wdt $GRAPH $FUSED --whole-step "$@" "${common[@]}"
    }
    if [ "${ONLY_WHOLE:-0}" = 1 ]; then  # just the whole-step rows (gpu_evidence.sh's last part)
        whole 1 "${lat[@]}"; whole "$BATCH" "${b128[@]}"
        return 0
    fi
    [ "${FP32:-1}" = 1 ] && speed "$task batch 1, fp32$g" "${ours[@]}" "${ct[@]}" --names "${names[@]}" "${ctn[@]}" \
        --dtype fp32 $GRAPH "${lat[@]}" "${common[@]}"
    [ "$DEVICE" = cuda ] && [ "${LARGE_FIRST:-0}" = 1 ] && speed "$task batch $LARGE, bf16$g" "${ours[@]}" "${ct16[@]}" \
        --names "${names[@]}" "${ct16n[@]}" --dtype $bf16 $GRAPH "${big[@]}" "${common[@]}"
    [ "$DEVICE" = cuda ] && speed "$task batch 1, bf16$g" "${ours[@]}" "${ct16[@]}" --names "${names[@]}" "${ct16n[@]}" \
        --dtype $bf16 $GRAPH "${lat[@]}" "${common[@]}"
    [ -n "$FUSED" ] && speed "$task batch 1, bf16$g + fused" "${ours[@]}" --names "${names[@]}" \
        --dtype $bf16 $GRAPH $FUSED "${lat[@]}" "${common[@]}"
    # the whole search step in the graph (decode/device_search.py), beside CTranslate2 in the same run
    [ -n "$WHOLE" ] && whole 1 "${lat[@]}"
    [ "${FP32:-1}" = 1 ] && speed "$task batch $BATCH, fp32$g" "${ours[@]}" "${ct[@]}" --names "${names[@]}" "${ctn[@]}" \
        --dtype fp32 $GRAPH "${b128[@]}" "${common[@]}"
    [ "$DEVICE" = cuda ] && speed "$task batch $BATCH, bf16$g" "${ours[@]}" "${ct16[@]}" --names "${names[@]}" "${ct16n[@]}" \
        --dtype $bf16 $GRAPH "${b128[@]}" "${common[@]}"
    [ -n "$FUSED" ] && speed "$task batch $BATCH, bf16$g + fused" "${ours[@]}" --names "${names[@]}" \
        --dtype $bf16 $GRAPH $FUSED "${b128[@]}" "${common[@]}"
    [ -n "$WHOLE" ] && whole "$BATCH" "${b128[@]}"
    [ "$DEVICE" = cuda ] && [ "${LARGE_FIRST:-0}" != 1 ] && speed "$task batch $LARGE, bf16$g" "${ours[@]}" "${ct16[@]}" --names "${names[@]}" "${ct16n[@]}" \
        --dtype $bf16 $GRAPH "${big[@]}" "${common[@]}"
    [ "${FP32:-1}" = 1 ] && speed "$task batch $LARGE, fp32$g" "${ours[@]}" "${ct[@]}" --names "${names[@]}" "${ctn[@]}" \
        --dtype fp32 $GRAPH "${big[@]}" "${common[@]}"
    return 0
}

MEASURE=measure
[ "$DEVICE" = cpu ] && [ "${REDUCED:-0}" != 1 ] && MEASURE=measure_cpu
rm -f "$OUTDIR/speed.csv"
probe_ct2
if [ "$DEVICE" = cuda ]; then  # what only a GPU can check: bf16 kernel, fused + graphed decoding = eager
    $PY - <<'PYEOF' 2>&1 | tee -a "$LOG"
import torch, torch.nn.functional as F, lightformer as lf
from lightformer.decode import SearchConfig, beam_search
from lightformer.decode.device_search import device_beam_search
from lightformer.speed.fast import prepare_for_inference
from lightformer.speed.fused import lowrank_linear, lowrank_linear_split
torch.manual_seed(0)
for dtype in (torch.float32, torch.bfloat16, torch.float16):
    for M, K, N, R in [(5, 512, 512, 96), (640, 512, 1536, 160), (3, 512, 6632, 120)]:
        x, A, B, b = (torch.randn(*s, device="cuda", dtype=dtype) for s in [(M, K), (N, R), (R, K), (N,)])
        ref = F.linear(F.linear(x, B), A, b).float()
        err = ((lowrank_linear(x, A, B, b).float() - ref).abs().max() / ref.abs().max()).item()
        ok = err < (1e-5 if dtype == torch.float32 else 2e-2)
        print(f"fused kernel {str(dtype):15} {M}x{K}->{R}->{N}: rel err {err:.1e}", "OK" if ok else "MISMATCH")
from triton.testing import do_bench
for M in (5, 640, 5120):  # one launch vs two, outside a graph (launch cost included), bf16
    for K, N, R in [(512, 512, 120), (512, 6632, 120), (1024, 1024, 300)]:
        x, A, B, b = (torch.randn(*s, device="cuda", dtype=torch.bfloat16) for s in [(M, K), (N, R), (R, K), (N,)])
        t_f = do_bench(lambda: lowrank_linear(x, A, B, b)) * 1e3
        t_2 = do_bench(lambda: F.linear(F.linear(x, B), A, b)) * 1e3
        W = torch.randn(N, K, device="cuda", dtype=torch.bfloat16)
        t_d = do_bench(lambda: F.linear(x, W, b)) * 1e3
        print(f"rows {M:5} {K}->{R}->{N}: fused {t_f:7.1f} us, two GEMMs {t_2:7.1f} us, dense GEMM {t_d:7.1f} us")
def in_graph(fn, n=50):  # us per call with no launch cost from Python: n calls replayed as one graph
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(n):
            fn()
    return do_bench(graph.replay) * 1e3 / n
for M in (5, 640):  # how decoding sees them: inside a CUDA graph
    for K, N, R in [(512, 512, 81), (512, 1024, 81), (1024, 1024, 300), (512, 6632, 120)]:
        x, A, B, b = (torch.randn(*s, device="cuda", dtype=torch.bfloat16) for s in [(M, K), (N, R), (R, K), (N,)])
        W = torch.randn(N, K, device="cuda", dtype=torch.bfloat16)
        t_f, t_2 = in_graph(lambda: lowrank_linear(x, A, B, b)), in_graph(lambda: F.linear(F.linear(x, B), A, b))
        t_s, t_d = in_graph(lambda: lowrank_linear_split(x, A, B, b)), in_graph(lambda: F.linear(x, W, b))
        err = ((lowrank_linear_split(x, A, B, b).float() - F.linear(F.linear(x, B), A, b).float()).abs().max()
               / F.linear(F.linear(x, B), A, b).float().abs().max()).item()
        print(f"in a graph, rows {M:4} {K}->{R}->{N}: fused {t_f:6.1f} us, rank-parallel {t_s:6.1f} us "
              f"(rel err {err:.1e}), two GEMMs {t_2:6.1f} us, dense GEMM {t_d:6.1f} us")
m = lf.compress(lf.build_model("transformer_tiny6", 50, 50, seed=1, share_all_embeddings=True), rank=6, share_qkv=True)
src = torch.randint(4, 50, (3, 9), device="cuda"); src[:, -1] = 2; src[0, :3] = 1
cfg = SearchConfig(beam=4, max_len_b=10)
eager = beam_search(prepare_for_inference(m, device="cuda"), src, cfg)
for name, kw in [("cuda-graph", {}), ("fused", {"fused_lowrank": True}), ("fused + cuda-graph", {"fused_lowrank": True}),
                 ("whole step", {}), ("whole step + cuda-graph", {}), ("fused + whole step + cuda-graph", {"fused_lowrank": True})]:
    fast = prepare_for_inference(m, device="cuda", **kw)
    pool = {}
    for _ in range(2):  # the second search replays the graphs captured by the first
        search = device_beam_search if "whole" in name else beam_search
        got = search(fast, src, cfg, cuda_graph="graph" in name, graph_pool=pool)
    same = all([h.tokens for h in a] == [h.tokens for h in b] and
               max(abs(x.score - y.score) for x, y in zip(a, b)) < 1e-4 for a, b in zip(eager, got))
    print(f"{name} decoding equals eager decoding:", "OK" if same else "MISMATCH")
PYEOF
fi
[[ " ${TASKS:-iwslt14 wmt14} " == *" iwslt14 "* ]] && build iwslt14 "${IWSLT[0]}" "${IWSLT[1]}" "${IWSLT[2]}" "${IWSLT[3]}" 3.8
[[ " ${TASKS:-iwslt14 wmt14} " == *" wmt14 "* ]] && build wmt14 "${WMT[0]}" "${WMT[1]}" "${WMT[2]}" "${WMT[3]}" 1.8
# docs/reference.md §6: IWSLT beam 5, 23-token source; WMT beam 4, lenpen 0.6, 30-token source
for task in ${TASKS:-iwslt14 wmt14}; do
    case $task in
        iwslt14) $MEASURE iwslt14 5 1.0 23 ;;
        wmt14) $MEASURE wmt14 4 0.6 30 ;;
    esac
done
$LF report speed "$OUTDIR/speed.csv" --table "$OUTDIR/speed_table.csv" --markdown "$OUTDIR/speed.md" >> "$LOG" 2>&1 \
    || echo "FAILED: report speed (see speed.log)" | tee -a "$LOG"
echo "wrote $OUTDIR/speed.csv" | tee -a "$LOG"
