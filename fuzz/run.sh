#!/usr/bin/env bash
# Runs every fuzz target for a while (default 60 s each) and prints executions and crashes per target.
#
#   fuzz/run.sh              # all targets, 60 s each
#   FUZZ_SECONDS=600 fuzz/run.sh rules fieldpath
#
# Needs cargo-fuzz (`cargo install --locked cargo-fuzz`). Only a stable toolchain is available here,
# so targets build with `-s none` (sancov coverage, no AddressSanitizer: Rust code here has no
# `unsafe`, so ASan adds little); RUSTC_BOOTSTRAP=1 keeps the build fingerprint stable across runs.
# Corpora grow in fuzz/corpus/<target> (seeded from examples/), crashes land in
# fuzz/artifacts/<target>; both are git-ignored. Exit status is non-zero if any target crashed.
set -uo pipefail
cd "$(dirname "$0")"
SECONDS_PER_TARGET="${FUZZ_SECONDS:-60}"
export RUSTC_BOOTSTRAP=1
ALL=(admission_review rules fieldpath image_reference kubelet_config estate_loader)
[ $# -gt 0 ] && TARGETS=("$@") || TARGETS=("${ALL[@]}")

seed() {
  local t=$1 dir=corpus/$1
  mkdir -p "$dir"
  [ -n "$(ls -A "$dir")" ] && return
  case $t in
    kubelet_config) find ../examples/kubelet -type f \( -name '*.yaml' -o -name '*.yml' -o -name '*.json' \) \
                      -exec cp {} "$dir"/ \; ;;
    estate_loader) i=0; for f in $(find ../examples -type f \( -name '*.yaml' -o -name '*.json' \) | sort); do
                     i=$((i+1)); cp "$f" "$dir/seed-$i"; done ;;
    admission_review)
      # Odd first byte: raw bytes. A review as the API server sends it, and a few broken ones.
      printf '\001{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u1","kind":{"group":"k0rdent.mirantis.com","version":"v1beta1","kind":"Credential"},"name":"c","namespace":"team","operation":"CREATE","object":{"apiVersion":"k0rdent.mirantis.com/v1beta1","kind":"Credential","metadata":{"name":"c","namespace":"team"},"spec":{"region":"region1","identityRef":{"apiVersion":"infrastructure.cluster.x-k8s.io/v1beta2","kind":"AWSClusterStaticIdentity","name":"aws-cluster-identity"}}},"oldObject":null,"dryRun":false}}' > "$dir/review"
      printf '\001{"request":{"object":{"uid":"x"},"uid":"u2"' > "$dir/truncated"
      printf '\000\000\000\000\000\000\000\000' > "$dir/structured" ;;
    *) printf '\000\000\000\000' > "$dir/empty" ;;
  esac
}

echo "building fuzz targets (cargo fuzz build -s none -O)"
cargo fuzz build -s none -O >/dev/null 2>build.log || { tail -30 build.log; exit 1; }

status=0
printf '%-18s %12s %10s %8s %s\n' target executions exec/s crashes seconds
for t in "${TARGETS[@]}"; do
  seed "$t"
  mkdir -p "artifacts/$t"
  before=$(ls "artifacts/$t" | wc -l)
  log="run-$t.log"
  cargo fuzz run -s none -O "$t" "corpus/$t" -- -max_total_time="$SECONDS_PER_TARGET" -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1
  rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  crashes=$(( $(ls "artifacts/$t" | wc -l) - before ))
  if [ "$rc" -ne 0 ] && [ "$crashes" -eq 0 ]; then crashes="rc=$rc"; fi
  printf '%-18s %12s %10s %8s %s\n' "$t" "${execs:-?}" "${rate:-?}" "$crashes" "$SECONDS_PER_TARGET"
  if [ "$rc" -ne 0 ]; then status=1; grep -m5 -E 'panicked|ERROR|SUMMARY' "$log"; fi
done
exit $status
