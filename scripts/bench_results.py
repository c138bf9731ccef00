"""Reading gmem_bench / guest_fault_bench output for scripts/bench.sh."""
import os
import statistics


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


BACKENDS = ("kernel", "kvmlike")


def load(outdir, prefix, rounds):
    """Every run of both backends: backend -> [(results, notes)], in round order.
    prefix is "" for the gmem section, "guest." for the guest section."""
    return {b: [parse(f"{outdir}/{prefix}{b}.{r}.out", b) for r in range(1, rounds + 1)]
            for b in BACKENDS}


def metric_order(runs):
    """Metrics in the order the programs printed them."""
    order = []
    for b in BACKENDS:
        for res, _ in runs[b]:
            for m in res:
                if m not in order:
                    order.append(m)
    return order


def combined(runs, backend, metric):
    """Median of the per-run medians, and those medians."""
    meds = [res[metric][1] for res, _ in runs[backend] if metric in res]
    return (statistics.median(meds) if meds else None), meds


def last_notes(runs, backend):
    """The NOTEs of the backend's last run that has results."""
    return next((notes for res, notes in reversed(runs[backend]) if res), [])


def fmt(x):
    if x is None:
        return "-"
    if x >= 1000:
        return f"{x:,.0f}"
    return f"{x:.3g}" if x < 10 else f"{x:.1f}"


def verdict(adv):
    """How kvmlike compares, given its advantage (>= 1: at least as good), as a
    factor >= 1: "2.5x worse" reads better than "0.40x better"."""
    if adv is None:
        return "-"
    if abs(adv - 1.0) < 0.005:
        return "same"
    return f"{adv:.2f}x better" if adv > 1 else f"{1.0 / adv:.2f}x worse"


def medians_text(kmeds, vmeds):
    return " ".join(fmt(x) for x in kmeds) + " | " + " ".join(fmt(x) for x in vmeds)


def print_table(head, rows, right):
    """Columns padded to their widest cell; columns in right are right-aligned."""
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]

    def line(r):
        return "  ".join(str(c).rjust(w) if i in right else str(c).ljust(w)
                         for i, (c, w) in enumerate(zip(r, widths))).rstrip()

    print(line(head))
    print(line(tuple("-" * w for w in widths)))
    for r in rows:
        print(line(r))
