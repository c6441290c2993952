#!/usr/bin/env bash
# The GPU check of @savepoint/backend-cuda, as one script that finishes in under ten minutes:
#   1. builds @savepoint/core and this package, and the addon against the CUDA toolkit (strict);
#   2. runs this package's tests with SAVEPOINT_REQUIRE_GPU=1, so the backend conformance suite
#      and the GPU tests must run on the device (a skip there is a failure);
#   3. benchmarks saving and loading 4 GiB of device tensors against raw pinned cudaMemcpy and raw
#      disk bandwidth, and checks the targets (staging >= 80% of raw D2H; save >= 85% of the
#      slower of raw D2H and raw disk write).
#
# usage: packages/backend-cuda/scripts/gpu-check.sh [--dry-run] [--bytes SIZE] [--dir DIR]
#                                                   [--json FILE] [--skip-build] [--skip-tests]
#                                                   [--skip-bench] [--no-targets] [--help]
#   --dry-run   everything that needs no GPU: the builds, the test suite without requiring a GPU
#               (GPU tests skip), and the benchmark's argument, build and disk checks
#   --bytes     benchmark size (default 4GiB); --dir where its files go (default: a temp folder)
#   --json      also write the benchmark's results there (e.g. "$OUT/gpu-bench.json")
# Environment: CUDA_HOME (default /usr/local/cuda). Exit status 0 only if every step passed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
pkg="$(cd "$here/.." && pwd)"
repo="$(cd "$pkg/../.." && pwd)"

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; }

dry_run=0 skip_build=0 skip_tests=0 skip_bench=0
bench_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) dry_run=1 ;;
    --skip-build) skip_build=1 ;;
    --skip-tests) skip_tests=1 ;;
    --skip-bench) skip_bench=1 ;;
    --no-targets) bench_args+=(--no-targets) ;;
    --bytes|--dir|--json)
      [ $# -ge 2 ] || { echo "gpu-check: $1 needs a value" >&2; exit 2; }
      bench_args+=("$1" "$2"); shift ;;
    --bytes=*|--dir=*|--json=*) bench_args+=("$1") ;;
    -h|--help) usage; exit 0 ;;
    *) echo "gpu-check: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[ "$dry_run" = 1 ] && bench_args+=(--dry-run)

started=$SECONDS
deadline=$((SECONDS + 570)) # the whole check stays under ten minutes
step() { printf '\n== %s (t=%ss)\n' "$1" "$((SECONDS - started))"; }
# Runs a step for at most $1 seconds, and never past the overall deadline.
limit() {
  local s=$1 left=$((deadline - SECONDS))
  shift
  [ "$left" -lt "$s" ] && s=$left
  [ "$s" -gt 0 ] || { echo "gpu-check: out of time before: $*" >&2; return 124; }
  timeout --foreground "$s" "$@"
}

cd "$repo"
step "environment"
command -v node >/dev/null || { echo "gpu-check: node (>= 20.15) is not on PATH; install or carry Node.js" >&2; exit 1; }
echo "node $(node --version), npm $(npm --version 2>/dev/null || echo missing), CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,driver_version,memory.total,pcie.link.gen.current,pcie.link.width.current --format=csv,noheader || true
else
  echo "nvidia-smi: not found"
fi
if [ ! -d node_modules/node-addon-api ] || [ ! -d node_modules/vitest ]; then
  echo "node_modules is incomplete; installing (npm ci) ..."
  limit 240 npm ci --no-audit --no-fund
fi

if [ "$skip_build" = 0 ]; then
  step "build @savepoint/core, @savepoint/backend-cuda and the addon"
  limit 240 npm run build -w @savepoint/core
  (cd "$pkg" && limit 120 npx tsup)
  if [ "$dry_run" = 1 ]; then
    (cd "$pkg" && limit 180 node scripts/build-addon.mjs)
  else
    (cd "$pkg" && limit 180 node scripts/build-addon.mjs --force)
  fi
fi

if [ "$skip_tests" = 0 ]; then
  if [ "$dry_run" = 1 ]; then
    step "tests (dry run: GPU tests may skip)"
    limit 240 npx vitest run packages/backend-cuda/test
  else
    step "tests on the GPU, backend conformance included (SAVEPOINT_REQUIRE_GPU=1)"
    SAVEPOINT_REQUIRE_GPU=1 limit 240 npx vitest run packages/backend-cuda/test
  fi
fi

if [ "$skip_bench" = 0 ]; then
  step "benchmark"
  limit 300 node "$pkg/scripts/gpu-bench.mjs" "${bench_args[@]}"
fi

step "gpu-check passed$([ "$dry_run" = 1 ] && echo ' (dry run: nothing ran on a GPU)')"
