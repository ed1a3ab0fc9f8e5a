#!/usr/bin/env bash
# Renders every kustomization under deploy/ with `kubectl kustomize` and validates each built-in
# object against the Kubernetes OpenAPI schemas bundled in the PyPI package kubernetes-validate
# (strict: unknown fields fail), for the oldest Kubernetes the manifests support (1.30: preStop
# `sleep`, GA matchConditions) and the API level the code is built against (1.33).
#
# CRD-based kinds (cert-manager.io Issuer/Certificate) have no bundled schema: they are skipped
# explicitly and listed as skipped; deploy_invariants.rs checks their content instead.
#
# Needs kubectl (for its built-in kustomize) and python3. The first run creates a venv and
# pip-installs kubernetes-validate; later runs work offline. Environment:
#   DEPLOY_VENV     venv directory (default: <repo>/target/deploy-venv)
#   KUBE_VERSIONS   space-separated schema versions (default: "1.30.0 1.33.0")
#   KUBECTL         kubectl binary (default: kubectl on PATH)
set -euo pipefail

deploy_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_dir=$(cd "$deploy_dir/.." && pwd)
venv=${DEPLOY_VENV:-$repo_dir/target/deploy-venv}
kube_versions=${KUBE_VERSIONS:-"1.30.0 1.33.0"}
kubectl=${KUBECTL:-kubectl}
validator_version=1.37.0

if ! command -v "$kubectl" >/dev/null 2>&1; then
  echo "validate.sh: kubectl not found (set KUBECTL=/path/to/kubectl); it renders the kustomizations" >&2
  exit 2
fi

if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import kubernetes_validate' 2>/dev/null; then
  echo "validate.sh: installing kubernetes-validate==$validator_version into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "kubernetes-validate==$validator_version"
fi

# The dev-certs overlay generates its Secret from files that are never committed. When they are
# missing, make throw-away ones (only so that the overlay renders) and remove them afterwards.
dev_certs="$deploy_dir/overlays/dev-certs/certs"
made_dev_certs=()
cleanup() {
  for f in "${made_dev_certs[@]}"; do rm -f "$f"; done
  rmdir "$dev_certs" 2>/dev/null || true
}
trap cleanup EXIT
if [ ! -f "$dev_certs/tls.crt" ] || [ ! -f "$dev_certs/tls.key" ] || [ ! -f "$dev_certs/ca.crt" ]; then
  mkdir -p "$dev_certs"
  for f in ca.crt tls.crt tls.key; do [ -f "$dev_certs/$f" ] || made_dev_certs+=("$dev_certs/$f"); done
  webhook_bin=${CREDENTIAL_WEBHOOK_BIN:-$repo_dir/target/debug/credential-webhook}
  tmp=$(mktemp -d)
  if [ -x "$webhook_bin" ] && "$webhook_bin" certs --out "$tmp" --host credential-webhook.kcm-system.svc >/dev/null 2>&1 &&
    [ -f "$tmp/ca.crt" ] && [ -f "$tmp/tls.crt" ] && [ -f "$tmp/tls.key" ]; then
    :
  elif command -v openssl >/dev/null 2>&1; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=validate-ca \
      -keyout "$tmp/ca.key" -out "$tmp/ca.crt" 2>/dev/null
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
      -subj /CN=credential-webhook.kcm-system.svc -keyout "$tmp/tls.key" -out "$tmp/tls.crt" 2>/dev/null
  else
    echo "validate.sh: cannot render overlays/dev-certs: no certs in $dev_certs, no $webhook_bin and no openssl" >&2
    exit 2
  fi
  for f in ca.crt tls.crt tls.key; do [ -f "$dev_certs/$f" ] || cp "$tmp/$f" "$dev_certs/$f"; done
  rm -rf "$tmp"
fi

rendered=$(mktemp -d)
trap 'cleanup; rm -rf "$rendered"' EXIT
count=0
# Every kustomization (Components are not buildable alone: they are rendered through the
# kustomizations that include them).
while IFS= read -r kfile; do
  dir=$(dirname "$kfile")
  if grep -q '^kind: Component' "$kfile"; then continue; fi
  rel=${dir#"$repo_dir"/}
  out="$rendered/$(echo "$rel" | tr '/' '_').yaml"
  if ! "$kubectl" kustomize "$dir" >"$out"; then
    echo "FAIL render $rel" >&2
    exit 1
  fi
  count=$((count + 1))
done < <(find "$deploy_dir" -name kustomization.yaml -not -path '*/certs/*' | sort)
if [ "$count" -eq 0 ]; then
  echo "validate.sh: found no kustomization under $deploy_dir" >&2
  exit 1
fi

"$venv/bin/python" - "$rendered" $kube_versions <<'PY'
import glob
import os
import sys

import yaml
import kubernetes_validate as kv

rendered, versions = sys.argv[1], sys.argv[2:]
# Kinds served by CRDs: kubernetes-validate bundles only built-in schemas.
CRD_GROUPS = {"cert-manager.io"}

# Prove the validator rejects something before trusting its "valid": an unknown field (strict)
# and a wrong type must both fail.
probes = [
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}, "spec": {"portz": []}},
    {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"}, "spec": {"replicas": "two"}},
]
for probe in probes:
    try:
        kv.validate(probe, versions[0], strict=True)
    except kv.ValidationError:
        continue
    sys.exit("validate.sh: kubernetes-validate accepted an invalid %s: refusing to trust it" % probe["kind"])

passed = failed = skipped = 0
for path in sorted(glob.glob(os.path.join(rendered, "*.yaml"))):
    source = os.path.basename(path)[: -len(".yaml")].replace("_", "/")
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    if not docs:
        print("FAIL %s: rendered nothing" % source)
        failed += 1
        continue
    for doc in docs:
        kind = doc.get("kind", "?")
        name = doc.get("metadata", {}).get("name", "?")
        what = "%s %s/%s" % (source, kind, name)
        group = doc.get("apiVersion", "").rpartition("/")[0]
        if group in CRD_GROUPS:
            print("skip %s (CRD kind %s: no bundled schema)" % (what, doc["apiVersion"]))
            skipped += 1
            continue
        problems = []
        for version in versions:
            try:
                kv.validate(doc, version, strict=True)
            except kv.ValidationError as e:
                at = "/".join(map(str, e.path)) or "(top)"
                problems.append("against Kubernetes %s: %s at %s" % (version, e.message, at))
            except kv.SchemaNotFoundError:
                problems.append("no schema for %s in Kubernetes %s" % (doc.get("apiVersion"), version))
        if problems:
            failed += 1
            for p in problems:
                print("FAIL %s %s" % (what, p))
        else:
            passed += 1
            print("ok   %s (Kubernetes %s)" % (what, ", ".join(versions)))

print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))
sys.exit(1 if failed else 0)
PY
