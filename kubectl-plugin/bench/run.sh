#!/usr/bin/env bash
# Measures kubectl-credential against the API emulator (not a CI test; numbers go to kubectl-plugin/BENCH.md):
#   1. cold `explain` latency (a new process per run) on the example estate: management + region1 + region2
#      emulators, the Regions' kubeconfig Secrets pointing at the regional emulators;
#   2. `list -A` over 5,000 Credentials vs `kubectl get credentials -A` on the same emulator, same session.
# Needs: release builds of kubectl-credential and kube-emulator, kubectl, hyperfine (apt-get install -y hyperfine).
# Usage: bash kubectl-plugin/bench/run.sh [RUNS]   (from the workspace root)
set -euo pipefail
RUNS=${1:-30}
ROOT=$(pwd)
BIN=$ROOT/target/release
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

cat_yaml() { # all YAML files under $1 (not regions/), one stream
  find "$1" -name regions -prune -o -name '*.yaml' -print | sort | while read -r f; do cat "$f"; echo; echo '---'; done
}
start() { # name port seedfile [extra flags] -> kubeconfig at $WORK/name.kubeconfig
  "$BIN/kube-emulator" --port "$2" --context "$1" --seed "$3" --kubeconfig "$WORK/$1.kubeconfig" "${@:4}" \
    >/dev/null 2>"$WORK/$1.log" &
  PIDS+=($!)
  for _ in $(seq 100); do [ -s "$WORK/$1.kubeconfig" ] && grep -q listening "$WORK/$1.log" && return; sleep 0.1; done
  echo "emulator $1 did not start" >&2; cat "$WORK/$1.log" >&2; exit 1
}

# --- 1. cold explain -----------------------------------------------------------------------------
for r in region1 region2; do cat_yaml examples/estate/regions/$r > "$WORK/$r.yaml"; done
start region1 18101 "$WORK/region1.yaml"
start region2 18102 "$WORK/region2.yaml"
{
  cat_yaml examples/estate   # the Secrets below replace the examples' kubeconfig Secrets
  for r in region1 region2; do
    printf 'apiVersion: v1\nkind: Secret\nmetadata: {name: %s-kubeconfig, namespace: kcm-system}\ndata:\n  value: %s\n---\n' \
      "$r" "$(base64 -w0 < "$WORK/$r.kubeconfig")"
  done
} > "$WORK/mgmt.yaml"
start mgmt 18100 "$WORK/mgmt.yaml"
export KUBECONFIG=$WORK/mgmt.kubeconfig
"$BIN/kubectl-credential" explain aws-role-region1-cred -n kcm-system | sed -n 1p  # sed reads it all: no SIGPIPE under pipefail
hyperfine -N -i --warmup 3 --runs "$RUNS" --export-markdown "$WORK/explain.md" \
  "$BIN/kubectl-credential explain aws-role-region1-cred -n kcm-system" \
  "$BIN/kubectl-credential explain aws-stale-cred -n kcm-system" \
  "$BIN/kubectl-credential explain -n kcm-system" || true
cat "$WORK/explain.md"

# --- 2. list -A over 5,000 Credentials ------------------------------------------------------------
python3 - "$WORK/many.yaml" <<'PY'
import sys
out = open(sys.argv[1], "w")
for i in range(5000):
    ns = f"team-{i % 50:02d}"
    out.write(f"""apiVersion: k0rdent.mirantis.com/v1beta1
kind: Credential
metadata:
  name: cred-{i:05d}
  namespace: {ns}
  labels: {{k0rdent.mirantis.com/component: kcm, k0rdent.mirantis.com/region: region{i % 10}}}
spec:
  region: region{i % 10}
  description: benchmark credential {i}
  identityRef: {{apiVersion: infrastructure.cluster.x-k8s.io/v1beta2, kind: AWSClusterStaticIdentity, name: id-{i:05d}}}
status:
  ready: true
  conditions:
  - {{type: CredentialReady, status: "True", reason: Succeeded, lastTransitionTime: "2025-01-01T00:00:00Z"}}
  - {{type: ClusterIdentitiesDistributed, status: "True", reason: Distributed, lastTransitionTime: "2025-01-01T00:00:00Z"}}
---
""")
PY
start many 18110 "$WORK/many.yaml" --crds
export KUBECONFIG=$WORK/many.kubeconfig
mkdir -p "$WORK/cache"
kubectl --cache-dir "$WORK/cache" get credentials -A --no-headers | wc -l
"$BIN/kubectl-credential" list -A --no-headers | wc -l
hyperfine -N --warmup 3 --runs "$RUNS" --export-markdown "$WORK/list.md" \
  "kubectl --cache-dir $WORK/cache get credentials -A" \
  "$BIN/kubectl-credential list -A" \
  "kubectl --cache-dir $WORK/cache get credentials -A -o json" \
  "$BIN/kubectl-credential list -A -o json"
cat "$WORK/list.md"
