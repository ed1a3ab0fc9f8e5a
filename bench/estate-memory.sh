#!/usr/bin/env bash
# RSS of `credential-webhook serve --estate DIR` on generated estates (`loadgen estate`), without the
# load runs of bench/run.sh's sweep: VmRSS and VmHWM from /proc one second after the first handshake.
#
#   cargo build --release -p credential-webhook -p credential-e2e --bins
#   bench/estate-memory.sh [WEBHOOK_BIN]       # default: $CARGO_TARGET_DIR/release/credential-webhook
#
# Environment: POINTS ("10:1 1000:100 10000:1000": Credentials:Regions), BENCH_OUT (work directory),
# BENCH_PORT_BASE (19870).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
WEBHOOK=${1:-$BIN/credential-webhook}
OUT=${BENCH_OUT:-${CARGO_TARGET_DIR:-$ROOT/target}/bench-memory}
port=${BENCH_PORT_BASE:-19870}
mkdir -p "$OUT"
[[ -f $OUT/certs/tls.crt ]] || "$WEBHOOK" certs --out "$OUT/certs" --host localhost --host 127.0.0.1 >/dev/null

mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }

echo "| Credentials | Regions | ready after | RSS ready | peak (VmHWM) |"
echo "|---|---|---|---|---|"
for pt in ${POINTS:-10:1 1000:100 10000:1000}; do
  IFS=: read -r creds regions <<<"$pt"
  dir=$OUT/estate-$creds-$regions
  [[ -d $dir ]] || "$BIN/loadgen" estate --out "$dir" --credentials "$creds" --regions "$regions" >/dev/null
  port=$((port + 2))
  t0=$(date +%s%N)
  "$WEBHOOK" serve --estate "$dir" --listen "127.0.0.1:$port" --admin-listen "127.0.0.1:$((port + 1))" \
    --tls-cert-file "$OUT/certs/tls.crt" --tls-key-file "$OUT/certs/tls.key" --shutdown-delay 0s \
    >"$OUT/webhook-$port.log" 2>&1 &
  pid=$!
  up=0
  for _ in $(seq 1 300); do
    if "$BIN/loadgen" wait --addr "127.0.0.1:$port" --ca "$OUT/certs/ca.crt" --timeout 1s 2>/dev/null; then
      up=1
      break
    fi
    kill -0 "$pid" 2>/dev/null || break
  done
  t1=$(date +%s%N)
  if [[ $up != 1 ]]; then
    echo "bench/estate-memory.sh: credential-webhook did not come up on $dir; its log:" >&2
    tail -20 "$OUT/webhook-$port.log" >&2
    kill "$pid" 2>/dev/null || true
    exit 1
  fi
  sleep 1
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
  echo "| $creds | $regions | $(((t1 - t0) / 1000000)) ms | $(mib "$rss") | $(mib "$hwm") |"
  kill "$pid"
  wait "$pid" 2>/dev/null || true
done
