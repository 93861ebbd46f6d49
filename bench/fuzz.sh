#!/usr/bin/env bash
# The fuzz targets run longer than CI does: FUZZ_SECS (default 600) each, results appended to
# bench/out/fuzz.txt. See fuzz/README.md; FUZZ_STABLE=1 uses the stable toolchain with
# RUSTC_BOOTSTRAP=1 when no nightly is installed.
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench/out
{
    echo "== $(date -u +%Y-%m-%dT%H:%M:%SZ), ${FUZZ_SECS:-600} s per target"
    fuzz/run.sh "${FUZZ_SECS:-600}" "$@"
} | tee -a bench/out/fuzz.txt
