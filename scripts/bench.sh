#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Compares kvmlike with the running kernel's KVM on guest_memfd work: runs
# build/bench/gmem_bench natively and under the interposer, alternately
# (kernel, kvmlike, kernel, kvmlike, ...), so that both backends see the same
# machine state; host memory effects drift over minutes, and interleaving keeps
# that drift out of the ratios. Then prints one table row per metric:
#
#   kernel / kvmlike  the median of the per-run medians of that backend
#   kvmlike/kernel    the plain ratio; "better" says which way is good
#   kvmlike is        how kvmlike compares, as a factor >= 1 better or worse
#   target            PASS/MISS where the project has one:
#                       populate (after the first), flags 0   >= kernel rate
#                       punch, flags 0                       >= kernel rate
#                       1 slot create+delete, flags 0         >= 10x kernel pairs/s
#                       2 MiB slots, create all, flags 0      <= kernel time / 10
#
# MMAP|INIT_SHARED rows carry no target; memset is the physical limit.
#
# Usage: scripts/bench.sh [-n ROUNDS] [-o OUTDIR] [BUILD_DIR] [-- GMEM_BENCH_ARGS...]
#        scripts/bench.sh -R OUTDIR      (the table again, from an earlier run)
#   ROUNDS   runs per backend, at least 2 (default 2)
#   OUTDIR   where the raw outputs go (default: a new directory under /tmp)
#   BUILD_DIR  default: build/ of this repository
#   e.g.  scripts/bench.sh build -- -s 256 -r 3
#
# Environment: BENCH_TIMEOUT  seconds per run (default 900).
#
# Exit status: 0 when every run succeeded (whatever the targets say: this is a
# report, not a test), 1 when a run failed, 2 on bad usage.
set -u

repo=$(cd "$(dirname "$0")/.." && pwd)

usage() {
	sed -n '/^# Usage:/,/^# Environment/p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

rounds=2
outdir=""
build_dir=""
report_only=""
while [ $# -gt 0 ]; do
	case "$1" in
	-n) [ $# -ge 2 ] || usage; rounds=$2; shift ;;
	-o) [ $# -ge 2 ] || usage; outdir=$2; shift ;;
	-R) [ $# -ge 2 ] || usage; report_only=$2; shift ;;
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

# report OUTDIR ROUNDS: the comparison table of the runs in OUTDIR.
report() {
/usr/bin/python3 - "$1" "$2" <<'PY'
import os
import statistics
import sys

outdir, rounds = sys.argv[1], int(sys.argv[2])
BACKENDS = ("kernel", "kvmlike")
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


def parse(path, backend):
    """RESULT lines of one run: metric -> (unit, median, min, max, n), and its
    NOTEs. A run that failed or did not report the expected backend counts as
    empty."""
    res, notes = {}, []
    if os.path.exists(path.replace(".out", ".failed")):
        return res, notes
    try:
        with open(path) as f:
            for line in f:
                parts = line.rstrip("\n").split("|")
                if parts[0] == "RESULT" and len(parts) == 7:
                    res[parts[1]] = (parts[2], float(parts[3]), float(parts[4]),
                                     float(parts[5]), int(parts[6]))
                elif parts[0] == "NOTE":
                    notes.append("|".join(parts[1:]))
    except OSError:
        pass
    if f"backend|{backend}" not in notes:
        return {}, []
    return res, notes


runs = {b: [parse(f"{outdir}/{b}.{r}.out", b) for r in range(1, rounds + 1)]
        for b in BACKENDS}
order = []  # metrics in the order the program printed them
for b in BACKENDS:
    for res, _ in runs[b]:
        for m in res:
            if m not in order:
                order.append(m)


def combined(backend, metric):
    """Median of the per-run medians, and those medians."""
    meds = [res[metric][1] for res, _ in runs[backend] if metric in res]
    return (statistics.median(meds) if meds else None), meds


def fmt(x):
    if x is None:
        return "-"
    if x >= 1000:
        return f"{x:,.0f}"
    return f"{x:.3g}" if x < 10 else f"{x:.1f}"


rows = []
for m in order:
    unit = next(res[m][0] for b in BACKENDS for res, _ in runs[b] if m in res)
    rate = unit in RATE_UNITS
    k, kmeds = combined("kernel", m)
    v, vmeds = combined("kvmlike", m)
    ratio = v / k if k and v is not None else None
    adv = None
    if ratio:
        adv = ratio if rate else 1.0 / ratio
    if adv is None:
        verdict = "-"
    elif abs(adv - 1.0) < 0.005:
        verdict = "same"
    else:
        # always a factor >= 1: "2.5x worse" reads better than "0.40x better"
        verdict = (f"{adv:.2f}x better" if adv > 1 else f"{1.0 / adv:.2f}x worse")
    target = "-"
    if m in TARGETS:
        need, text = TARGETS[m]
        if adv is None:
            target = f"n/a ({text})"
        else:
            target = f"{'PASS' if adv >= need else 'MISS'} ({text})"
    runs_txt = (" ".join(fmt(x) for x in kmeds) + " | " +
                " ".join(fmt(x) for x in vmeds))
    rows.append((m, unit, "higher" if rate else "lower", fmt(k), fmt(v),
                 f"{ratio:.3f}" if ratio else "-", verdict, target, runs_txt))

head = ("metric", "unit", "better", "kernel", "kvmlike", "kvmlike/kernel",
        "kvmlike is", "target", "per-run medians (kernel | kvmlike)")
widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
right = {3, 4, 5}


def line(r):
    return "  ".join(str(c).rjust(w) if i in right else str(c).ljust(w)
                     for i, (c, w) in enumerate(zip(r, widths))).rstrip()


print(f"kernel vs kvmlike, {rounds} interleaved runs each; "
      "each value is the median of the per-run medians")
print(line(head))
print(line(tuple("-" * w for w in widths)))
for r in rows:
    print(line(r))

print()
mem = [m for m in order if m.startswith("memset")]
for m in mem:
    k, _ = combined("kernel", m)
    v, _ = combined("kvmlike", m)
    if k:
        print(f"physical limit: {m} {fmt(k)} GB/s in kernel runs, "
              f"{fmt(v)} GB/s in kvmlike runs (= {k * 1e9 / 2**30:.1f} GiB/s), "
              "the store bandwidth of one core")

# What the kvmlike runs said about memory, from the last one that worked.
last_notes = next((notes for res, notes in reversed(runs["kvmlike"]) if res), [])
for n in last_notes:
    if n.startswith(("pool|", "rss|", "objects|")) or (
            n.startswith("backed|") and ": kernel:" not in n):
        print("kvmlike: " + n.replace("|", ": ", 1))
for b in BACKENDS:
    for i, (res, _) in enumerate(runs[b], 1):
        if not res:
            print(f"{b} run {i}: failed or no results, left out")
PY
}

failed=0
if [ -n "$report_only" ]; then
	rounds=$(find "$report_only" -maxdepth 1 -name 'kernel.*.out' | wc -l)
	[ "$rounds" -gt 0 ] || { echo "$0: no runs in $report_only" >&2; exit 2; }
	report "$report_only" "$rounds" || exit 1
	exit 0
fi

want_dir=${build_dir:-$repo/build}
build_dir=$(cd "$want_dir" 2>/dev/null && pwd) ||
	{ echo "$0: no build directory $want_dir" >&2; exit 2; }
bench="$build_dir/bench/gmem_bench"
preload="$build_dir/frontends/preload/libkvmlike-preload.so"
for f in "$bench" "$preload"; do
	[ -e "$f" ] || { echo "$0: missing $f (build first)" >&2; exit 2; }
done
if [ -z "$outdir" ]; then
	outdir=$(mktemp -d /tmp/kvmlike-bench.XXXXXX) || exit 2
fi
mkdir -p "$outdir" || exit 2
timeout_s=${BENCH_TIMEOUT:-900}

# run_one BACKEND ROUND: one gmem_bench run; output in $outdir/BACKEND.ROUND.{out,err}
run_one() {
	local backend=$1 round=$2
	local out="$outdir/$backend.$round.out" err="$outdir/$backend.$round.err"
	local start rc
	start=$EPOCHREALTIME
	if [ "$backend" = kvmlike ]; then
		LD_PRELOAD="$preload" timeout "$timeout_s" "$bench" "${bench_args[@]}" >"$out" 2>"$err"
	else
		# a stray LD_PRELOAD from the caller must not turn this into a kvmlike run
		env -u LD_PRELOAD timeout "$timeout_s" "$bench" "${bench_args[@]}" >"$out" 2>"$err"
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
		# e.g. a failed backing check: its numbers must not reach the table
		echo "$rc" >"$outdir/$backend.$round.failed"
		sed 's/^/    | /' "$err" | tail -n 5
	fi
}

echo "gmem_bench: $bench ${bench_args[*]}"
echo "interposer: $preload"
echo "raw output: $outdir"
for round in $(seq 1 "$rounds"); do
	run_one kernel "$round"
	run_one kvmlike "$round"
done
echo

report "$outdir" "$rounds" || failed=1
exit "$failed"
