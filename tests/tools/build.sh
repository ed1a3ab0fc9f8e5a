#!/usr/bin/env bash
# Builds the upstream command-line tools the tests drive, from the Go modules go.mod pins (the
# `tool` block), into $2 (default: ../../target/tools/<tool>):
#   helm                    helm.sh/helm/v3/cmd/helm (lint, template, install, uninstall)
#   validate-krew-manifest  sigs.k8s.io/krew/cmd/validate-krew-manifest (krew's own validator)
# Usage: build.sh <tool> [output path]. Incremental: Go's build cache (~/.cache/go-build) makes a
# rebuild with no change take seconds. The version go.mod pins is stamped into `helm version`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
tool="${1:?usage: build.sh helm|validate-krew-manifest [output path]}"
out="${2:-$here/../../target/tools/$tool}"
case "$tool" in
  helm)
    pkg=helm.sh/helm/v3/cmd/helm
    ver="$(awk '$1 == "helm.sh/helm/v3" { print $2; exit }' "$here/go.mod")"
    [ -n "$ver" ] || { echo "build.sh: no helm.sh/helm/v3 version in go.mod" >&2; exit 1; }
    ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$ver"
    ;;
  validate-krew-manifest)
    pkg=sigs.k8s.io/krew/cmd/validate-krew-manifest
    ldflags="-s -w"
    ;;
  *)
    echo "build.sh: unknown tool $tool (helm or validate-krew-manifest)" >&2
    exit 2
    ;;
esac
mkdir -p "$(dirname "$out")"
cd "$here"
CGO_ENABLED=0 go build -trimpath -o "$out.tmp.$$" -ldflags "$ldflags" "$pkg"
# Atomic replace: test binaries started in parallel never see a half-written file.
mv -f "$out.tmp.$$" "$out"
