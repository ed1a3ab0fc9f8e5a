#!/usr/bin/env bash
# Runs every benchmark of credential-guard and writes BENCHMARKS.md.
#
#   bench/run.sh           full run (~25 minutes on 2 cores after the release build)
#   bench/run.sh --quick   short runs, no distribution benchmark (a few minutes after the build)
#
# Steps: release build of the binaries; criterion microbenchmarks (credential-core, credential-webhook);
# load runs against the webhook and the bare ceiling server, interleaved (bare, webhook, bare, webhook)
# with the servers pinned to CPU 0 and the load generator to CPU 1 when taskset and 2+ CPUs exist;
# the estate-size sweep with RSS; instruction and allocation counts per review (bench/profile.sh,
# when valgrind is installed); the latency the real kube-apiserver records for the webhook under a
# load of server-side applies, against the same load without it (tests/tests/admission_latency.rs);
# distribution fan-out/rotation (full mode); plugin latency.
# Raw results go to $CARGO_TARGET_DIR/bench/ (target/bench/ by default); bench/report.py turns them
# into BENCHMARKS.md.
# Environment: BENCH_OUT (results dir), BENCH_NO_REPORT=1 (keep BENCHMARKS.md as it is),
# BENCH_PORT_BASE (19400: ports used are base-320..base+60), BENCH_SKIP_CRITERION=1 (reuse the criterion results of an earlier run; for iterating on the load
# runs), BENCH_ONLY_CEILING=1 (the webhook-against-ceiling runs only, no report), BENCH_BASELINE=PATH (a credential-webhook binary of another commit, run interleaved with
# this one as `webhook-baseline`: before/after ratios from one run), BENCH_SKIP_APISERVER=1,
# BENCH_NO_BUILD=1 (with BENCH_ONLY_CEILING=1: use the binaries already built), BENCH_CONFIGS (the
# ceiling runs' proto:connections:streams list, e.g. "h1:64:1 h2:64:1"), BENCH_ROUNDS (rounds per configuration).
set -euo pipefail

MODE=full
case "${1:-}" in
  "") ;;
  --quick) MODE=quick ;;
  -h | --help) sed -n '2,20p' "$0"; exit 0 ;;
  *) echo "bench/run.sh: unknown argument ${1}; use --quick or nothing" >&2; exit 2 ;;
esac

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
# Ports: P+44.. for the servers, P-320.. for their admin listeners (another run on the machine, e.g.
# from a second work tree, needs another BENCH_PORT_BASE, or its servers answer this run's load).
P=${BENCH_PORT_BASE:-19400}
OUT=${BENCH_OUT:-$TARGET/bench}
BIN=$TARGET/release
export CRITERION_HOME=$TARGET/criterion
command -v python3 >/dev/null || { echo "bench/run.sh: python3 is needed for the report" >&2; exit 1; }
rm -rf "$OUT"
mkdir -p "$OUT"
echo "$MODE" >"$OUT/mode"

if [[ $MODE == quick ]]; then
  DUR=3s WARM=500ms ROUNDS=2 SWEEP_DUR=2s
  CRIT=(--warm-up-time 0.5 --measurement-time 1 --sample-size 20)
  SWEEP="10:1 1000:100 10000:1000"
else
  DUR=10s WARM=2s ROUNDS=2 SWEEP_DUR=5s
  CRIT=()
  SWEEP="10:1 10:100 10:1000 1000:1 1000:100 1000:1000 10000:1 10000:100 10000:1000"
fi
# proto:connections:streams-per-connection
CONFIGS=${BENCH_CONFIGS:-"h1:1:1 h1:16:1 h1:64:1 h2:1:1 h2:16:1 h2:64:1 h2:1:16 h2:1:64"}
ROUNDS=${BENCH_ROUNDS:-$ROUNDS}

PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

log() { printf '\n== %s\n' "$*" >&2; }

# --- build once --------------------------------------------------------------------------------------
if [[ ${BENCH_NO_BUILD:-} == 1 ]]; then
  # The ceiling runs only, on binaries built before (e.g. while another build holds the target dir).
  [[ ${BENCH_ONLY_CEILING:-} == 1 ]] || { echo "bench/run.sh: BENCH_NO_BUILD=1 needs BENCH_ONLY_CEILING=1" >&2; exit 2; }
  SKIP_BUILD=1 BENCH_SKIP_CRITERION=1
fi
if [[ -z ${SKIP_BUILD:-} ]]; then
log "release build"
cargo build --release -p credential-webhook -p credential-e2e --bins
# The plugin is measured only if it builds; a failure is reported, not fatal.
PLUGIN_BUILT=1
cargo build --release -p kubectl-credential --bins || PLUGIN_BUILT=0
# Build every benchmark executable now and run them directly later, so the whole run measures one
# build even if the tree changes meanwhile.
# Absolute: cargo prints a target dir inside the workspace (the default) relative to it, and some
# executables run from tests/.
exe() {
  local p
  p=$(grep -o "[^ (]*/release/deps/$1-[0-9a-f]*" | tail -1)
  [[ -z $p || $p == /* ]] || p=$ROOT/$p
  echo "$p"
}
CORE_BENCH=$(cargo bench -p credential-core --bench core --no-run 2>&1 | tee /dev/stderr | exe core)
ADMISSION_BENCH=$(cargo bench -p credential-webhook --bench admission --no-run 2>&1 | tee /dev/stderr | exe admission)
KUBELET_BENCH=$(cargo bench -p kubelet-providers --bench matching --no-run 2>&1 | tee /dev/stderr | exe matching)
LATENCY_TEST=
if [[ ${BENCH_SKIP_APISERVER:-} != 1 ]]; then
  LATENCY_TEST=$(cargo test -p credential-e2e --release --test admission_latency --no-run 2>&1 | tee /dev/stderr |
    exe admission_latency) || true
fi
DIST_TEST=
if [[ $MODE == full ]] && [[ -f tests/tests/distribution_e2e.rs ]]; then
  DIST_TEST=$(cargo test -p credential-e2e --release --test distribution_e2e --no-run 2>&1 | tee /dev/stderr |
    exe distribution_e2e) || true
fi
fi

# --- machine -----------------------------------------------------------------------------------------
{
  echo "nproc=$(nproc)"
  echo "cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "mem_kib=$(grep -m1 MemTotal /proc/meminfo | awk '{print $2}')"
  echo "kernel=$(uname -r)"
  echo "rustc=$(rustc -V)"
  echo "commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- . 2>/dev/null || echo '+dirty')"
  echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "loadavg_start=$(cut -d' ' -f1-3 /proc/loadavg)"
} >"$OUT/machine.env"

if command -v taskset >/dev/null && [[ $(nproc) -ge 2 ]]; then
  PIN_SERVER=(taskset -c 0) PIN_LOAD=(taskset -c 1)
  echo "pinning=server on CPU 0, load generator on CPU 1 (taskset)" >>"$OUT/machine.env"
else
  PIN_SERVER=() PIN_LOAD=()
  echo "pinning=none (taskset missing or fewer than 2 CPUs)" >>"$OUT/machine.env"
fi

# --- criterion ---------------------------------------------------------------------------------------
if [[ ${BENCH_SKIP_CRITERION:-} != 1 ]]; then
  log "criterion microbenchmarks"
  rm -rf "$CRITERION_HOME"
  # criterion's output directory (the report reads it).
  (cd "$ROOT" && "$CORE_BENCH" --bench "${CRIT[@]}") 2>&1 |
    tee "$OUT/criterion-core.txt" >&2
  (cd "$ROOT" && "$ADMISSION_BENCH" --bench "${CRIT[@]}") 2>&1 |
    tee "$OUT/criterion-admission.txt" >&2
  (cd "$ROOT" && "$KUBELET_BENCH" --bench "${CRIT[@]}") 2>&1 |
    tee "$OUT/criterion-kubelet.txt" >&2
else
  echo "criterion=skipped (BENCH_SKIP_CRITERION=1): the microbenchmark table is from an earlier run" >>"$OUT/machine.env"
fi

# --- servers -----------------------------------------------------------------------------------------
"$BIN/credential-webhook" certs --out "$OUT/certs" --host localhost --host 127.0.0.1 >/dev/null
CA=$OUT/certs/ca.crt

# start_webhook PORT ADMIN_PORT ESTATE_DIR [extra serve flags...]; sets SERVER_PID
# (WEBHOOK_BIN picks another binary, e.g. the baseline)
start_webhook() {
  local port=$1 admin=$2 estate=$3
  shift 3
  "${PIN_SERVER[@]}" "${WEBHOOK_BIN:-$BIN/credential-webhook}" serve --estate "$estate" \
    --listen "127.0.0.1:$port" --admin-listen "127.0.0.1:$admin" \
    --tls-cert-file "$OUT/certs/tls.crt" --tls-key-file "$OUT/certs/tls.key" --shutdown-delay 0s "$@" \
    >"$OUT/webhook-$port.log" 2>&1 &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  # Wait for the first handshake, but give up at once if the server exited (e.g. a bad estate).
  for _ in $(seq 1 300); do
    "$BIN/loadgen" wait --addr "127.0.0.1:$port" --ca "$CA" --timeout 1s 2>/dev/null && return 0
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      echo "bench/run.sh: credential-webhook on port $port exited; its log:" >&2
      tail -20 "$OUT/webhook-$port.log" >&2
      return 1
    fi
  done
  echo "bench/run.sh: credential-webhook on port $port did not come up in 300 s" >&2
  return 1
}

stop() {
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# load JSONL LABEL PORT PROTO CONNECTIONS STREAMS DURATION
load() {
  "${PIN_LOAD[@]}" "$BIN/loadgen" run --addr "127.0.0.1:$3" --ca "$CA" --proto "$4" \
    --connections "$5" --streams "$6" --duration "$7" --warmup "$WARM" --label "$2" --json "$1" ||
    echo "bench/run.sh: load run $2 $4 $5x$6 reported failures (counted in the report)" >&2
}

# --- ceiling: webhook vs bare, interleaved -------------------------------------------------------------
log "webhook vs bare ceiling ($CONFIGS; $ROUNDS rounds of $DUR each)"
"$BIN/loadgen" estate --out "$OUT/estate-small" --credentials 10 --regions 1 >/dev/null
"${PIN_SERVER[@]}" "$BIN/bare-webhook" --listen 127.0.0.1:$((P + 44)) \
  --tls-cert-file "$OUT/certs/tls.crt" --tls-key-file "$OUT/certs/tls.key" >"$OUT/bare.log" 2>&1 &
BARE_PID=$!
PIDS+=("$BARE_PID")
"$BIN/loadgen" wait --addr 127.0.0.1:$((P + 44)) --ca "$CA"
start_webhook $((P + 43)) $((P - 320)) "$OUT/estate-small"
WEBHOOK_PID=$SERVER_PID
# The same webhook with per-request logs off: shows what the info-level admission log costs.
start_webhook $((P + 45)) $((P - 319)) "$OUT/estate-small" --log-level warn
QUIET_PID=$SERVER_PID
BASELINE_PID=
if [[ -n ${BENCH_BASELINE:-} ]]; then
  WEBHOOK_BIN=$BENCH_BASELINE start_webhook $((P + 47)) $((P - 318)) "$OUT/estate-small"
  BASELINE_PID=$SERVER_PID
  echo "baseline=$("$BENCH_BASELINE" --version 2>/dev/null || echo "$BENCH_BASELINE")" >>"$OUT/machine.env"
fi

for cfg in $CONFIGS; do
  IFS=: read -r proto conns streams <<<"$cfg"
  for round in $(seq 1 "$ROUNDS"); do
    load "$OUT/ceiling.jsonl" "bare" $((P + 44)) "$proto" "$conns" "$streams" "$DUR"
    load "$OUT/ceiling.jsonl" "webhook" $((P + 43)) "$proto" "$conns" "$streams" "$DUR"
    if [[ -n $BASELINE_PID ]]; then
      load "$OUT/ceiling.jsonl" "webhook-baseline" $((P + 47)) "$proto" "$conns" "$streams" "$DUR"
    fi
    if [[ $cfg == h1:64:1 || $cfg == h2:64:1 || $cfg == h2:1:16 ]]; then
      load "$OUT/ceiling.jsonl" "webhook-log-warn" $((P + 45)) "$proto" "$conns" "$streams" "$DUR"
    fi
  done
done
grep VmHWM "/proc/$WEBHOOK_PID/status" | awk '{print "ceiling_webhook_hwm_kib=" $2}' >>"$OUT/machine.env" || true
stop "$BARE_PID"
stop "$WEBHOOK_PID"
stop "$QUIET_PID"
[[ -n $BASELINE_PID ]] && stop "$BASELINE_PID"
if [[ ${BENCH_ONLY_CEILING:-} == 1 ]]; then
  echo "loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/machine.env"
  exit 0
fi

# --- scale sweep ------------------------------------------------------------------------------------
log "estate-size sweep ($SWEEP)"
port=$((P + 50))
for pt in $SWEEP; do
  port=$((port + 2))
  IFS=: read -r creds regions <<<"$pt"
  dir=$OUT/estate-$creds-$regions
  "$BIN/loadgen" estate --out "$dir" --credentials "$creds" --regions "$regions" >/dev/null
  t0=$(date +%s%N)
  start_webhook "$port" $((port + 1)) "$dir"
  t1=$(date +%s%N)
  pid=$SERVER_PID
  rss_ready=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  load "$OUT/sweep.jsonl" "sweep/$creds/$regions/c1" "$port" h1 1 1 "$SWEEP_DUR"
  load "$OUT/sweep.jsonl" "sweep/$creds/$regions/c64" "$port" h1 64 1 "$SWEEP_DUR"
  hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  printf '{"credentials":%s,"regions":%s,"ready_ms":%s,"rss_ready_kib":%s,"rss_kib":%s,"hwm_kib":%s}\n' \
    "$creds" "$regions" $(((t1 - t0) / 1000000)) "$rss_ready" "$rss" "$hwm" >>"$OUT/sweep-rss.jsonl"
  stop "$pid"
  rm -rf "$dir"
done

# --- instruction and allocation counts ---------------------------------------------------------------
if command -v valgrind >/dev/null; then
  log "instruction and allocation counts per review (valgrind)"
  bench/profile.sh "$OUT/profile" >&2 || echo "bench/run.sh: bench/profile.sh failed" >&2
else
  echo "profile=skipped (valgrind not installed)" >>"$OUT/machine.env"
fi

# --- latency the apiserver records for the webhook ------------------------------------------------------
if [[ -n $LATENCY_TEST ]]; then
  log "apiserver-measured admission latency (real kube-apiserver, server-side applies with and without the webhook)"
  (cd tests && "$LATENCY_TEST" --ignored --nocapture bench_apiserver_admission_latency) 2>&1 |
    tee "$OUT/apiserver-admission.txt" >&2 || echo "FAILED" >>"$OUT/apiserver-admission.txt"
elif [[ ${BENCH_SKIP_APISERVER:-} == 1 ]]; then
  echo "SKIPPED" >"$OUT/apiserver-admission.txt"
else
  echo "BUILD-FAILED" >"$OUT/apiserver-admission.txt"
fi

# --- distribution ------------------------------------------------------------------------------------
if [[ $MODE == full ]]; then
  log "distribution at scale, write and trigger mode (release e2e tests on real kube-apiservers)"
  if [[ -n $DIST_TEST ]] && grep -q bench_thousand_credentials_trigger_mode tests/tests/distribution_e2e.rs; then
    # Run from tests/ as cargo test would (the tests may read files relative to their crate); one at a
    # time: each starts a management and BENCH_REGIONS regional apiservers (about 3.5 GiB for 10).
    (cd tests && BENCH_REGIONS=${BENCH_REGIONS:-10} "$DIST_TEST" --ignored --nocapture --test-threads=1 \
      bench_thousand_credentials_) 2>&1 |
      tee "$OUT/distribution.txt" >&2 || echo "FAILED" >>"$OUT/distribution.txt"
    (cd tests && "$DIST_TEST" --nocapture rotation_reaches_the_region) 2>&1 |
      tee -a "$OUT/distribution.txt" >&2 || echo "FAILED" >>"$OUT/distribution.txt"
  elif [[ -f tests/tests/distribution_e2e.rs ]]; then
    echo "BUILD-FAILED" >"$OUT/distribution.txt"
  else
    echo "ABSENT" >"$OUT/distribution.txt"
  fi
else
  echo "SKIPPED" >"$OUT/distribution.txt"
fi

# --- plugin -----------------------------------------------------------------------------------------
log "plugin latency"
PLUGIN=$BIN/kubectl-credential
if [[ $PLUGIN_BUILT == 0 ]]; then
  echo '{"what":"kubectl-credential","absent":"the plugin did not build in this run"}' >>"$OUT/plugin.jsonl"
  PLUGIN=/bin/false
fi
# time_runs FILE WHAT N cmd...: cold process runs, wall time in ms, one JSON line
time_runs() {
  local file=$1 what=$2 n=$3
  shift 3
  local ms=() status=0
  for _ in $(seq 1 "$n"); do
    local a b
    a=$(date +%s%N)
    "$@" >/dev/null 2>&1 || status=$?
    b=$(date +%s%N)
    ms+=($(((b - a) / 1000)))
  done
  printf '{"what":"%s","exit":%s,"runs_us":[%s]}\n' "$what" "$status" "$(IFS=,; echo "${ms[*]}")" >>"$file"
}
# A Credential of the example estate whose explain walks the whole tree.
if [[ $PLUGIN_BUILT == 1 ]]; then
  time_runs "$OUT/plugin.jsonl" "explain-offline" 20 \
    "$PLUGIN" explain aws-region1-cred -n kcm-system --from examples/estate
fi
KC=$OUT/emulator.kubeconfig
start_emulator() {
  "$BIN/kube-emulator" --crds --kubeconfig "$KC" --seed "$@" >"$OUT/emulator.out" 2>"$OUT/emulator.log" &
  EMU_PID=$!
  PIDS+=("$EMU_PID")
  for _ in $(seq 1 200); do [[ -s $OUT/emulator.out ]] && return 0; sleep 0.05; done
  echo "kube-emulator did not start; see $OUT/emulator.log" >&2
  return 1
}
if "$PLUGIN" explain --help 2>/dev/null | grep -q -- '--kubeconfig'; then
  start_emulator examples/estate/namespaces.yaml examples/estate/regions.yaml examples/estate/identities-aws.yaml \
    examples/estate/identities-other.yaml examples/estate/provider-interfaces.yaml examples/estate/credentials.yaml
  time_runs "$OUT/plugin.jsonl" "explain-live" 20 \
    "$PLUGIN" explain aws-region1-cred -n kcm-system --kubeconfig "$KC"
  stop "$EMU_PID"
else
  echo '{"what":"explain-live","absent":"kubectl-credential explain has no --kubeconfig (live access) yet"}' >>"$OUT/plugin.jsonl"
fi
if "$PLUGIN" --help 2>/dev/null | grep -qE '^ +list '; then
  "$BIN/loadgen" estate --out "$OUT/estate-list" --credentials 5000 --regions 10 >/dev/null
  start_emulator "$OUT/estate-list/regions.yaml" "$OUT"/estate-list/identities-*.yaml \
    "$OUT/estate-list/provider-interfaces.yaml" "$OUT"/estate-list/credentials-*.yaml
  time_runs "$OUT/plugin.jsonl" "kubectl-get-credentials-A" 5 kubectl --kubeconfig "$KC" get credentials -A
  time_runs "$OUT/plugin.jsonl" "plugin-list-A" 5 "$PLUGIN" list -A --kubeconfig "$KC"
  stop "$EMU_PID"
else
  echo '{"what":"plugin-list-A","absent":"kubectl-credential has no list command yet"}' >>"$OUT/plugin.jsonl"
fi

echo "loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/machine.env"

# --- report -----------------------------------------------------------------------------------------
CMD="bench/run.sh"
[[ $MODE == quick ]] && CMD="bench/run.sh --quick"
if [[ ${BENCH_NO_REPORT:-} != 1 ]]; then
  python3 bench/report.py "$OUT" "$CMD" >BENCHMARKS.md
  log "wrote BENCHMARKS.md (raw results in $OUT)"
else
  python3 bench/report.py "$OUT" "$CMD" >"$OUT/BENCHMARKS.md"
  log "wrote $OUT/BENCHMARKS.md"
fi
