"""Reading gmem_bench / guest_fault_bench output for scripts/bench.sh."""
import os


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
