#!/usr/bin/env bash
# Reads `cargo tree -p flickertag -e normal --prefix none` on stdin and fails if the
# library's default dependency tree holds a CLI, plotting or HTTP crate.
set -euo pipefail
bad=$(grep -E '^(clap|clap_complete|indicatif|plotters|ureq|anyhow|pyo3) ' || true)
if [ -n "$bad" ]; then
  echo "the flickertag library must not depend on:" >&2
  echo "$bad" | sort -u >&2
  exit 1
fi
echo "library dependency tree: no clap, indicatif, plotters, ureq, anyhow or pyo3"
