#!/bin/sh
# A fleet daemon against a standalone one, in one run (docs/BENCHMARKS.md, "A fleet of daemons"): `jwtd bench
# --versus-arg` starts both alike but for --fleet-redis and measures them in alternating slices, so the
# machine's drift falls on both; two more fleet daemons, B and C, receive every revocation (their STATS show
# the propagation lag), as the fleet's other hosts would.
# Usage: cargo build --release && [SECS=2] [REVOKE=500] benches/fleet.sh [ROUNDS] [DIR] [MEMBERS]
#   DIR on tmpfs keeps B, C and Redis off the benchmarked daemon's disk, as hosts of their own would be
#   (default /dev/shm/jwtd-fleet-bench). MEMBERS=0: no B and C, only Redis — what the fleet daemon itself
#   pays, without co-located peers. REVOKE revocations per slice of SECS seconds (default 250 a second).
ROUNDS=${1:-20}
D=${2:-/dev/shm/jwtd-fleet-bench}
MEMBERS=${3:-2}
SECS=${SECS:-2}
REVOKE=${REVOKE:-500}
J=$(cd "$(dirname "$0")/.." && pwd)/target/release/jwtd
rm -rf "$D"; mkdir -p "$D"
redis-server --port 0 --unixsocket "$D/r.sock" --dir "$D" --appendonly yes --daemonize yes \
  --pidfile "$D/r.pid" --logfile "$D/r.log"
sleep 0.5
# A stream of this run's own: the fleet daemon starts empty and must not bootstrap an earlier run's rules
# (the same seed revokes the same jtis, which the other side would not have revoked).
STREAM="jwtd-bench:$$"
"$J" keygen --alg ES256 --kid x --private-out "$D/p.jwk" --public-out "$D/pub.json"
members="b c"; [ "$MEMBERS" = 0 ] && members=""
peers=""
for n in $members; do
  "$J" serve --keys "$D/pub.json" --aud a --socket "$D/$n.sock" --state-dir "$D/s$n" \
    --fleet-redis "unix://$D/r.sock" --fleet-stream "$STREAM" --log-level warn 2>"$D/$n.log" &
  peers="$peers $!"
done
peers="$peers $(cat "$D/r.pid")"
# CPU seconds of Redis and the receiving daemons: on this one machine they take cores the benchmarked daemons
# and the load generator would have on hosts of their own.
TICK=$(getconf CLK_TCK)
peers_cpu() { for p in $peers; do awk '{print $14 + $15}' "/proc/$p/stat"; done | awk -v t="$TICK" '{s += $1} END {printf "%.2f", s / t}'; }
sleep 1
before=$(peers_cpu)
"$J" bench --tokens 20000 --duration "$SECS" --warmup 2 --revoke-during "$REVOKE" --rounds "$ROUNDS" --quiet \
  --versus-arg="--fleet-redis=unix://$D/r.sock" --versus-arg="--fleet-stream=$STREAM" --json "$D/versus.json"
after=$(peers_cpu)
echo "Redis and the other fleet daemons (B, C) used $(awk -v a="$after" -v b="$before" 'BEGIN {printf "%.2f", a - b}') s of CPU during the run"
for n in $members; do printf 'STATS\n' | nc -N -U "$D/$n.sock" | grep -o '"lag_ms_p50":[^,]*,"lag_ms_p99":[^,]*'; done
pkill -f "state-dir $D/s" || true
redis-cli -s "$D/r.sock" shutdown nosave > /dev/null || true
