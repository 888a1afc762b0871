#!/usr/bin/env bash
# jwtd bench, then redis-benchmark GET of a 300-byte value at the same connections and pipeline depth, both
# on Unix sockets, one right after the other; prints both rates and the ratio. Installs redis-server from
# Debian when absent. Extra arguments go to jwtd bench, e.g. the all-hit HS256 case:
#
#   benches/compare-redis.sh 16 64 10 --mix HS256=1 --tokens 1000 --invalid 0 --revoked 0
#   benches/compare-redis.sh                     # the default mix at 16 x 16 for 10 s
set -euo pipefail
cd "$(dirname "$0")/.."
C=${1:-16} P=${2:-16} S=${3:-10}
shift $(( $# < 3 ? $# : 3 ))
if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
    echo "installing redis-server (Debian)" >&2
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get install -y -qq redis-server redis-tools >/dev/null
fi
cargo build --release --quiet --bin jwtd
T=$(mktemp -d)
REDIS=""
trap '[ -n "$REDIS" ] && kill "$REDIS" 2>/dev/null; wait 2>/dev/null; rm -rf "$T"' EXIT

target/release/jwtd bench --connections "$C" --depth "$P" --duration "$S" --quiet --json "$T/jwtd.json" "$@"
JR=$(python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["runs"][0]["per_second"]))' "$T/jwtd.json")

redis-server --port 0 --unixsocket "$T/redis.sock" --save '' --appendonly no --logfile "$T/redis.log" & REDIS=$!
for _ in $(seq 100); do [ -S "$T/redis.sock" ] && break; sleep 0.1; done
redis-cli -s "$T/redis.sock" set key:__rand_int__ "$(head -c 300 /dev/zero | tr '\0' x)" >/dev/null
# Without -r, redis-benchmark GETs the literal key "key:__rand_int__"; -n sized to run about as long.
RR=$(redis-benchmark -s "$T/redis.sock" -c "$C" -P "$P" -t get -d 300 -n $(( JR * S )) -q \
    | tr '\r' '\n' | grep 'requests per second' | sed -E 's/.*GET: ([0-9.]+) requests.*/\1/')
printf '\n%-28s %12s\n' "jwtd verifications/s" "$JR"
printf '%-28s %12.0f\n' "redis GET 300 B/s" "$RR"
printf '%-28s %12.2f\n' "jwtd / redis" "$(echo "$JR / $RR" | bc -l)"
