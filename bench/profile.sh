#!/usr/bin/env bash
# Instruction and allocation counts of the admission path, per review: deterministic measures that,
# unlike times, do not move with whatever else runs on the machine.
#
#   bench/profile.sh [OUT_DIR]      (default: $CARGO_TARGET_DIR or target, then /bench/profile)
#
# Runs webhook/benches/review_loop.rs (N rounds of one fixture review through Admission::review on
# the 10-Credential estate) under `valgrind --tool=callgrind` and `--tool=dhat`, once with 1 round
# and once with 1 + N, so process start and the estate load cancel out; writes
# OUT_DIR/profile.jsonl (one line per review: instructions and allocations per review) and the
# callgrind files, whose `callgrind_annotate` output says where the instructions go.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=${1:-$TARGET/bench/profile}
N=${PROFILE_ROUNDS:-200}
command -v valgrind >/dev/null || { echo "bench/profile.sh: valgrind is needed (apt-get install valgrind)" >&2; exit 1; }
mkdir -p "$OUT"
# Debug info for the annotation; the same optimisation as the release build.
LOOP=$(CARGO_PROFILE_BENCH_DEBUG=line-tables-only cargo bench -p credential-webhook --bench review_loop --no-run 2>&1 |
  grep -o "[^ (]*/deps/review_loop-[0-9a-f]*" | tail -1)
: >"$OUT/profile.jsonl"
instructions() { # callgrind output file -> total instructions
  grep -m1 '^summary:' "$1" | awk '{print $2}'
}
allocations() { # dhat log -> total blocks
  grep -m1 'Total:' "$1" | sed -E 's/.* in ([0-9,]+) blocks.*/\1/' | tr -d ,
}
for review in credential-create-mutate credential-create credential-update providerinterface-update region-delete; do
  for rounds in 1 $((N + 1)); do
    valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.$review.$rounds" "$LOOP" "$review" "$rounds" \
      >/dev/null 2>"$OUT/callgrind.$review.$rounds.log"
    valgrind --tool=dhat --dhat-out-file=/dev/null "$LOOP" "$review" "$rounds" >/dev/null 2>"$OUT/dhat.$review.$rounds.log"
  done
  i1=$(instructions "$OUT/callgrind.$review.1")
  iN=$(instructions "$OUT/callgrind.$review.$((N + 1))")
  a1=$(allocations "$OUT/dhat.$review.1.log")
  aN=$(allocations "$OUT/dhat.$review.$((N + 1)).log")
  printf '{"review":"%s","rounds":%s,"instructions_per_review":%s,"allocations_per_review":%s}\n' "$review" "$N" \
    "$(((iN - i1) / N))" "$(awk "BEGIN {printf \"%.1f\", ($aN - $a1) / $N}")" | tee -a "$OUT/profile.jsonl"
done
