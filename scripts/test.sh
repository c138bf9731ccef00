#!/usr/bin/env bash
# Runs every test: the doctest suites (CTest) and every selftest against the
# real /dev/kvm and under the kvmlike interposer, in three builds:
#   release   - the default build (-Werror)
#   asan      - ASan+UBSan; the interposer runs with the ASan runtime preloaded
#   clang     - clang with -Wthread-safety -Werror, doctest suites only
#   tsan      - ThreadSanitizer: the unit suites and the stress test only
#               (kvmlike.stress, CTest label "stress", runs in every build's
#               ctest: KVMLIKE_STRESS_SECONDS, default 10)
# Prints per-part results and a closing "N passed, M failed" line.
#   scripts/test.sh [--quick]    (--quick: release build only)
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
quick=0
[ "${1:-}" = "--quick" ] && quick=1

"$root/scripts/setup.sh" "$root/build" -DKVMLIKE_WERROR=ON || exit 1

passed=0
failed=0
note() { printf '\n==== %s\n' "$*"; }
count() {  # name, exit status
  if [ "$2" -eq 0 ]; then passed=$((passed + 1)); echo "PASS: $1"
  else failed=$((failed + 1)); echo "FAIL: $1 (exit $2)"; fi
}

run_build() {  # label, build dir, [cmake args...] [-- ninja targets...]
  local label=$1 dir=$2
  shift 2
  local args=() targets=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do args+=("$1"); shift; done
  [ $# -gt 0 ] && shift && targets=("$@")
  if [ ! -f "$dir/build.ninja" ]; then
    cmake -S "$root" -B "$dir" -G Ninja -DKVMLIKE_WERROR=ON "${args[@]}" >/dev/null || return 1
  fi
  ninja -C "$dir" "${targets[@]}" >/dev/null ||
    { ninja -C "$dir" "${targets[@]}" 2>&1 | tail -40; return 1; }
}

run_suite() {  # label, build dir, [env for selftests]
  local label=$1 dir=$2
  note "$label: doctest suites"
  (cd "$dir" && ctest --output-on-failure -j2 2>&1 | tail -15)
  count "$label doctest suites" "${PIPESTATUS[0]}"
  note "$label: selftests (kernel and kvmlike)"
  "$root/scripts/run-selftests.sh" "$dir"
  count "$label selftests" $?
}

note "release build"
run_build release "$root/build" -DCMAKE_BUILD_TYPE=Release
count "release build" $?
run_suite release "$root/build"

if [ $quick -eq 0 ]; then
  note "asan+ubsan build"
  run_build asan "$root/build-asan" -DCMAKE_BUILD_TYPE=Debug -DKVMLIKE_SANITIZE=address \
    -DKVMLIKE_DEFCONFIG="$root/configs/debug_defconfig"
  status=$?
  count "asan build" $status
  if [ $status -eq 0 ]; then
    # The interposer is instrumented: the ASan runtime must be loaded first.
    export KVMLIKE_ASAN_RUNTIME
    KVMLIKE_ASAN_RUNTIME=$(gcc -print-file-name=libasan.so)
    export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
    export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
    run_suite asan "$root/build-asan"
    unset KVMLIKE_ASAN_RUNTIME
  fi

  note "Linux 7.2 config (configs/linux72_defconfig): unit suites"
  run_build linux72 "$root/build-linux72" -DCMAKE_BUILD_TYPE=Release \
    -DKVMLIKE_DEFCONFIG="$root/configs/linux72_defconfig"
  status=$?
  count "linux72 build" $status
  if [ $status -eq 0 ]; then
    (cd "$root/build-linux72" && ctest --output-on-failure -j2 -R '^(gmem|kvmlike)\.' 2>&1 | tail -5)
    count "linux72 doctest suites" "${PIPESTATUS[0]}"
  fi

  note "clang -Wthread-safety build"
  run_build clang "$root/build-clang" -DCMAKE_BUILD_TYPE=Debug \
    -DKVMLIKE_DEFCONFIG="$root/configs/debug_defconfig" \
    -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++
  status=$?
  count "clang thread-safety build" $status
  if [ $status -eq 0 ]; then
    (cd "$root/build-clang" && ctest --output-on-failure -j2 2>&1 | tail -5)
    count "clang doctest suites" "${PIPESTATUS[0]}"
  fi

  # Only what runs without the interposer: the unit suites and the stress
  # test (TSan reports make a test exit 66, so ctest counts them as failures).
  note "tsan build: stress test and unit suites"
  run_build tsan "$root/build-tsan" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKVMLIKE_SANITIZE=thread \
    -DKVMLIKE_DEFCONFIG="$root/configs/debug_defconfig" \
    -- base_tests gmem_tests mmu_tests x86_tests kvmlike_tests kvmlike_stress
  status=$?
  count "tsan build" $status
  if [ $status -eq 0 ]; then
    export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}
    (cd "$root/build-tsan" && ctest --output-on-failure -L stress 2>&1 | tail -15)
    count "tsan stress test" "${PIPESTATUS[0]}"
    (cd "$root/build-tsan" &&
      ctest --output-on-failure -j2 -LE stress -R '^(base|gmem|mmu|x86|kvmlike)\.' 2>&1 | tail -5)
    count "tsan doctest suites" "${PIPESTATUS[0]}"
    unset TSAN_OPTIONS
  fi
fi

echo
echo "test parts: $passed passed, $failed failed"
[ $failed -eq 0 ]
