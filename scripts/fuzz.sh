#!/usr/bin/env bash
# Coverage-guided fuzzing of every reader (cargo-fuzz on nightly Rust; offline once the
# crates are fetched): runs each target of fuzz/ for SECONDS (default 1800, i.e. 30
# minutes) under a 1 GB memory limit and a 10 s per-input limit, starting from the
# committed corpus fuzz/corpus/<target>.zip and the seeds of tests/fuzz.rs (unpacked into
# fuzz/work/<target>/), minimizes what it found with `cargo fuzz cmin` and packs it back
# into the zip, copies every crash, leak, timeout or out-of-memory input into
# fuzz/regressions/<target>/ (both replayed by `make test`), and prints one markdown row
# per target for docs/reliability.md.
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
# The seeds (valid inputs and the nested shapes that once crashed a reader) into fuzz/work.
(cd .. && FLICKERTAG_WRITE_FUZZ_SEEDS=1 cargo test --release --quiet -p flickertag-cli --test fuzz committed >/dev/null 2>&1) \
  || { echo "writing the seeds failed" >&2; exit 1; }
pack() { # pack DIR ZIP: every file of DIR into ZIP (sorted, deflated, fixed timestamps)
  python3 - "$1" "$2" <<'PY'
import os, sys, zipfile
src, dst = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(dst + ".tmp", "w", zipfile.ZIP_DEFLATED) as z:
    for n in sorted(os.listdir(src)):
        info = zipfile.ZipInfo(n, date_time=(2026, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        z.writestr(info, open(os.path.join(src, n), "rb").read())
os.replace(dst + ".tmp", dst)
PY
}
unpack() { # unpack ZIP DIR
  [ -f "$1" ] && python3 -c "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])" "$1" "$2"
  return 0
}
export -f pack unpack
run_one() {
  local t=$1
  mkdir -p "work/$t" "regressions/$t" corpus
  unpack "corpus/$t.zip" "work/$t"
  local before
  before=$(find "work/$t" -type f | wc -l)
  cargo +nightly fuzz run -O "$t" "work/$t" -- \
    -max_total_time="$secs" -rss_limit_mb=1024 -timeout=10 -print_final_stats=1 \
    >"$logs/$t.log" 2>&1
  local code=$?
  local found=0
  for f in artifacts/"$t"/*; do
    [ -f "$f" ] || continue
    cp "$f" "regressions/$t/" && found=$((found + 1))
  done
  cargo +nightly fuzz cmin -O "$t" "work/$t" >/dev/null 2>&1
  pack "work/$t" "corpus/$t.zip"
  local runs cov after rss
  runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$logs/$t.log" | grep -oE '[0-9]+$' | tail -1)
  cov=$(grep -oE 'cov: [0-9]+' "$logs/$t.log" | tail -1 | grep -oE '[0-9]+')
  rss=$(grep -oE 'stat::peak_rss_mb: *[0-9]+' "$logs/$t.log" | grep -oE '[0-9]+$' | tail -1)
  after=$(find "work/$t" -type f | wc -l)
  echo "| $t | ${secs} s | ${runs:-?} | ${cov:-?} | $before -> $after | ${rss:-?} MB | $found | exit $code |"
}
echo "| target | time | inputs run | coverage (edges) | corpus (before -> after cmin) | peak memory | crashes, hangs, OOMs | libFuzzer |"
echo "|---|---|---|---|---|---|---|---|"
export -f run_one
export secs logs
printf '%s\n' "${targets[@]}" | xargs -P "$jobs" -I{} bash -c 'run_one {}'
rm -rf "$logs"
