#!/usr/bin/env bash
# Revocation figures (issue 4), against the real daemon on a Unix socket:
#   1. acknowledged revocations/s with group commit (every ack after its fsync), C connections x depth D;
#   2. verification throughput (HS256, cache on and off) before and after adding 1M active revocations.
#
#   benches/revocation.sh [connections=16] [depth=16] [seconds=5] [rounds=3]
set -euo pipefail
cd "$(dirname "$0")/.."
C=${1:-16} P=${2:-16} S=${3:-5} R=${4:-3}
cargo build --release --quiet --bin jwtd --example revoke_load
J=target/release/jwtd
L=target/release/examples/revoke_load
T=$(mktemp -d "${TMPDIR:-/tmp}/jwtd-rev.XXXXXX")
PID=""
stop() { [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true; PID=""; }
trap 'stop; rm -rf "$T"' EXIT
start() { # start STATE_DIR [extra flags…]
    local state=$1; shift
    $J serve --keys "$T/key.jwks" --aud api --socket "$T/jwtd.sock" --state-dir "$state" --log-level warn "$@" \
        2>>"$T/jwtd.log" & PID=$!
    for _ in $(seq 200); do [ -S "$T/jwtd.sock" ] && break; sleep 0.05; done
}
$J keygen --alg HS256 --kid bench --private-out "$T/key.jwk" --public-out "$T/key.jwks" 2>/dev/null >/dev/null
EXP=$(( $(date +%s) + 86400 ))
$J sign --key "$T/key.jwk" --claims "{\"sub\":\"user-1\",\"aud\":\"api\",\"exp\":$EXP,\"iat\":$(date +%s),\"jti\":\"bench-token\",\"scope\":\"read:item write:item\"}" > "$T/token"
echo "machine: $(nproc) CPUs; state directory on: $(df -T "$T" | awk 'NR==2 {print $2, $1}')"

echo "== acknowledged revocations/s (${C} connections x depth ${P}, ${S} s)"
start "$T/state-a"
for r in $(seq "$R"); do $L "$T/jwtd.sock" revoke "$C" "$P" "$S"; done
stop

for cache in on off; do
    flags=(); [ "$cache" = off ] && flags=(--cache-entries 0)
    echo "== HS256 verification, cache $cache: no revocations, then 1M"
    start "$T/state-$cache" "${flags[@]}"
    for r in $(seq "$R"); do printf 'none  '; $L "$T/jwtd.sock" verify "$T/token" "$C" "$P" "$S"; done
    $L "$T/jwtd.sock" fill 1000000
    for r in $(seq "$R"); do printf '1M    '; $L "$T/jwtd.sock" verify "$T/token" "$C" "$P" "$S"; done
    stop
done
