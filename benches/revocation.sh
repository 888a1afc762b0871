#!/usr/bin/env bash
# Revocation figures (issue 4), against the real daemon on a Unix socket:
#   1. acknowledged revocations/s with group commit (every ack after its fsync), C connections x depth D;
#   2. HS256 verification throughput with and without 1M active revocations, for one token and for 10,000
#      distinct tokens, cache on and off. Two daemons run side by side (A: no rules, B: 1M rules) and are
#      measured alternately, so that drift on a shared machine hits both; the ratio B/A is what counts.
#
#   benches/revocation.sh [connections=16] [depth=16] [seconds=4] [rounds=3]
set -euo pipefail
cd "$(dirname "$0")/.."
C=${1:-16} P=${2:-16} S=${3:-4} R=${4:-3}
cargo build --release --quiet --bin jwtd --example revoke_load
J=target/release/jwtd
L=target/release/examples/revoke_load
T=$(mktemp -d "${TMPDIR:-/tmp}/jwtd-rev.XXXXXX")
PIDS=()
stop() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; PIDS=(); }
trap 'stop; rm -rf "$T"' EXIT
start() { # start NAME [extra flags…]
    local name=$1; shift
    rm -f "$T/$name.sock"
    $J serve --keys "$T/key.jwks" --aud api --socket "$T/$name.sock" --state-dir "$T/state-$name" \
        --log-level warn "$@" 2>>"$T/jwtd.log" & PIDS+=($!)
    for _ in $(seq 200); do [ -S "$T/$name.sock" ] && break; sleep 0.05; done
}
rate() { sed -E 's/^([0-9]+) .*/\1/'; }
$J keygen --alg HS256 --kid bench --private-out "$T/key.jwk" --public-out "$T/key.jwks" 2>/dev/null >/dev/null
EXP=$(( $(date +%s) + 86400 ))
$J sign --key "$T/key.jwk" --claims "{\"sub\":\"user-1\",\"aud\":\"api\",\"exp\":$EXP,\"iat\":$(date +%s),\"jti\":\"bench-token\",\"scope\":\"read:item write:item\"}" > "$T/token"
echo "machine: $(nproc) CPUs; state directory on: $(df -T "$T" | awk 'NR==2 {print $2, $1}')"

echo "== acknowledged revocations/s (${C} connections x depth ${P}, ${S} s)"
start rev
for r in $(seq "$R"); do $L "$T/rev.sock" revoke "$C" "$P" "$S"; done
stop

for cache in on off; do
    flags=(); [ "$cache" = off ] && flags=(--cache-entries 0)
    start a "${flags[@]}"; start b "${flags[@]}"
    $L "$T/b.sock" fill 1000000 >/dev/null
    echo "== HS256 verification, cache $cache: A without rules, B with 1M jti rules (none matching)"
    printf '%-12s %6s %12s %12s %7s\n' tokens round A/s B/s B/A
    for what in one 10k; do
        for r in $(seq "$R"); do
            if [ "$what" = one ]; then
                a=$($L "$T/a.sock" verify "$T/token" "$C" "$P" "$S" | rate)
                b=$($L "$T/b.sock" verify "$T/token" "$C" "$P" "$S" | rate)
            else
                a=$($L "$T/a.sock" verify-many "$T/key.jwk" "$C" "$P" "$S" 10000 | rate)
                b=$($L "$T/b.sock" verify-many "$T/key.jwk" "$C" "$P" "$S" 10000 | rate)
            fi
            printf '%-12s %6s %12s %12s %7.3f\n' "$what" "$r" "$a" "$b" "$(echo "$b / $a" | bc -l)"
        done
    done
    stop
done
