#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# The main job, after an incremental build of what it runs (setup.sh when the
# build tree is not configured yet: it installs what is missing on Debian 12):
#
#   1. guest_boot (demo/guest_boot.c): boots a guest firmware from the reset
#      vector on guest_memfd-backed memory (SW_PROTECTED VM with private
#      memory and guest-requested conversions when the backend offers it),
#      shows live progress from the binary stats, checks the guest's checksum
#      and, under kvmlike, that nothing leaked;
#   2. gmem_demo (demo/gmem_demo.c): the guest_memfd walk-through, with
#      kvmlike's refcount table after every step.
#
#   scripts/demo.sh            both under kvmlike (LD_PRELOAD=<interposer>)
#   scripts/demo.sh --kernel   both against the real /dev/kvm, no interposer
#   scripts/demo.sh [--kernel] -- ARGS...
#                              passes ARGS to guest_boot (e.g. -- -m 256 -c 1)
#
# Paths are taken from this script's location, so it works from any directory.
# The exit status is 0 when both programs succeed.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$root/build
boot=$build/demo/guest_boot
demo=$build/demo/gmem_demo
peer=$build/demo/gmem_peer
preload=$build/frontends/preload/libkvmlike-preload.so

usage() {
	echo "usage: $0 [--kernel] [-- guest_boot arguments]" >&2
	exit 2
}

kernel=0
boot_args=()
while [ $# -gt 0 ]; do
	case $1 in
	--kernel) kernel=1 ;;
	--) shift; boot_args=("$@"); break ;;
	*) usage ;;
	esac
	shift
done

# What this run needs from the build tree.
targets=(guest_boot gmem_demo gmem_peer kvmlike-preload)
built() {
	[ -x "$boot" ] && [ -x "$demo" ] && [ -x "$peer" ] && { [ $kernel -eq 1 ] || [ -f "$preload" ]; }
}

if [ -f "$build/build.ninja" ]; then
	# A configured tree gets an incremental build of what the demo runs, so
	# the programs are never older than their sources; ninja's output shows
	# only when it has something to build (pipefail keeps its status).
	if ! ninja -C "$build" "${targets[@]}" 2>&1 |
		{ grep -v -e '^ninja: no work to do' -e '^ninja: Entering directory' \
			-e 'Re-checking globbed directories' || true; }; then
		echo "$0: building ${targets[*]} in $build failed" >&2
		exit 1
	fi
elif [ -f "$root/scripts/setup.sh" ]; then
	# Installs missing Debian packages, configures and builds.
	echo "demo.sh: building kvmlike in $build"
	bash "$root/scripts/setup.sh"
else
	if ! command -v cmake >/dev/null || ! command -v ninja >/dev/null; then
		echo "$0: cmake and ninja are needed (Debian: apt-get install cmake ninja-build g++ doctest-dev libboost-dev python3-kconfiglib)" >&2
		exit 1
	fi
	(cd "$root" && cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release && ninja -C build)
fi
if ! built; then
	echo "$0: the build did not produce $boot, $demo, $peer$([ $kernel -eq 1 ] || echo " and $preload")" >&2
	exit 1
fi

if [ $kernel -eq 1 ]; then
	backend="the real /dev/kvm"
	run() { "$@"; }
	kernel_arg=(--kernel)
else
	backend="kvmlike"
	# Only the programs run with the interposer; gmem_demo removes LD_PRELOAD
	# before it execs gmem_peer, which is the point of the peer.
	run() { LD_PRELOAD=$preload "$@"; }
	kernel_arg=()
fi

status=0
echo "=== demo.sh 1/2: guest_boot on $backend ==="
run "$boot" "${kernel_arg[@]}" "${boot_args[@]}" || status=1
echo
echo "=== demo.sh 2/2: gmem_demo on $backend ==="
run "$demo" "${kernel_arg[@]}" || status=1
echo
if [ $status -eq 0 ]; then
	echo "demo.sh: OK (guest_boot and gmem_demo on $backend)"
else
	echo "demo.sh: FAILED (see above)" >&2
fi
exit $status
