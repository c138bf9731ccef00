#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Compares kvmlike with the running kernel's KVM, in two sections:
#
#   gmem   build/bench/gmem_bench: guest_memfd file and memslot work
#   guest  build/bench/guest_fault_bench: a vCPU faults in 1 GiB of
#          guest_memfd-backed memory (guest_run: KVM_RUN only; guest_total:
#          KVM_CREATE_VM to the guest's final exit), plus host references
#
# Each section runs its program natively and under the interposer, alternately
# (kernel, kvmlike, kernel, kvmlike, ...), so that both backends see the same
# machine state; host memory effects drift over minutes, and interleaving keeps
# that drift out of the ratios. Then it prints one table row per metric:
#
#   kernel / kvmlike  the median of the per-run medians of that backend
#   kvmlike/kernel    the plain ratio; "better" says which way is good
#   kvmlike is        how kvmlike compares, as a factor >= 1 better or worse
#   target            PASS/MISS where the project has one:
#     gmem:  populate (after the first), flags 0   >= kernel rate
#            punch, flags 0                       >= kernel rate
#            1 slot create+delete, flags 0         >= 10x kernel pairs/s
#            2 MiB slots, create all, flags 0      <= kernel time / 10
#     guest: private (pool-backed), fresh          >= 3x kernel gmem-shared, fresh
#            gmem-shared (memfd-backed), fresh     >= kernel gmem-shared, fresh
#            private with 2 MiB leaves             >= 10x kvmlike private, fresh
#            (each on guest_run and on guest_total)
#
# gmem: MMAP|INIT_SHARED rows carry no target; memset is the physical limit.
# guest: the payloads differ by necessity (the kernel here runs only 64-bit
# ring-3 code natively, kvmlike only real and protected mode); the kernel has
# no private memory and no pre-fault here, which its NOTEs say. kvmlike runs
# start once the pool's scrubber has cleared the frames the previous run
# freed (pool_scrub_wait, kvmlike only). host_stores[+N] is a host loop
# storing one byte per resident 4 KiB page with N cache-hot stores after each:
# the ceiling for any engine that spends N host stores per guest iteration.
#
# Usage: scripts/bench.sh [-n ROUNDS] [-o OUTDIR] [--guest-only | --gmem-only]
#                         [-g GUEST_ARGS] [BUILD_DIR] [-- GMEM_BENCH_ARGS...]
#        scripts/bench.sh -R OUTDIR      (the tables again, from an earlier run)
#   ROUNDS       runs per backend and section, at least 2 (default 2)
#   OUTDIR       where the raw outputs go (default: a new directory under /tmp)
#   --guest-only / --gmem-only   run one section only
#   GUEST_ARGS   arguments for guest_fault_bench, one word list, e.g. "-n 256 -r 2"
#   BUILD_DIR    default: build/ of this repository
#   e.g.  scripts/bench.sh build -- -s 256 -r 3
#         scripts/bench.sh --guest-only -g "-n 512" build
#
# Environment: BENCH_TIMEOUT  seconds per run (default 900).
#
# Exit status: 0 when every run succeeded (whatever the targets say: this is a
# report, not a test), 1 when a run failed, 2 on bad usage.
set -u

repo=$(cd "$(dirname "$0")/.." && pwd)
export BENCH_SCRIPTS="$repo/scripts"  # the report helpers (bench_results.py)

usage() {
	sed -n '/^# Usage:/,/^# Environment/p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

rounds=2
outdir=""
build_dir=""
report_only=""
sections="gmem guest"
guest_args=()
while [ $# -gt 0 ]; do
	case "$1" in
	-n) [ $# -ge 2 ] || usage; rounds=$2; shift ;;
	-o) [ $# -ge 2 ] || usage; outdir=$2; shift ;;
	-R) [ $# -ge 2 ] || usage; report_only=$2; shift ;;
	-g) [ $# -ge 2 ] || usage; read -r -a guest_args <<<"$2"; shift ;;
	--guest-only) sections="guest" ;;
	--gmem-only) sections="gmem" ;;
	-h | --help) usage ;;
	--) shift; break ;;
	-*) echo "$0: unknown option $1" >&2; usage ;;
	*) [ -z "$build_dir" ] || usage; build_dir=$1 ;;
	esac
	shift
done
bench_args=("$@")
case "$rounds" in '' | *[!0-9]*) usage ;; esac
# One run per backend cannot separate kvmlike from a momentary host state.
[ "$rounds" -ge 2 ] || { echo "$0: at least 2 rounds" >&2; exit 2; }

# report OUTDIR ROUNDS: the gmem section's table, from OUTDIR/{kernel,kvmlike}.N.out.
report() {
/usr/bin/python3 - "$1" "$2" <<'PY'
import os
import sys

sys.path.insert(0, os.environ["BENCH_SCRIPTS"])

outdir, rounds = sys.argv[1], int(sys.argv[2])
RATE_UNITS = {"GiB/s", "GB/s", "pairs/s"}

# Targets: metric -> (minimum of kvmlike's advantage, description). The
# advantage is kvmlike/kernel for rates and kernel/kvmlike for times, so >= 1
# always means "kvmlike at least as good".
TARGETS = {
    "populate_new_file[flags=0]": (1.0, ">= kernel"),
    "populate_after_punch[flags=0]": (1.0, ">= kernel"),
    "punch[flags=0]": (1.0, ">= kernel"),
    "slot_create+delete[flags=0,uaddr=anon]": (10.0, ">= 10x kernel"),
    "slots2m_create_all[flags=0,uaddr=anon]": (10.0, "<= kernel/10"),
}


from bench_results import (BACKENDS, combined, fmt, last_notes, load, medians_text,
                           metric_order, print_table, verdict)

runs = load(outdir, "", rounds)
order = metric_order(runs)

rows = []
for m in order:
    unit = next(res[m][0] for b in BACKENDS for res, _ in runs[b] if m in res)
    rate = unit in RATE_UNITS
    k, kmeds = combined(runs, "kernel", m)
    v, vmeds = combined(runs, "kvmlike", m)
    ratio = v / k if k and v is not None else None
    adv = None
    if ratio:
        adv = ratio if rate else 1.0 / ratio
    target = "-"
    if m in TARGETS:
        need, text = TARGETS[m]
        if adv is None:
            target = f"n/a ({text})"
        else:
            target = f"{'PASS' if adv >= need else 'MISS'} ({text})"
    rows.append((m, unit, "higher" if rate else "lower", fmt(k), fmt(v),
                 f"{ratio:.3f}" if ratio else "-", verdict(adv), target,
                 medians_text(kmeds, vmeds)))

print(f"kernel vs kvmlike, {rounds} interleaved runs each; "
      "each value is the median of the per-run medians")
print_table(("metric", "unit", "better", "kernel", "kvmlike", "kvmlike/kernel",
             "kvmlike is", "target", "per-run medians (kernel | kvmlike)"), rows, {3, 4, 5})

print()
mem = [m for m in order if m.startswith("memset")]
for m in mem:
    k, _ = combined(runs, "kernel", m)
    v, _ = combined(runs, "kvmlike", m)
    if k:
        print(f"physical limit: {m} {fmt(k)} GB/s in kernel runs, "
              f"{fmt(v)} GB/s in kvmlike runs (= {k * 1e9 / 2**30:.1f} GiB/s), "
              "the store bandwidth of one core")

# What the kvmlike runs said about memory, from the last one that worked.
for n in last_notes(runs, "kvmlike"):
    if n.startswith(("pool|", "rss|", "objects|")) or (
            n.startswith("backed|") and ": kernel:" not in n):
        print("kvmlike: " + n.replace("|", ": ", 1))
for b in BACKENDS:
    for i, (res, _) in enumerate(runs[b], 1):
        if not res:
            print(f"{b} run {i}: failed or no results, left out")
PY
}

# report_guest OUTDIR ROUNDS: the guest section's table, from
# OUTDIR/guest.{kernel,kvmlike}.N.out. Its targets compare a kvmlike row with
# another row (a kernel one or kvmlike's own), so the target column names both.
report_guest() {
/usr/bin/python3 - "$1" "$2" <<'PY'
import os
import sys

sys.path.insert(0, os.environ["BENCH_SCRIPTS"])

outdir, rounds = sys.argv[1], int(sys.argv[2])

# kvmlike metric -> (basis backend, basis metric, minimum factor, text). Every
# metric of this program is a rate (pages/s): higher is better.
TARGETS = {}
for kind in ("guest_run", "guest_total"):
    TARGETS[f"{kind}[private,fresh]"] = (
        "kernel", f"{kind}[gmem-shared,fresh]", 3.0, ">= 3x kernel gmem-shared,fresh")
    TARGETS[f"{kind}[gmem-shared,fresh]"] = (
        "kernel", f"{kind}[gmem-shared,fresh]", 1.0, ">= kernel")
    TARGETS[f"{kind}[private,2m-leaves]"] = (
        "kvmlike", f"{kind}[private,fresh]", 10.0, ">= 10x kvmlike private,fresh")


from bench_results import (BACKENDS, combined, fmt, last_notes, load, medians_text,
                           metric_order, print_table, verdict)

runs = load(outdir, "guest.", rounds)
order = metric_order(runs)
# a target whose metric no run printed still gets its row (e.g. 2 MiB leaves)
for m in TARGETS:
    if m not in order:
        order.append(m)

rows = []
for m in order:
    units = [res[m][0] for b in BACKENDS for res, _ in runs[b] if m in res]
    unit = units[0] if units else "pages/s"
    k, kmeds = combined(runs, "kernel", m)
    v, vmeds = combined(runs, "kvmlike", m)
    ratio = v / k if k and v is not None else None
    target = "-"
    if m in TARGETS:
        basis_b, basis_m, need, text = TARGETS[m]
        basis, _ = combined(runs, basis_b, basis_m)
        if v is None:
            target = f"n/a, no figure ({text})"
        elif not basis:
            target = f"n/a, no basis ({text})"
        else:
            f = v / basis
            target = f"{'PASS' if f >= need else 'MISS'} {f:.2f}x ({text})"
    rows.append((m, unit, fmt(k), fmt(v), f"{ratio:.3f}" if ratio else "-", verdict(ratio),
                 target, medians_text(kmeds, vmeds)))

print(f"guest fault-in, kernel vs kvmlike, {rounds} interleaved runs each; each value "
      "is the median of the per-run medians; all rates: higher is better")
print_table(("metric", "unit", "kernel", "kvmlike", "kvmlike/kernel", "kvmlike is",
             "target (kvmlike / basis)", "per-run medians (kernel | kvmlike)"), rows, {2, 3, 4})
print()

for b in BACKENDS:
    for n in last_notes(runs, b):
        topic = n.split("|", 1)[0]
        if topic == "levels" and not n.startswith(("levels|private,fresh:",
                                                    "levels|private,2m-leaves:")):
            continue
        if topic in ("config", "payload", "skip", "prefault", "2m", "pool", "objects", "scrub",
                     "levels") or (b == "kvmlike" and topic == "rss"):
            print(f"{b}: " + n.replace("|", ": ", 1))
# every failed check, also of runs left out of the table
for b in BACKENDS:
    for i, (res, _) in enumerate(runs[b], 1):
        try:
            with open(f"{outdir}/guest.{b}.{i}.out") as f:
                for raw in f:
                    if raw.startswith("NOTE|") and "|FAIL: " in raw:
                        print(f"{b} run {i}: " + raw[5:].rstrip("\n").replace("|", ": ", 1))
        except OSError:
            pass
        if not res:
            print(f"{b} run {i}: failed or no results, left out")
PY
}

failed=0
if [ -n "$report_only" ]; then
	shown=0
	rounds=$(find "$report_only" -maxdepth 1 -name 'kernel.*.out' | wc -l)
	if [ "$rounds" -gt 0 ]; then
		report "$report_only" "$rounds" || exit 1
		shown=1
	fi
	rounds=$(find "$report_only" -maxdepth 1 -name 'guest.kernel.*.out' | wc -l)
	if [ "$rounds" -gt 0 ]; then
		[ "$shown" -eq 0 ] || echo
		report_guest "$report_only" "$rounds" || exit 1
		shown=1
	fi
	[ "$shown" -eq 1 ] || { echo "$0: no runs in $report_only" >&2; exit 2; }
	exit 0
fi

want_dir=${build_dir:-$repo/build}
build_dir=$(cd "$want_dir" 2>/dev/null && pwd) ||
	{ echo "$0: no build directory $want_dir" >&2; exit 2; }
gmem_bench="$build_dir/bench/gmem_bench"
guest_bench="$build_dir/bench/guest_fault_bench"
preload="$build_dir/frontends/preload/libkvmlike-preload.so"
need=("$preload")
case " $sections " in *" gmem "*) need+=("$gmem_bench") ;; esac
case " $sections " in *" guest "*) need+=("$guest_bench") ;; esac
for f in "${need[@]}"; do
	[ -e "$f" ] || { echo "$0: missing $f (build first)" >&2; exit 2; }
done
if [ -z "$outdir" ]; then
	outdir=$(mktemp -d /tmp/kvmlike-bench.XXXXXX) || exit 2
fi
mkdir -p "$outdir" || exit 2
timeout_s=${BENCH_TIMEOUT:-900}

# run_one PREFIX BACKEND ROUND PROGRAM ARGS...: one run of PROGRAM; output in
# $outdir/PREFIXBACKEND.ROUND.{out,err} (PREFIX "" for gmem, "guest." for guest).
run_one() {
	local prefix=$1 backend=$2 round=$3
	shift 3
	local out="$outdir/$prefix$backend.$round.out" err="$outdir/$prefix$backend.$round.err"
	local start rc
	start=$EPOCHREALTIME
	if [ "$backend" = kvmlike ]; then
		LD_PRELOAD="$preload" timeout "$timeout_s" "$@" >"$out" 2>"$err"
	else
		# a stray LD_PRELOAD from the caller must not turn this into a kvmlike run
		env -u LD_PRELOAD timeout "$timeout_s" "$@" >"$out" 2>"$err"
	fi
	rc=$?
	printf 'round %d/%d %-8s %6.1f s  ' "$round" "$rounds" "$backend" \
		"$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { print b - a }')"
	# The program names the backend it found; a preload that did not take
	# would otherwise pass kernel numbers off as kvmlike's.
	if ! grep -qx "NOTE|backend|$backend" "$out"; then
		echo "FAILED: the run did not report backend $backend (exit $rc)"
		[ "$rc" -ne 0 ] || rc=1
	elif [ "$rc" -eq 124 ]; then
		echo "FAILED: timeout after $timeout_s s"
	elif [ "$rc" -ne 0 ]; then
		echo "FAILED: exit $rc"
	else
		echo "ok"
	fi
	if [ "$rc" -ne 0 ]; then
		failed=1
		# e.g. a failed backing or leak check: its numbers must not reach the table
		echo "$rc" >"$outdir/$prefix$backend.$round.failed"
		sed 's/^/    | /' "$err" | tail -n 5
	fi
}

echo "interposer: $preload"
echo "raw output: $outdir"
case " $sections " in *" gmem "*)
	echo
	echo "== gmem: $gmem_bench ${bench_args[*]}"
	for round in $(seq 1 "$rounds"); do
		run_one "" kernel "$round" "$gmem_bench" "${bench_args[@]}"
		run_one "" kvmlike "$round" "$gmem_bench" "${bench_args[@]}"
	done
	echo
	report "$outdir" "$rounds" || failed=1
	;;
esac
case " $sections " in *" guest "*)
	echo
	echo "== guest: $guest_bench ${guest_args[*]}"
	for round in $(seq 1 "$rounds"); do
		run_one guest. kernel "$round" "$guest_bench" "${guest_args[@]}"
		run_one guest. kvmlike "$round" "$guest_bench" "${guest_args[@]}"
	done
	echo
	report_guest "$outdir" "$rounds" || failed=1
	;;
esac
exit "$failed"
