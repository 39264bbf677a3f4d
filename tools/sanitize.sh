#!/usr/bin/env bash
# Build rankfold with sanitizers into a venv and build folder of their own and
# run tests under them.
#
#   tools/sanitize.sh address [PYTEST ARGS...]   AddressSanitizer + UndefinedBehaviorSanitizer
#                                                (default: the whole test suite)
#   tools/sanitize.sh thread  [PYTEST ARGS...]   ThreadSanitizer (default: the concurrency tests,
#                                                tests/test_concurrency.py and tests/test_ann_threads.py)
#                                                (test paths in the arguments replace the default)
#   tools/sanitize.sh MODE --build-only          build and install, run nothing
#
# Environment: PYTHON (interpreter for the venv, default python3),
# SANITIZE_VENV (default .venv-sanitize-MODE), SANITIZE_REBUILD=0 to skip the
# build when the venv already holds one. Any report fails the run: UB and ASan
# errors stop the process, TSan makes it exit with status 66.
#
# Python is not instrumented, so the sanitizer runtime is preloaded
# (LD_PRELOAD); leak detection is off (CPython keeps its objects until exit by
# design). docs/sanitizers.md explains the suppressions and the TSan setup.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

MODE=${1:-}
shift || true
case "$MODE" in
  address) SANITIZERS="address,undefined,float-cast-overflow"; RUNTIME=libasan.so ;;
  thread) SANITIZERS="thread"; RUNTIME=libtsan.so ;;
  *) echo "usage: $0 address|thread [--build-only | PYTEST ARGS...]" >&2; exit 2 ;;
esac

VENV=${SANITIZE_VENV:-$ROOT/.venv-sanitize-$MODE}
PY="$VENV/bin/python"
SUPP="$ROOT/tools/sanitizers"

if [ ! -x "$PY" ]; then
  echo "== venv $VENV"
  "${PYTHON:-python3}" -m venv "$VENV"
  "$PY" -m pip install --quiet --upgrade pip
  # Build requirements in the venv itself: the build runs without isolation so
  # that the build folder stays valid from one run to the next (incremental).
  "$PY" -m pip install --quiet "scikit-build-core>=0.10" "pybind11>=2.12" "cmeel-eigen>=3.4" atheris
  SANITIZE_REBUILD=1
fi

if [ "${SANITIZE_REBUILD:-1}" != 0 ]; then
  echo "== build with -fsanitize=$SANITIZERS (build/sanitize-$MODE)"
  start=$(date +%s)
  RANKFOLD_SANITIZE="$SANITIZERS" SKBUILD_BUILD_DIR="build/sanitize-$MODE" \
    CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
    "$PY" -m pip install --quiet --no-build-isolation ".[test]"
  echo "   built in $(( $(date +%s) - start )) s"
fi

if [ "${1:-}" = "--build-only" ]; then
  exit 0
fi

# The sanitizer runtime must come first in the process; libstdc++ is preloaded
# with it so that the runtime's C++ exception interceptors find the real ones.
real() { readlink -f "$(${CXX:-g++} -print-file-name="$1")"; }
export LD_PRELOAD="$(real "$RUNTIME") $(real libstdc++.so)"
# Every allocation through malloc, so ASan sees the bounds of small Python
# objects (bytes handed to the index loaders) as well.
export PYTHONMALLOC=malloc
# Reports go to files (one per process, subprocesses included): a test that
# captures stderr or a process that dies cannot hide them.
REPORTS="$ROOT/build/sanitize-$MODE/reports"
rm -rf "$REPORTS"
mkdir -p "$REPORTS"
export ASAN_OPTIONS="log_path=$REPORTS/asan:detect_leaks=0:halt_on_error=1:abort_on_error=0:strict_init_order=1:detect_stack_use_after_return=0:exitcode=86${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="log_path=$REPORTS/ubsan:print_stacktrace=1:halt_on_error=1:exitcode=87:suppressions=$SUPP/ubsan.supp${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export TSAN_OPTIONS="log_path=$REPORTS/tsan:suppressions=$SUPP/tsan.supp:second_deadlock_stack=1:history_size=4:exitcode=66${TSAN_OPTIONS:+:$TSAN_OPTIONS}"

# Without test paths (options only, or nothing): the default selection.
has_paths=0
for a in "$@"; do case "$a" in -*) ;; *) has_paths=1 ;; esac; done
if [ $has_paths = 0 ]; then
  [ $# -eq 0 ] && set -- -q
  if [ "$MODE" = thread ]; then
    # Not test_fork.py: TSan cannot follow a fork of a process with threads
    # ("starting new threads after multi-threaded fork is not supported").
    set -- "$@" tests/test_concurrency.py tests/test_ann_threads.py "tests/test_hnsw.py::test_concurrent_searches_and_adds"
  fi
fi

echo "== pytest $* (-fsanitize=$SANITIZERS)"
cd "$ROOT"
run() {
  if [ "$MODE" = thread ]; then
    # TSan maps its shadow memory at fixed addresses, which a kernel with
    # high mmap randomisation can break; run without address randomisation.
    setarch "$(uname -m)" -R "$@"
  else
    "$@"
  fi
}
start=$(date +%s)
status=0
run "$PY" -m pytest -p no:cacheprovider "$@" || status=$?
echo "== pytest under -fsanitize=$SANITIZERS: exit $status after $(( $(date +%s) - start )) s"
if compgen -G "$REPORTS/*" > /dev/null; then
  for f in "$REPORTS"/*; do
    echo "== sanitizer report $f"
    cat "$f"
  done
  echo "== $(ls "$REPORTS" | wc -l) sanitizer report(s): failing" >&2
  [ "$status" = 0 ] && status=1
else
  echo "== no sanitizer report"
fi
exit $status
