#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Runs the guest_memfd demo (demo/gmem_demo.c), building kvmlike first if the
# build tree lacks it.
#
#   scripts/demo.sh            under kvmlike: LD_PRELOAD=<interposer> gmem_demo,
#                              which prints kvmlike's refcount table after every
#                              step and fails if anything leaks
#   scripts/demo.sh --kernel   against the real /dev/kvm, no interposer
#
# Paths are taken from this script's location, so it works from any directory.
# The exit status is the demo's: 0 on success.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$root/build
demo=$build/demo/gmem_demo
peer=$build/demo/gmem_peer
preload=$build/frontends/preload/libkvmlike-preload.so

usage() {
	echo "usage: $0 [--kernel]" >&2
	exit 2
}

kernel=0
case $# in
0) ;;
1) [ "$1" = --kernel ] || usage; kernel=1 ;;
*) usage ;;
esac

# What this run needs from the build tree.
built() {
	[ -x "$demo" ] && [ -x "$peer" ] && { [ $kernel -eq 1 ] || [ -f "$preload" ]; }
}

build_tree() {
	if [ -f "$build/build.ninja" ]; then
		# A configured tree only needs an incremental build.
		ninja -C "$build"
	elif [ -f "$root/scripts/setup.sh" ]; then
		# Installs missing Debian packages, configures and builds.
		bash "$root/scripts/setup.sh"
	else
		if ! command -v cmake >/dev/null || ! command -v ninja >/dev/null; then
			echo "$0: cmake and ninja are needed (Debian: apt-get install cmake ninja-build g++ doctest-dev libboost-dev python3-kconfiglib)" >&2
			exit 1
		fi
		(cd "$root" && cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release && ninja -C build)
	fi
}

if ! built; then
	echo "demo.sh: building kvmlike in $build"
	build_tree
fi
if ! built; then
	echo "$0: the build did not produce $demo, $peer$([ $kernel -eq 1 ] || echo " and $preload")" >&2
	exit 1
fi

if [ $kernel -eq 1 ]; then
	exec "$demo" --kernel
fi
# Only the demo runs with the interposer; it removes LD_PRELOAD before it
# execs gmem_peer, which is the point of the peer.
export LD_PRELOAD=$preload
exec "$demo"
