#!/bin/sh
# Fleet against standalone, same run, alternating, same seed per pair (docs/BENCHMARKS.md, "A fleet of
# daemons"). Two more fleet daemons, B and C, receive every revocation; their STATS show the propagation lag.
# Usage: cargo build --release && [SECS=8] benches/fleet.sh [PAIRS] [DIR] [MEMBERS]   (DIR on tmpfs keeps B, C and Redis
# off the benchmarked daemon's disk, as hosts of their own would be; default /dev/shm/jwtd-fleet-bench.
# MEMBERS=0: no B and C, only Redis — what the benchmarked daemon itself pays, without co-located peers)
PAIRS=${1:-5}
D=${2:-/dev/shm/jwtd-fleet-bench}
MEMBERS=${3:-2}
SECS=${SECS:-8}
J=$(cd "$(dirname "$0")/.." && pwd)/target/release/jwtd
rm -rf "$D"; mkdir -p "$D"
redis-server --port 0 --unixsocket "$D/r.sock" --dir "$D" --appendonly yes --daemonize yes \
  --pidfile "$D/r.pid" --logfile "$D/r.log"
sleep 0.5
"$J" keygen --alg ES256 --kid x --private-out "$D/p.jwk" --public-out "$D/pub.json"
members="b c"; [ "$MEMBERS" = 0 ] && members=""
for n in $members; do
  "$J" serve --keys "$D/pub.json" --aud a --socket "$D/$n.sock" --state-dir "$D/s$n" \
    --fleet-redis "unix://$D/r.sock" --log-level warn 2>"$D/$n.log" &
  peers="$peers $!"
done
peers="$peers $(cat "$D/r.pid")"
# CPU seconds of Redis and the receiving daemons: on this one machine they take cores the benchmarked daemon
# and its load generator would have on hosts of their own, and only during fleet runs.
TICK=$(getconf CLK_TCK)
peers_cpu() { for p in $peers; do awk '{print $14 + $15}' "/proc/$p/stat"; done | awk -v t="$TICK" '{s += $1} END {printf "%.2f", s / t}'; }
sleep 1
i=1
while [ $i -le "$PAIRS" ]; do
  order="standalone fleet"; [ $((i % 2)) = 0 ] && order="fleet standalone"
  for mode in $order; do
    extra=""; [ $mode = fleet ] && extra="--serve-arg=--fleet-redis=unix://$D/r.sock"
    # A fresh stream per run: the benchmarked daemon starts empty and must not bootstrap earlier runs' rules.
    redis-cli -s "$D/r.sock" DEL jwtd:revocations > /dev/null
    before=$(peers_cpu)
    "$J" bench --seed $((i * 10)) --tokens 20000 --duration "$SECS" --warmup 2 --revoke-during 1000 --quiet \
      $extra > "$D/$mode-$i.txt" 2>&1
    after=$(peers_cpu)
    echo "$mode $i $(grep '^closed' "$D/$mode-$i.txt") peers-cpu $(awk -v a="$after" -v b="$before" 'BEGIN {printf "%.2f", a - b}')s"
  done
  i=$((i + 1))
done
for n in $members; do printf 'STATS\n' | nc -N -U "$D/$n.sock" | grep -o '"lag_ms_p50":[^,]*,"lag_ms_p99":[^,]*'; done
pkill -f "state-dir $D/s" || true
redis-cli -s "$D/r.sock" shutdown nosave > /dev/null || true
