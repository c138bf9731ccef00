#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Runs every selftest program of a build twice: against the real kernel
# (/dev/kvm as it is) and under the kvmlike interposer (LD_PRELOAD), printing
# TAP like the kernel's kselftest runner.sh:
#
#   TAP version 13
#   1..N
#   # selftests: kvm-<backend>: <name>
#   # <each line the program printed>
#   ok K selftests: kvm-<backend>: <name>                 (exit 0)
#   ok K selftests: kvm-<backend>: <name> # SKIP          (exit 4)
#   not ok K selftests: kvm-<backend>: <name> # TIMEOUT 120 seconds
#   not ok K selftests: kvm-<backend>: <name> # exit=<rc>
#
# then per-backend totals and one final line
#   selftests: N passed, M failed, K skipped
# The script exits non-zero if anything failed.
#
# Usage: scripts/run-selftests.sh [--kernel-only|--kvmlike-only] BUILD_DIR
#
# Environment:
#   KVMLIKE_ASAN_RUNTIME  path of the ASan runtime; prepended to LD_PRELOAD for
#                         the kvmlike backend (it must be the first library).
#   KSELFTEST_<NAME>_ARGS extra arguments for program <name> (upper case,
#                         non-alphanumerics as '_'), as in kselftest.
#   KSELFTEST_TIMEOUT     per-program timeout in seconds (default 120).
set -u

usage() {
	echo "usage: $0 [--kernel-only|--kvmlike-only] BUILD_DIR" >&2
	exit 2
}

want_kernel=1
want_kvmlike=1
build_dir=""
while [ $# -gt 0 ]; do
	case "$1" in
	--kernel-only) want_kvmlike=0 ;;
	--kvmlike-only) want_kernel=0 ;;
	-h | --help) usage ;;
	-*) echo "$0: unknown option $1" >&2; usage ;;
	*)
		[ -z "$build_dir" ] || usage
		build_dir=$1
		;;
	esac
	shift
done
[ -n "$build_dir" ] || usage
[ $want_kernel -eq 1 ] || [ $want_kvmlike -eq 1 ] || {
	echo "$0: --kernel-only and --kvmlike-only exclude each other" >&2
	exit 2
}

build_dir=$(cd "$build_dir" 2>/dev/null && pwd) || {
	echo "$0: no build directory $build_dir" >&2
	exit 2
}
test_dir=$build_dir/selftests
preload=$build_dir/frontends/preload/libkvmlike-preload.so
timeout_s=${KSELFTEST_TIMEOUT:-120}

# Every executable regular file in BUILD_DIR/selftests, sorted by name.
tests=()
if [ -d "$test_dir" ]; then
	while IFS= read -r -d '' f; do
		tests+=("$f")
	done < <(find "$test_dir" -maxdepth 1 -type f -perm -u+x -print0 | sort -z)
fi
if [ ${#tests[@]} -eq 0 ]; then
	echo "$0: no selftest programs in $test_dir (build first)" >&2
	exit 2
fi

backends=()
[ $want_kernel -eq 1 ] && backends+=(kernel)
[ $want_kvmlike -eq 1 ] && backends+=(kvmlike)

declare -A passed failed skipped
total_pass=0
total_fail=0
total_skip=0
num=0

# prefix every line with "# ", as kselftest's prefix.pl does
prefix() {
	sed -u -e 's/^/# /'
}

# extra arguments from KSELFTEST_<NAME>_ARGS
test_args() {
	local var
	var=KSELFTEST_$(printf '%s' "$1" | tr -c '[:alnum:]' '_' | tr '[:lower:]' '[:upper:]')_ARGS
	printf '%s' "${!var:-}"
}

count() { # backend result
	case "$2" in
	pass) passed[$1]=$((${passed[$1]:-0} + 1)); total_pass=$((total_pass + 1)) ;;
	fail) failed[$1]=$((${failed[$1]:-0} + 1)); total_fail=$((total_fail + 1)) ;;
	skip) skipped[$1]=$((${skipped[$1]:-0} + 1)); total_skip=$((total_skip + 1)) ;;
	esac
}

# run_one BACKEND PROGRAM [LD_PRELOAD value]
run_one() {
	local backend=$1 prog=$2 preload_list=${3:-}
	local name title rc args
	name=$(basename "$prog")
	title="selftests: kvm-$backend: $name"
	args=$(test_args "$name")
	num=$((num + 1))
	echo "# $title"
	if [ -n "$preload_list" ]; then
		# shellcheck disable=SC2086 # args are split like runner.sh does
		LD_PRELOAD=$preload_list timeout --foreground "$timeout_s" "$prog" $args \
			</dev/null 2>&1 | prefix
	else
		# shellcheck disable=SC2086
		timeout --foreground "$timeout_s" "$prog" $args </dev/null 2>&1 | prefix
	fi
	rc=${PIPESTATUS[0]}
	case $rc in
	0) echo "ok $num $title"; count "$backend" pass ;;
	4) echo "ok $num $title # SKIP"; count "$backend" skip ;;
	124) echo "not ok $num $title # TIMEOUT $timeout_s seconds"; count "$backend" fail ;;
	*) echo "not ok $num $title # exit=$rc"; count "$backend" fail ;;
	esac
}

summary() { # backend
	echo "# $1: ${passed[$1]:-0} passed, ${failed[$1]:-0} failed, ${skipped[$1]:-0} skipped"
}

echo "TAP version 13"
echo "1..$((${#tests[@]} * ${#backends[@]}))"

for backend in "${backends[@]}"; do
	passed[$backend]=0
	failed[$backend]=0
	skipped[$backend]=0
	if [ "$backend" = kernel ]; then
		# /dev/kvm missing: the programs SKIP by themselves (kvm_open).
		[ -e /dev/kvm ] || echo "# kernel: /dev/kvm not present, programs will skip"
		for prog in "${tests[@]}"; do
			run_one kernel "$prog"
		done
	elif [ ! -f "$preload" ]; then
		echo "# kvmlike: backend not built ($preload is missing)"
		for prog in "${tests[@]}"; do
			num=$((num + 1))
			echo "# selftests: kvm-kvmlike: $(basename "$prog")"
			echo "not ok $num selftests: kvm-kvmlike: $(basename "$prog") # kvmlike backend not built"
			count kvmlike fail
		done
	else
		list=$preload${LD_PRELOAD:+:$LD_PRELOAD}
		if [ -n "${KVMLIKE_ASAN_RUNTIME:-}" ]; then
			list=$KVMLIKE_ASAN_RUNTIME:$list
		fi
		for prog in "${tests[@]}"; do
			run_one kvmlike "$prog" "$list"
		done
	fi
	summary "$backend"
done

for backend in "${backends[@]}"; do
	summary "$backend"
done
echo "selftests: $total_pass passed, $total_fail failed, $total_skip skipped"
[ "$total_fail" -eq 0 ]
