#!/usr/bin/env bash
# A fuzz campaign: every target (or those named after the seconds) with AddressSanitizer for SECS seconds
# each, JOBS at a time (default 2), then one line per target: executions, coverage and features at start
# (after loading the corpus) and at the end, corpus size, and crashes found (saved under artifacts/<target>/).
# New inputs go to corpus/<target>/; afterwards each corpus is minimised again (the smallest set of inputs that
# reaches every edge the whole set reached: `cargo fuzz cmin … -use_counters=0`), so what is committed stays
# small (about 3,100 files, 13 MB for the nine targets, from 13,000 files and 53 MB before the first cut).
# MINIMIZE=0 keeps everything the run found.
#
#   fuzz/campaign.sh 600                        # all targets, 10 minutes each
#   JOBS=1 fuzz/campaign.sh 60 line_protocol    # one target, one minute
set -euo pipefail
cd "$(dirname "$0")"
SECS=${1:-600}
shift || true
JOBS=${JOBS:-2}
export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
cargo fuzz build >/dev/null
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || mapfile -t TARGETS < <(cargo fuzz list)
LOGS=target/campaign
mkdir -p "$LOGS"

dict_of() {
  case "$1" in
    line_protocol) echo dict/protocol.dict ;;
    http_request) echo dict/http.dict ;;
    config) echo dict/config.dict ;;
    *) echo dict/jwt.dict ;;
  esac
}

run() {
  local t=$1
  mkdir -p "corpus/$t"
  # -fork would survive crashes; one process keeps the figures simple: the run stops at the first crash.
  cargo fuzz run "$t" "corpus/$t" -- "-dict=$(dict_of "$t")" -max_total_time="$SECS" \
    -rss_limit_mb=2048 -print_final_stats=1 >"$LOGS/$t.log" 2>&1 || true
}

running=0
for t in "${TARGETS[@]}"; do
  run "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$JOBS" ]; then
    wait -n || true
    running=$((running - 1))
  fi
done
wait || true

if [ "${MINIMIZE:-1}" = 1 ]; then
  for t in "${TARGETS[@]}"; do
    # Edges, not hit-count buckets: with counters libFuzzer keeps one input per bucket of every edge (four
    # times as many files) for no new code reached.
    cargo fuzz cmin -s none "$t" "corpus/$t" -- -use_counters=0 -rss_limit_mb=2048 >"$LOGS/$t.cmin.log" 2>&1 ||
      echo "cmin $t failed: see $LOGS/$t.cmin.log" >&2
  done
fi

printf '%-18s %12s %9s %9s %9s %9s %7s %s\n' target execs cov0 cov ft0 ft corpus crashes
for t in "${TARGETS[@]}"; do
  log="$LOGS/$t.log"
  [ -f "$log" ] || { printf '%-18s (no log)\n' "$t"; continue; }
  init=$(grep -m1 -E '#[0-9]+[[:space:]]+INITED' "$log" || true)
  last=$(grep -E '#[0-9]+[[:space:]]+(DONE|pulse|NEW|REDUCE)' "$log" | tail -1 || true)
  # (`|| true`: a run that crashed early has no statistics; the row says `?` instead of ending the script.)
  execs=$(grep -m1 'stat::number_of_executed_units' "$log" | awk '{print $2}' || true)
  field() { sed -nE "s/.* $1: ([0-9]+).*/\1/p" <<<"$2"; }
  crashes=$(ls "artifacts/$t" 2>/dev/null | grep -cE '^(crash|oom|timeout|leak)-' || true)
  printf '%-18s %12s %9s %9s %9s %9s %7s %s\n' "$t" "${execs:-?}" "$(field cov "$init")" "$(field cov "$last")" \
    "$(field ft "$init")" "$(field ft "$last")" "$(ls "corpus/$t" | wc -l)" "$crashes"
done
