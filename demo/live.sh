#!/usr/bin/env bash
# The example estate (examples/estate) on real kube-apiservers: one for the management cluster and
# one per Region (examples/estate/regions/<name>/), each started by tests/kube-test-cluster (a real
# kube-apiserver with embedded etcd). The k0rdent CRDs are the ones of tests/crds/ (status
# subresource, printer columns, KCM's CEL rules); the objects are loaded with real kubectl, each
# .status written through the status subresource as KCM would; the Region kubeconfig Secrets point at
# the regional servers. Then it prints the commands to try and waits for Ctrl-C, which stops the
# servers and removes the temporary directory.
#
# Usage: demo/live.sh            start, print the commands, wait for Ctrl-C
#        demo/live.sh --check    start, run the commands once, check each exit status and output,
#                                stop; exit 0 when all were as expected (what tests/tests/demo_live.rs runs)
#
# Needs: bash 4.3+, kubectl, jq, cargo; Go the first time (to build kube-test-cluster).
# Environment: KUBE_TEST_CLUSTER (the kube-test-cluster binary; built when missing),
#              KUBECTL_CREDENTIAL (the plugin binary; else `cargo build -p kubectl-credential`),
#              CARGO_TARGET_DIR (where both are looked for and built; default target/).
set -euo pipefail

mode=interactive
case "${1:-}" in
  "") ;;
  --check) mode=check ;;
  -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) echo "demo/live.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
esac

root="$(cd "$(dirname "$0")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
for tool in kubectl jq; do
  command -v "$tool" >/dev/null || { echo "demo/live.sh: $tool is not on PATH" >&2; exit 2; }
done

cluster_bin="${KUBE_TEST_CLUSTER:-$target/kube-test-cluster/kube-test-cluster}"
if [ ! -x "$cluster_bin" ]; then
  echo "Building kube-test-cluster into $cluster_bin (needs Go; the first build takes minutes)..." >&2
  bash "$root/tests/kube-test-cluster/build.sh" "$cluster_bin"
fi
plugin="${KUBECTL_CREDENTIAL:-}"
if [ -z "$plugin" ]; then
  (cd "$root" && cargo build -q -p kubectl-credential --bin kubectl-credential)
  plugin="$target/debug/kubectl-credential"
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/credential-guard-demo.XXXXXX")"
pids=()
cleanup() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  exec 9>&- # the servers' stdin: closing it stops them even if a TERM was missed
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# kube-test-cluster runs until its stdin closes: give every server this FIFO, held open by the
# script, so the servers also stop when the script is killed outright.
mkfifo "$work/stdin"
exec 9<>"$work/stdin"

regions=()
for dir in "$root"/examples/estate/regions/*/; do regions+=("$(basename "$dir")"); done
clusters=(mgmt "${regions[@]}")

for c in "${clusters[@]}"; do
  mkdir "$work/$c"
  "$cluster_bin" apiserver --dir "$work/$c/state" <"$work/stdin" >"$work/$c/ready.json" 2>"$work/$c/apiserver.log" &
  pids+=("$!")
done
echo "Starting ${#clusters[@]} kube-apiservers (${clusters[*]}); logs in $work/<name>/apiserver.log"
echo "work dir: $work"
echo "apiserver pids: ${pids[*]}"

# Waits for the JSON ready line of every server.
for i in "${!clusters[@]}"; do
  c="${clusters[$i]}"
  for _ in $(seq 1 600); do
    [ -s "$work/$c/ready.json" ] && break
    if ! kill -0 "${pids[$i]}" 2>/dev/null; then
      echo "demo/live.sh: the $c apiserver exited before it was ready:" >&2
      tail -n 20 "$work/$c/apiserver.log" >&2
      exit 1
    fi
    sleep 0.2
  done
  [ -s "$work/$c/ready.json" ] || { echo "demo/live.sh: the $c apiserver was not ready within 120 s" >&2; exit 1; }
done

# A self-contained kubeconfig (CA inline) for cluster $1, context namespace $2: what a Region's
# kubeconfig Secret holds (the plugin refuses file references in kubeconfigs it reads from Secrets).
kubeconfig() {
  local ready="$work/$1/ready.json" ca
  ca="$(base64 <"$(jq -r .ca "$ready")" | tr -d '\n')"
  cat <<EOF
apiVersion: v1
kind: Config
clusters:
- name: $1
  cluster:
    server: $(jq -r .server "$ready")
    certificate-authority-data: $ca
users:
- name: $1-admin
  user:
    token: $(jq -r .token "$ready")
contexts:
- name: $1
  context:
    cluster: $1
    user: $1-admin
    namespace: $2
current-context: $1
EOF
}
for c in "${clusters[@]}"; do
  ns=default
  [ "$c" = mgmt ] && ns=kcm-system
  kubeconfig "$c" "$ns" >"$work/$c.kubeconfig"
done

kc() {
  local c="$1"
  shift
  kubectl --kubeconfig "$work/$c.kubeconfig" --request-timeout=60s "$@"
}

# Seeds cluster $1 from the YAML files directly in directory $2, as the cluster would hold them:
# the CRDs of its crds*.yaml files, where tests/crds/ has the full k0rdent CRD of the same name that
# one instead; then Namespaces; then every other object with `kubectl create`; then each .status the
# server ignored on create, through the status subresource.
seed() {
  local c="$1" dir="$2" f crd name objects
  # kubectl prints one object, a List, or one of either per file: always an array of objects.
  local flatten='[.[] | if .kind == "List" then .items[] else . end]'
  local crd_files=() object_files=()
  for f in "$dir"/*.yaml; do
    case "$(basename "$f")" in
      crds*.yaml) crd_files+=(-f "$f") ;;
      *) object_files+=(-f "$f") ;;
    esac
  done
  kc "$c" apply "${crd_files[@]}" >/dev/null
  for crd in "$root"/tests/crds/k0rdent.mirantis.com_*.yaml; do
    name="$(basename "$crd" .yaml)"
    name="${name#k0rdent.mirantis.com_}.k0rdent.mirantis.com"
    if kc "$c" get crd "$name" >/dev/null 2>&1; then kc "$c" apply -f "$crd" >/dev/null; fi
  done
  # `kubectl wait` fails on a CRD read before its first status: ask again.
  for _ in 1 2 3 4 5; do
    kc "$c" wait --for=condition=Established --timeout=60s crd --all >/dev/null 2>&1 && break
    sleep 1
  done
  objects="$(kc "$c" create --dry-run=client -o json "${object_files[@]}" | jq -s "$flatten")"
  if [ "$c" = mgmt ]; then
    local r b64
    for r in "${regions[@]}"; do
      b64="$(kubeconfig "$r" default | base64 | tr -d '\n')"
      # The Region names its Secret and key; the Secret lives in kcm-system.
      objects="$(jq --arg r "$r" --arg v "$b64" '
        (map(select(.kind == "Region" and .metadata.name == $r))[0].spec.kubeConfig) as $ref
        | map(if .kind == "Secret" and .metadata.namespace == "kcm-system" and .metadata.name == $ref.name
              then .data[$ref.key] = $v else . end)' <<<"$objects")"
    done
  fi
  jq '{apiVersion: "v1", kind: "List", items: map(select(.kind == "Namespace"))}' <<<"$objects" | kc "$c" apply -f - >/dev/null
  jq '{apiVersion: "v1", kind: "List", items: map(select(.kind != "Namespace"))}' <<<"$objects" | kc "$c" create -f - >/dev/null
  local want stored
  want="$(jq '{apiVersion: "v1", kind: "List", items: map(select(.kind != "Namespace" and has("status")))}' <<<"$objects")"
  [ "$(jq '.items | length' <<<"$want")" = 0 ] && return
  stored="$(kc "$c" get -f - -o json <<<"$want" | jq -s "$flatten")"
  local patches i
  patches="$(jq --argjson stored "$stored" '
    [[.items, $stored] | transpose[] | select(.[0].status != .[1].status) | .[0]
     | {resource: ((.kind | ascii_downcase) + (if (.apiVersion | contains("/")) then "." + (.apiVersion | split("/")[0]) else "" end)),
        namespace: (.metadata.namespace // ""), name: .metadata.name, patch: ({status} | tojson)}]' <<<"$want")"
  for i in $(seq 0 $(($(jq length <<<"$patches") - 1))); do
    local p=(jq -r --argjson i "$i")
    local ns
    ns="$("${p[@]}" '.[$i].namespace' <<<"$patches")"
    kc "$c" patch "$("${p[@]}" '.[$i].resource' <<<"$patches")" "$("${p[@]}" '.[$i].name' <<<"$patches")" \
      ${ns:+-n "$ns"} --subresource=status --type=merge -p "$("${p[@]}" '.[$i].patch' <<<"$patches")" >/dev/null
  done
}

seed mgmt "$root/examples/estate"
for r in "${regions[@]}"; do seed "$r" "$root/examples/estate/regions/$r"; done

# kubectl finds the plugin on PATH as kubectl-credential.
mkdir "$work/bin"
ln -s "$plugin" "$work/bin/kubectl-credential"
export PATH="$work/bin:$PATH" KUBECONFIG="$work/mgmt.kubeconfig"

# The commands to try: expected exit status | a phrase the output must contain | command.
commands=(
  "0|REGION|kubectl get credentials -n kcm-system"
  "0|azure-region1-cred|kubectl credential list -A"
  "1|provider Azure is not enabled in Region region1|kubectl credential explain azure-region1-cred -n kcm-system"
  "0|aws-region1-cred|kubectl credential explain aws-region1-cred -n kcm-system"
  "0|1 to update|kubectl credential plan aws-stale-cred -n kcm-system"
  "1|CRED004|kubectl credential lint -f examples/manifests/credential-unknown-region.yaml"
  "0|KCP102|kubectl credential provider validate --config examples/kubelet/warnings/pitfalls.yaml"
)

version="$(jq -r .version "$work/mgmt/ready.json")"
echo
echo "The example estate is served by real kube-apiservers ($version):"
for c in "${clusters[@]}"; do printf '  %-8s %s\n' "$c" "$(jq -r .server "$work/$c/ready.json")"; done

if [ "$mode" = check ]; then
  cd "$root"
  failed=0
  for entry in "${commands[@]}"; do
    IFS='|' read -r want phrase cmd <<<"$entry"
    echo
    echo "\$ $cmd"
    set +e
    out="$(bash -c "$cmd" 2>&1)"
    got=$?
    set -e
    printf '%s\n' "$out"
    if [ "$got" != "$want" ]; then
      echo "demo check FAILED: exit status $got, expected $want: $cmd"
      failed=$((failed + 1))
    elif ! grep -qF -- "$phrase" <<<"$out"; then
      echo "demo check FAILED: the output lacks \"$phrase\": $cmd"
      failed=$((failed + 1))
    fi
  done
  echo
  if [ "$failed" -gt 0 ]; then
    echo "demo check: $failed of ${#commands[@]} commands not as expected"
    exit 1
  fi
  echo "demo check: all ${#commands[@]} commands as expected"
  exit 0
fi

cat <<EOF

In another terminal, from $root:

  export KUBECONFIG=$KUBECONFIG PATH=$work/bin:\$PATH

then try:

EOF
for entry in "${commands[@]}"; do
  IFS='|' read -r want _ cmd <<<"$entry"
  printf '  %-95s # exit %s\n' "$cmd" "$want"
done
cat <<EOF
  kubectl credential explain -A                                                                   # every Credential, not-ready first
  kubectl get regions,providerinterfaces                                                          # KCM's objects, as kubectl shows them

Press Ctrl-C to stop the servers and remove $work.
EOF
# Returns when an apiserver exits (a trap runs on Ctrl-C).
set +e
wait -n "${pids[@]}"
echo "demo/live.sh: an apiserver exited; stopping." >&2
exit 1
