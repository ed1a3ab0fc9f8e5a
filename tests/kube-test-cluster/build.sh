#!/usr/bin/env bash
# Builds kube-test-cluster (a real kube-apiserver, embedded etcd and kube-controller-manager from the
# upstream Go modules) into $1 (default: ../../target/kube-test-cluster/kube-test-cluster), stamped
# with the Kubernetes version go.mod pins so /version and `kubectl version` show it.
# Incremental: Go's build cache (~/.cache/go-build) makes a rebuild with no change take seconds.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/../../target/kube-test-cluster/kube-test-cluster}"
ver="$(awk '$1 == "k8s.io/kubernetes" { print $2; exit }' "$here/go.mod")"
[ -n "$ver" ] || { echo "build.sh: no k8s.io/kubernetes version in go.mod" >&2; exit 1; }
minor="$(echo "$ver" | cut -d. -f2)"
mkdir -p "$(dirname "$out")"
cd "$here"
CGO_ENABLED=0 go build -trimpath -o "$out.tmp.$$" -ldflags "-s -w \
  -X 'k8s.io/component-base/version.gitVersion=$ver' \
  -X 'k8s.io/component-base/version.gitMajor=1' \
  -X 'k8s.io/component-base/version.gitMinor=$minor' \
  -X 'k8s.io/component-base/version.gitTreeState=clean'" .
# Atomic replace: test binaries started in parallel never see a half-written file.
mv -f "$out.tmp.$$" "$out"
