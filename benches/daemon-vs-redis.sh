#!/usr/bin/env bash
# jwtd serve (cache-free HS256 verification, ~300-byte claims) against Redis GET of a 300-byte value, both on
# a Unix socket, same connections and pipeline depth, one after the other in the same run. Prints both rates
# and the ratio. Installs redis-server from Debian when absent.
#
#   benches/daemon-vs-redis.sh [connections=16] [depth=16] [seconds=5] [rounds=3]
set -euo pipefail
cd "$(dirname "$0")/.."
C=${1:-16} P=${2:-16} S=${3:-5} R=${4:-3}

if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
    echo "installing redis-server (Debian)" >&2
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get install -y -qq redis-server redis-tools >/dev/null
fi
cargo build --release --quiet --bin jwtd --example load

T=$(mktemp -d)
cleanup() {
    [ -n "${JWTD:-}" ] && kill "$JWTD" 2>/dev/null || true
    [ -n "${REDIS:-}" ] && kill "$REDIS" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$T"
}
trap cleanup EXIT

J=target/release/jwtd
$J keygen --alg HS256 --kid bench --private-out "$T/key.jwk" --public-out "$T/key.jwks" >/dev/null
SCOPE=$(printf 'read:item%.0s ' $(seq 1 12))
EXP=$(( $(date +%s) + 86400 ))
CLAIMS="{\"iss\":\"https://idp.example.com\",\"sub\":\"user-1234567890\",\"aud\":\"api\",\"exp\":$EXP,\"iat\":$(date +%s),\"scope\":\"${SCOPE% }\",\"tenant\":\"acme\"}"
$J sign --key "$T/key.jwk" --claims "$CLAIMS" > "$T/token"
echo "token: $(wc -c < "$T/token") bytes, claims $(printf %s "$CLAIMS" | wc -c) bytes"

# An unprivileged redis on a Unix socket only (port 0: no TCP).
redis-server --port 0 --unixsocket "$T/redis.sock" --save '' --appendonly no --daemonize no \
    --logfile "$T/redis.log" & REDIS=$!
$J serve --keys "$T/key.jwks" --iss https://idp.example.com --aud api --socket "$T/jwtd.sock" \
    --log-level warn 2>"$T/jwtd.log" & JWTD=$!
for _ in $(seq 100); do [ -S "$T/redis.sock" ] && [ -S "$T/jwtd.sock" ] && break; sleep 0.1; done
VALUE=$(head -c 300 /dev/zero | tr '\0' x)
redis-cli -s "$T/redis.sock" set key:__rand_int__ "$VALUE" >/dev/null

printf '%-6s %14s %14s %8s\n' round jwtd/s redis/s ratio
for r in $(seq "$R"); do
    JR=$(target/release/examples/load "$T/jwtd.sock" "$T/token" "$C" "$P" "$S" | sed -E 's/.*: ([0-9]+) verifications.*/\1/')
    # Without -r, redis-benchmark GETs the literal key "key:__rand_int__", set above; -n sized to run ~S s.
    RR=$(redis-benchmark -s "$T/redis.sock" -c "$C" -P "$P" -t get -d 300 -n $((S * 1500000)) -q \
        | tr '\r' '\n' | grep 'requests per second' | sed -E 's/.*GET: ([0-9.]+) requests.*/\1/')
    printf '%-6s %14.0f %14.0f %8.2f\n' "$r" "$JR" "$RR" "$(echo "$RR / $JR" | bc -l)"
done
