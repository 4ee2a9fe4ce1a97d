#!/usr/bin/env bash
# Coverage-guided fuzzing of every reader (cargo-fuzz on nightly Rust; offline once the
# crates are fetched): runs each target of fuzz/ for SECONDS (default 1800, i.e. 30
# minutes) under a 1 GB memory limit and a 10 s per-input limit, keeps what it finds in
# fuzz/corpus/<target> (then minimized with `cargo fuzz cmin`), copies every crash,
# leak, timeout or out-of-memory input into fuzz/regressions/<target>/ (replayed by
# `make test`), and prints one markdown row per target for docs/reliability.md.
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]     (JOBS=2 runs two targets at once)
set -uo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${1:-1800}
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && mapfile -t targets < <(cargo +nightly fuzz list)
jobs=${JOBS:-1}
logs=$(mktemp -d)
cargo +nightly fuzz build -O >/dev/null 2>&1 || { echo "cargo +nightly fuzz build failed" >&2; exit 1; }
run_one() {
  local t=$1
  mkdir -p "corpus/$t" "regressions/$t"
  local before
  before=$(find "corpus/$t" -type f | wc -l)
  /usr/bin/time -v cargo +nightly fuzz run -O "$t" "corpus/$t" -- \
    -max_total_time="$secs" -rss_limit_mb=1024 -timeout=10 -print_final_stats=1 \
    >"$logs/$t.log" 2>&1
  local code=$?
  local found=0
  for f in artifacts/"$t"/*; do
    [ -f "$f" ] || continue
    cp "$f" "regressions/$t/" && found=$((found + 1))
  done
  cargo +nightly fuzz cmin -O "$t" "corpus/$t" >/dev/null 2>&1
  local runs cov after rss
  runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$logs/$t.log" | grep -oE '[0-9]+$' | tail -1)
  cov=$(grep -oE 'cov: [0-9]+' "$logs/$t.log" | tail -1 | grep -oE '[0-9]+')
  rss=$(grep -oE 'stat::peak_rss_mb: *[0-9]+' "$logs/$t.log" | grep -oE '[0-9]+$' | tail -1)
  after=$(find "corpus/$t" -type f | wc -l)
  echo "| $t | ${secs} s | ${runs:-?} | ${cov:-?} | $before -> $after | ${rss:-?} MB | $found | exit $code |"
}
echo "| target | time | inputs run | coverage (edges) | corpus (before -> after cmin) | peak memory | crashes, hangs, OOMs | libFuzzer |"
echo "|---|---|---|---|---|---|---|---|"
export -f run_one
export secs logs
printf '%s\n' "${targets[@]}" | xargs -P "$jobs" -I{} bash -c 'run_one {}'
rm -rf "$logs"
