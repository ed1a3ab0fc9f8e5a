#!/usr/bin/env bash
# Instructions, heap allocations and syscalls per request of whole server processes (webhook and the
# bare ceiling): TLS, HTTP, handler, logging and metrics included. Like bench/profile.sh these do not
# move with the machine's load, unlike requests/s.
#
#   bench/server-profile.sh [OUT_DIR]     (default: $CARGO_TARGET_DIR or target, then /bench/server-profile)
#
# Uses the release binaries (build them first: cargo build --release -p credential-webhook -p credential-e2e --bins).
# For each server and load shape, the server runs twice under `valgrind --tool=callgrind` and twice
# under `--tool=dhat`, serving N1 and then N2 requests of loadgen's mix (a fresh server each time);
# the difference over N2 - N1 is the cost of one request (start, estate load and handshakes cancel
# out). Syscalls: `strace -c -f` attached to a native server for a run of N1 and one of N2 requests.
# Writes OUT_DIR/server-profile.jsonl, one line per server and shape.
# Environment: SERVERS (default "bare webhook webhook-warn"), SHAPES (default "h1:64:1 h2:64:1"),
# N1/N2 (200/1200), BENCH_PORT_BASE (27400), WEBHOOK_BIN (another credential-webhook binary),
# CACHE_SIM=1 (also simulated cache and branch misses per request, `valgrind --tool=cachegrind`: where
# perf has no hardware counters, as in some VMs, this says whether a gap in throughput that the
# instruction counts do not explain is in the caches).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release
OUT=${1:-$TARGET/bench/server-profile}
SERVERS=${SERVERS:-bare webhook webhook-warn}
SHAPES=${SHAPES:-h1:64:1 h2:64:1}
N1=${N1:-200} N2=${N2:-1200}
P=${BENCH_PORT_BASE:-27400}
WEBHOOK=${WEBHOOK_BIN:-$BIN/credential-webhook}
for tool in valgrind strace; do
  command -v $tool >/dev/null || { echo "bench/server-profile.sh: $tool is needed" >&2; exit 1; }
done
mkdir -p "$OUT"
: >"$OUT/server-profile.jsonl"
"$BIN/credential-webhook" certs --out "$OUT/certs" --host localhost --host 127.0.0.1 >/dev/null
CA=$OUT/certs/ca.crt
[[ -d $OUT/estate ]] || "$BIN/loadgen" estate --out "$OUT/estate" --credentials 10 --regions 1 >/dev/null
PID=
trap '[[ -n $PID ]] && kill $PID 2>/dev/null || true' EXIT

# server_cmd NAME: the server's command line (listening on 127.0.0.1:$P)
server_cmd() {
  local tls=(--tls-cert-file "$OUT/certs/tls.crt" --tls-key-file "$OUT/certs/tls.key")
  case $1 in
    bare) echo "$BIN/bare-webhook" --listen "127.0.0.1:$P" "${tls[@]}" ;;
    webhook | webhook-warn)
      local extra=()
      [[ $1 == webhook-warn ]] && extra=(--log-level warn)
      echo "$WEBHOOK" serve --estate "$OUT/estate" --listen "127.0.0.1:$P" --admin-listen "127.0.0.1:$((P + 1))" \
        "${tls[@]}" --shutdown-delay 0s "${extra[@]}"
      ;;
  esac
}

# start PREFIX... : starts the server (under PREFIX, e.g. valgrind) and waits for its first handshake
start() {
  # shellcheck disable=SC2046
  taskset -c 0 "$@" $(server_cmd "$SERVER") >"$OUT/$SERVER.log" 2>"$OUT/$SERVER.err" &
  PID=$!
  "$BIN/loadgen" wait --addr "127.0.0.1:$P" --ca "$CA" --timeout 120s >/dev/null
}

stop() {
  kill -TERM "$PID" 2>/dev/null || true
  wait "$PID" 2>/dev/null || true
  PID=
}

load() { # load N
  IFS=: read -r proto conns streams <<<"$SHAPE"
  taskset -c 1 "$BIN/loadgen" run --addr "127.0.0.1:$P" --ca "$CA" --proto "$proto" --connections "$conns" \
    --streams "$streams" --requests "$1" --warmup 0s >/dev/null
}

per_request() { # per_request A1 A2 -> (A2 - A1) / (N2 - N1)
  awk "BEGIN {printf \"%.1f\", ($2 - $1) / ($N2 - $N1)}"
}

for SERVER in $SERVERS; do
  for SHAPE in $SHAPES; do
    tag="$SERVER.${SHAPE//:/-}"
    declare -A ins=() allocs=() sys=() cache=()
    for n in $N1 $N2; do
      if [[ ${CACHE_SIM:-} == 1 ]]; then
        start valgrind --tool=cachegrind --cache-sim=yes --branch-sim=yes --cachegrind-out-file="$OUT/cachegrind.$tag.$n"
        load "$n"
        stop
        # "events: Ir I1mr ILmr Dr D1mr DLmr Dw D1mw DLmw Bc Bcm Bi Bim" and its "summary:" line
        cache[$n]=$(awk '/^events:/ {for (i = 2; i <= NF; i++) e[i] = $i} /^summary:/ {for (i = 2; i <= NF; i++) print e[i], $i}' "$OUT/cachegrind.$tag.$n")
      fi
      start valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.$tag.$n"
      load "$n"
      stop
      ins[$n]=$(grep -m1 '^summary:' "$OUT/callgrind.$tag.$n" | awk '{print $2}')
      start valgrind --tool=dhat --dhat-out-file=/dev/null --log-file="$OUT/dhat.$tag.$n.log"
      load "$n"
      stop
      allocs[$n]=$(grep -m1 'Total:' "$OUT/dhat.$tag.$n.log" | sed -E 's/.* in ([0-9,]+) blocks.*/\1/' | tr -d ,)
      start
      strace -c -f -p "$PID" -o "$OUT/strace.$tag.$n" &
      spid=$!
      sleep 1 # strace attaches to every thread
      load "$n"
      kill -INT $spid
      wait $spid 2>/dev/null || true
      stop
      sys[$n]=$(awk '$NF == "total" {print $4}' "$OUT/strace.$tag.$n")
    done
    # syscalls by name per request, the ones that matter
    by_name=$(for s in write writev sendmsg sendto read recvfrom epoll_wait futex sched_yield; do
      a=$(awk -v s=$s '$NF == s {print $4}' "$OUT/strace.$tag.$N1")
      b=$(awk -v s=$s '$NF == s {print $4}' "$OUT/strace.$tag.$N2")
      printf '"%s":%s,' $s "$(per_request "${a:-0}" "${b:-0}")"
    done)
    misses=
    if [[ ${CACHE_SIM:-} == 1 ]]; then
      misses=$(for ev in I1mr D1mr D1mw DLmr DLmw Bcm Bim; do
        a=$(awk -v e=$ev '$1 == e {print $2}' <<<"${cache[$N1]}")
        b=$(awk -v e=$ev '$1 == e {print $2}' <<<"${cache[$N2]}")
        printf '"%s":%s,' $ev "$(per_request "${a:-0}" "${b:-0}")"
      done)
      misses=",\"simulated_misses\":{${misses%,}}"
    fi
    printf '{"server":"%s","shape":"%s","n1":%s,"n2":%s,"instructions_per_request":%s,"allocations_per_request":%s,"syscalls_per_request":%s,"syscalls":{%s}%s}\n' \
      "$SERVER" "$SHAPE" "$N1" "$N2" "$(per_request "${ins[$N1]}" "${ins[$N2]}")" \
      "$(per_request "${allocs[$N1]}" "${allocs[$N2]}")" "$(per_request "${sys[$N1]}" "${sys[$N2]}")" \
      "${by_name%,}" "$misses" | tee -a "$OUT/server-profile.jsonl"
  done
done
