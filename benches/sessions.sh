#!/usr/bin/env bash
# Session figures (issue 17), against the real daemon on a Unix socket, state directory on this machine's disk:
#   1. acknowledged rotations/s: C connections each holding D families, every REFRESH answered after its
#      rotation was fsync'd (group commit), for depths 1, 4 and 16;
#   2. VERIFY throughput of one issued access token on A (a state directory but no sessions, the issuing
#      key's public half as --keys) and B (issuing, 1,000 families active), measured alternately (the order
#      swapped every round); B/A is what counts.
#
#   benches/sessions.sh [connections=16] [seconds=4] [rounds=3] [alg=ES256]
set -euo pipefail
cd "$(dirname "$0")/.."
C=${1:-16} S=${2:-4} R=${3:-3} ALG=${4:-ES256}
cargo build --release --quiet --bin jwtd --example session_load --example revoke_load
J=target/release/jwtd
L=target/release/examples/session_load
V=target/release/examples/revoke_load
T=$(mktemp -d "${TMPDIR:-/tmp}/jwtd-sessions.XXXXXX")
PIDS=()
stop() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; PIDS=(); }
trap 'stop; rm -rf "$T"' EXIT
started() { for _ in $(seq 200); do [ -S "$1" ] && return; sleep 0.05; done; }
rate() { sed -E 's/^([0-9]+) .*/\1/'; }
$J keygen --alg "$ALG" --kid s1 --private-out "$T/k.jwk" --public-out "$T/k.pub.json" >/dev/null 2>&1
echo "machine: $(nproc) CPUs; state directory on: $(df -T "$T" | awk 'NR==2 {print $2, $1}'); issuing key $ALG"
$J serve --issuer-key "$T/k.jwk" --iss https://sessions.example --aud app --state-dir "$T/state-b" \
    --socket "$T/b.sock" --log-level warn 2>>"$T/jwtd.log" & PIDS+=($!)
started "$T/b.sock"
echo "== acknowledged rotations/s (${C} connections x depth D, ${S} s)"
for d in ${DEPTHS:-1 4 16}; do for r in $(seq "$R"); do $L "$T/b.sock" rotate "$C" "$d" "$S"; done; done
stop

$J serve --issuer-key "$T/k.jwk" --iss https://sessions.example --aud app --state-dir "$T/state-b2" \
    --socket "$T/b.sock" --log-level warn 2>>"$T/jwtd.log" & PIDS+=($!)
$J serve --keys "$T/k.pub.json" --iss https://sessions.example --aud app --socket "$T/a.sock" \
    --state-dir "$T/state-a" --log-level warn 2>>"$T/jwtd.log" & PIDS+=($!)
started "$T/a.sock"; started "$T/b.sock"
$L "$T/b.sock" families 1000 > "$T/token"
echo "== VERIFY of one issued access token: A (no sessions) and B (1,000 families active), alternately"
printf '%6s %12s %12s %7s\n' round A/s B/s B/A
for r in $(seq "$R"); do
    if [ $((r % 2)) = 1 ]; then
        a=$($V "$T/a.sock" verify "$T/token" "$C" 16 "$S" | rate)
        b=$($V "$T/b.sock" verify "$T/token" "$C" 16 "$S" | rate)
    else
        b=$($V "$T/b.sock" verify "$T/token" "$C" 16 "$S" | rate)
        a=$($V "$T/a.sock" verify "$T/token" "$C" 16 "$S" | rate)
    fi
    printf '%6s %12s %12s %7.3f\n' "$r" "$a" "$b" "$(echo "$b / $a" | bc -l)"
done
