#!/usr/bin/env bash
# Plugin latency against a real kube-apiserver (tests/kube-test-cluster), a baseline plugin binary
# run interleaved with this one in the same session, so before/after come from one run:
#   1. `explain aws-region1-cred -n kcm-system` live on the example estate (examples/estate);
#   2. `list -A` over 5,000 generated Credentials (loadgen estate), next to `kubectl get credentials -A`.
# Cold processes; prints one line per command: the median, min and max wall time of N runs, and the
# median CPU time (user + system) of the process, which the machine's other load disturbs less.
#
# Usage: bench/plugin-latency.sh BASELINE_PLUGIN [N]
#   BASELINE_PLUGIN: a kubectl-credential binary of another commit (e.g. built in a `git worktree`);
#   N: runs per command (default 7). Builds this tree's plugin and loadgen in release mode.
# With valgrind installed, each plugin command also runs once under `valgrind --tool=callgrind`: the
# instructions it executed, a count the machine's other load does not change.
# Environment: CARGO_TARGET_DIR, KUBE_TEST_CLUSTER (the kube-test-cluster binary; default
# $CARGO_TARGET_DIR/kube-test-cluster/kube-test-cluster, built by the e2e tests).
set -euo pipefail

BASELINE=${1:?usage: bench/plugin-latency.sh BASELINE_PLUGIN [N]}
N=${2:-7}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
CLUSTER_BIN=${KUBE_TEST_CLUSTER:-$TARGET/kube-test-cluster/kube-test-cluster}
[[ -x $CLUSTER_BIN ]] || { echo "no kube-test-cluster at $CLUSTER_BIN: run bash tests/kube-test-cluster/build.sh $CLUSTER_BIN" >&2; exit 1; }

cargo build --release -p kubectl-credential -p credential-e2e --bin kubectl-credential --bin loadgen >&2
PLUGIN=$TARGET/release/kubectl-credential
WORK=$(mktemp -d)
KEEP_OPEN=$WORK/stdin
mkfifo "$KEEP_OPEN"
cleanup() {
  exec 3>&- || true # the cluster exits when its stdin closes
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The cluster runs until its stdin (our fd 3) closes.
"$CLUSTER_BIN" apiserver <"$KEEP_OPEN" >"$WORK/ready.json" 2>"$WORK/apiserver.log" &
exec 3>"$KEEP_OPEN"
for _ in $(seq 1 600); do [[ -s $WORK/ready.json ]] && break; sleep 0.2; done
KC=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["kubeconfig"])' "$WORK/ready.json")
export KUBECONFIG=$KC
k() { kubectl --request-timeout=120s "$@"; }

# One cold run of argv[1:], output discarded: "wall_us:exit:cpu_us" (CPU from the child's rusage).
RUN_ONCE='
import resource, subprocess, sys, time
t = time.perf_counter()
status = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
wall = time.perf_counter() - t
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print(f"{int(wall * 1e6)}:{status}:{int((r.ru_utime + r.ru_stime) * 1e6)}")
'

# Instructions executed by each plugin command (kubectl is a Go binary: not under valgrind).
instructions() {
  command -v valgrind >/dev/null || return 0
  local cmd out
  for cmd in "$@"; do
    [[ $cmd == kubectl* ]] && continue
    # shellcheck disable=SC2086 # the command's words
    out=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null $cmd 2>&1 >/dev/null | grep -o 'Collected : [0-9]*' | grep -o '[0-9]*$' || true)
    echo "instructions: ${out:-?} $cmd"
  done
}

# median/min/max of N cold runs of each command, interleaved: one run of each per round.
bench() {
  local title=$1
  shift
  local -a names=() cmds=()
  while (($#)); do names+=("$1"); cmds+=("$2"); shift 2; done
  local -A runs=()
  for _ in $(seq 1 "$N"); do
    for i in "${!cmds[@]}"; do
      # shellcheck disable=SC2086 # the command's words
      runs[$i]+="$(python3 -c "$RUN_ONCE" ${cmds[$i]}) "
    done
  done
  echo "## $title"
  instructions "${cmds[@]}"
  echo "| what | runs | median | min | max | CPU (median) | exit |"
  echo "|---|---|---|---|---|---|---|"
  for i in "${!cmds[@]}"; do
    python3 - "${names[$i]}" "${runs[$i]}" "${cmds[$i]}" <<'EOF'
import statistics, sys
name, runs, cmd = sys.argv[1], sys.argv[2].split(), sys.argv[3]
us = [int(r.split(":")[0]) for r in runs]
exits = sorted({r.split(":")[1] for r in runs})
cpu = [int(r.split(":")[2]) for r in runs]
ms = lambda x: f"{x / 1000:.1f} ms"
print(f"| {name} | {len(us)} | {ms(statistics.median(us))} | {ms(min(us))} | {ms(max(us))} | {ms(statistics.median(cpu))} | {','.join(exits)} |")
EOF
  done
}

echo "kube-apiserver $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' "$WORK/ready.json"); load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
k apply -f examples/estate/crds-k0rdent.yaml -f examples/estate/crds-capa.yaml -f examples/estate/crds-capz.yaml >/dev/null
k wait --for condition=established crd --all --timeout=120s >/dev/null
k apply -f examples/estate/namespaces.yaml >/dev/null
for f in regions identities-aws identities-other provider-interfaces credentials clusterdeployments; do
  k apply -f "examples/estate/$f.yaml" >/dev/null
done
# A first, unmeasured run of each binary: page cache and the apiserver's own warm-up.
"$BASELINE" explain aws-region1-cred -n kcm-system >/dev/null 2>&1 || true
"$PLUGIN" explain aws-region1-cred -n kcm-system >/dev/null 2>&1 || true
bench "explain live (example estate)" \
  "explain-live baseline" "$BASELINE explain aws-region1-cred -n kcm-system" \
  "explain-live" "$PLUGIN explain aws-region1-cred -n kcm-system"

"$TARGET/release/loadgen" estate --out "$WORK/estate" --credentials 5000 --regions 10 >/dev/null
# The example Credentials stay (their finalizer would hold a delete): the count says how many.
# Only the Credentials: list reads nothing else. The generated objects carry a resourceVersion and
# uid (an offline estate's), which a create must not.
for f in "$WORK"/estate/credentials-*.yaml; do
  sed -E 's/"(resourceVersion|uid)":"[^"]*",?//g' "$f" | k apply --server-side -f - >/dev/null
done
count=$(k get credentials -A --no-headers | wc -l)
echo "credentials: $count" >&2
"$BASELINE" list -A >/dev/null 2>&1 || true
bench "list -A ($count Credentials)" \
  "kubectl-get-credentials-A" "kubectl get credentials -A" \
  "plugin-list-A baseline" "$BASELINE list -A" \
  "plugin-list-A" "$PLUGIN list -A"
