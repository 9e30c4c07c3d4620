#!/usr/bin/env bash
# The GPU evidence still owed (issue 28), in one script for one H100/H200, ordered so that an
# interrupted run still leaves the most valuable tables first, each written as its part finishes:
#   1. training throughput and MFU, ours and Hugging Face's, fused and dense loss, the loop itself,
#      and the paper grid priced in GPU-hours (train_check.sh -> OUT/train/);
#   2. real text at transformer_iwslt_de_en size with the controls (real_text_check.sh -> OUT/real/);
#   3. the WMT speed rows: CTranslate2, unfused and fused in one run (speed_check.sh -> OUT/speed/);
#   4. IWSLT with the whole search step in the CUDA graph, beside CTranslate2 (-> OUT/speed-whole/).
#
#   DATA=ddtp_prepared bash workflow/scripts/gpu_evidence.sh OUT            # one GPU, about 9 minutes (+1.5 for part 4)
#   REDUCED=1 DATA=DIR bash workflow/scripts/gpu_evidence.sh OUT            # CPU, tiny (tests)
#
# DATA is a prepared DDTP directory (`lightformer data prepare ddtp` here; small enough to carry).
# OUT/evidence.log says how long each part took, or that it failed; a failed part does not stop
# the next.
set -uo pipefail
OUT=${1:?usage: DATA=PREPARED_DIR gpu_evidence.sh OUTDIR}
mkdir -p "$OUT"
LOG="$OUT/evidence.log"
: > "$LOG"
part() {
    local name=$1 start status; shift
    start=$(date +%s)
    "$@"; status=$?
    echo "# $name: $( [ $status = 0 ] && echo ok || echo "FAILED (exit $status)" ), $(( $(date +%s) - start )) s" >> "$LOG"
}
here=$(dirname "$0")
part training bash "$here/train_check.sh" "$OUT/train"
part real-text bash "$here/real_text_check.sh" "$OUT/real"
if [ "${REDUCED:-0}" = 1 ]; then
    part speed env TASKS=wmt14 bash "$here/speed_check.sh" "$OUT/speed"
else
    part speed env TASKS=wmt14 LAT_RUNS=${LAT_RUNS:-30} TP_RUNS=${TP_RUNS:-3} bash "$here/speed_check.sh" "$OUT/speed"
fi
part speed-whole env TASKS=iwslt14 ONLY_WHOLE=1 LAT_RUNS=${LAT_RUNS:-30} TP_RUNS=${TP_RUNS:-3} \
    bash "$here/speed_check.sh" "$OUT/speed-whole"
cat "$LOG"
! grep -q FAILED "$LOG"
