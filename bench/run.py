"""
Run every msgr2tx benchmark in one go (``make bench``): bulk stream, small
messages (messages per second and CPU per echo), real Ceph (monitor
commands, connect time, rados bench), object I/O against librados
(objects), server accept rate, memory per idle connection, round trips to
READY.  Each benchmark runs as its own process and prints its figures and
ratios as its last line; this script prints those lines, a table of every
figure, and writes all records as JSON to --json (default
/tmp/msgr2tx-bench.json).

With ``--repeat N`` the whole list runs N times in rounds (bulk, small, ...,
then bulk, small, ... again).  Every benchmark measures msgr2tx and its
baseline (the Twisted floor or echo, librados) back to back in the same
run, so msgr2tx and its baseline interleave N times; the table then gives
each figure's median and range over the N runs, and the median and range of
its ratio (the ratio of each run's figure to that run's own baseline, which
moves with the machine's load).  This machine's run-to-run spread is
+-15-25%: compare medians of N >= 5, not single runs.

With ``--against DIR`` (another checkout, e.g. ``git worktree add /tmp/old
COMMIT``), each benchmark runs from that tree's ``bench/`` (with its own
msgr2tx) and from this one, one right after the other, in every round; the
output then has a table per tree and a before/after table (the medians,
"change" = after over before, and the ratios to the baselines before and
after).  Benchmarks the other tree does not have fail there and are left
out of the comparison.

    python bench/run.py [--only bulk,small,small_cpu,ceph,objects,accept,memory,latency]
                        [--repeat N] [--against DIR] [--json PATH]
                        [--reactor default|asyncio|uvloop]   (bulk and small only)
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import log  # noqa: E402

BENCHMARKS = ["bulk", "small", "small_cpu", "ceph", "objects", "accept", "memory", "latency"]
REACTOR_AWARE = ("bulk", "small")  # benchmarks that take --reactor
#: arguments run.py gives a benchmark: small_cpu repeats itself unless told
#: not to, and run.py does the repeating (interleaved with the others)
EXTRA_ARGS = {"small_cpu": ["--repeat", "1"]}


def machine():
    import cryptography
    import twisted
    info = {"nproc": os.cpu_count(), "python": platform.python_version(),
            "implementation": platform.python_implementation(), "twisted": twisted.__version__,
            "cryptography": cryptography.__version__, "kernel": platform.release()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        from twisted.internet import reactor
        info["reactor"] = type(reactor).__name__
    except Exception:
        pass
    return info


def normalise(rec):
    """Give a record without name/value (bench/latency.py's scenarios) a name, value and unit."""
    if "name" not in rec and "scenario" in rec:
        rec["name"] = "RTTs to READY: %s" % rec["scenario"]
        rec["value"], rec["unit"] = rec.get("ready_rtt"), "RTT"
    rec.setdefault("name", "?")
    rec.setdefault("value", None)
    rec.setdefault("unit", "")
    return rec


def spread(values):
    """(median, min, max) of the numbers among values, or None when there are none."""
    values = [v for v in values if isinstance(v, (int, float))]
    if not values:
        return None
    med = statistics.median(values)
    if all(isinstance(v, int) for v in values) and med == int(med):
        med = int(med)
    return med, min(values), max(values)


def summarise(records):
    """One summary per figure name, in first-seen order: medians and ranges over the runs."""
    by_name = {}
    for r in records:
        by_name.setdefault(r["name"], []).append(r)
    out = []
    for name, runs in by_name.items():
        first = runs[0]
        s = {"name": name, "unit": first.get("unit"), "runs": len(runs),
             "baseline_name": first.get("baseline_name"), "target": first.get("target")}
        for key in ("value", "ratio", "baseline"):
            sp = spread([r.get(key) for r in runs])
            if sp is not None:
                s[key], s[key + "_min"], s[key + "_max"] = sp
                s[key + "_all"] = [r.get(key) for r in runs]
        out.append(s)
    return out


def _range(s, key, fmt):
    if s.get(key) is None:
        return ""
    if s["runs"] == 1 or s[key + "_min"] == s[key + "_max"]:
        return fmt(s[key])
    return "%s (%s-%s)" % (fmt(s[key]), fmt(s[key + "_min"]), fmt(s[key + "_max"]))


def run_one(root, name, args, rnd, tree=None):
    """Run benchmark C{name} from the checkout at C{root}; returns (records, last line)."""
    extra = ["--reactor", args.reactor] if name in REACTOR_AWARE else []
    extra += EXTRA_ARGS.get(name, [])
    # each tree's bench/common.py puts its own checkout first on sys.path
    proc = subprocess.run([sys.executable, os.path.join(root, "bench", name + ".py")] + extra,
                          stdout=subprocess.PIPE, text=True, cwd=root)
    out = proc.stdout.strip().splitlines()
    records = []
    for line in out:
        if line.startswith("RESULT "):
            rec = normalise(json.loads(line[7:]))
            rec["benchmark"] = name
            rec["round"] = rnd
            if tree is not None:
                rec["tree"] = tree
            records.append(rec)
    last = out[-1] if out else "(no output)"
    if proc.returncode:
        last = "FAILED (exit %d): %s" % (proc.returncode, last)
    return records, last


def print_table(summary):
    print("%-46s %26s %-13s %20s  %s" % ("figure", "value", "unit", "ratio", "against"))
    for s in summary:
        against = ""
        if s.get("baseline_name"):
            against = "%s %s" % (s["baseline_name"], _range(s, "baseline", common._num))
        print("%-46s %26s %-13s %20s  %s" % (
            s["name"], _range(s, "value", common._num), s["unit"],
            _range(s, "ratio", lambda v: "%.2fx" % v), against))


#: the targets of issues 13 (throughput) and 15 (objects): (figure name or
#: prefix, "ratio" or "value", "min" (at least) or "max" (at most), threshold)
TARGETS = [
    ("small 4KiB w16 crc rev1", "ratio", "min", 0.7),
    ("small 4KiB w16 secure rev1", "ratio", "min", 0.55),
    ("small 4KiB w16 crc rev1 CPU per echo", "ratio", "min", 0.7),
    ("small 4KiB w16 secure rev1 CPU per echo", "ratio", "min", 0.55),
    ("bulk crc rev1", "ratio", "min", 0.9),
    ("bulk secure rev1", "ratio", "min", 0.6),
    ("bulk secure rev1 / rados bench seq secure", "ratio", "min", 1.3),
    ("mon command rate (secure, cephx)", "ratio", "min", 1.1),
    ("server CPU per accepted handshake (cephx, secure)", "value", "max", 1.0),
    ("memory per idle connection", "value", "max", 16.0),
    ("objects write 4MiB crc", "ratio", "min", 1.0),
    ("objects write 4MiB secure", "ratio", "min", 1.0),
    ("objects read 4MiB crc", "ratio", "min", 1.0),
    ("objects read 4MiB secure", "ratio", "min", 1.0),
    ("objects randread 4KiB crc", "ratio", "min", 0.7),
    ("objects randread 4KiB secure", "ratio", "min", 0.7),
]

#: MiB/s (rados bench) to MB/s
MIB = 1.048576


def anchor_records(records):
    """
    Per round, bulk secure rev1 over Ceph's C++ ``rados bench`` 4 MiB seq
    read in secure mode of the same round (issue 13: at least 1.3x); the
    objects cluster's anchor where there is one, else bench/ceph.py's.
    """
    out = []
    for rnd, tree in sorted({(r.get("round") or 0, r.get("tree") or "") for r in records}):
        mine = [r for r in records if (r.get("round") or 0) == rnd and (r.get("tree") or "") == tree]
        bulk = [r for r in mine if r["name"] == "bulk secure rev1" and r.get("value")]
        anchors = [r for r in mine if r["name"].startswith("rados bench seq 4MiB secure") and r.get("value")]
        anchors.sort(key=lambda r: "objects cluster" not in r["name"])
        if bulk and anchors:
            anchor_mbs = anchors[0]["value"] * (MIB if anchors[0].get("unit") == "MiB/s" else 1.0)
            out.append({"name": "bulk secure rev1 / rados bench seq secure", "unit": "MB/s",
                        "value": bulk[0]["value"], "ratio": round(bulk[0]["value"] / anchor_mbs, 3),
                        "baseline": round(anchor_mbs, 1), "baseline_name": "rados bench seq 4MiB secure",
                        "round": rnd, "tree": bulk[0].get("tree")})
    return out


def target_rows(summary):
    """(target text, summary or None, met: True/False/None) for every target."""
    rows = []
    for name, key, how, threshold in TARGETS:
        s = next((s for s in summary if s["name"] == name), None)
        if s is None:
            s = next((s for s in summary if s["name"].startswith(name + " ")), None)
        text = "%s %s %s%s" % (name, key, "\u2265 " if how == "min" else "\u2264 ",
                               ("%.2fx" % threshold) if key == "ratio" else "%g" % threshold)
        met = None
        if s is not None and s.get(key) is not None:
            met = s[key] >= threshold if how == "min" else s[key] <= threshold
        rows.append((text, s, key, met))
    return rows


def print_targets(summary):
    print("%-70s %26s  %s" % ("target (issues 13 and 15)", "median (range)", "met?"))
    for text, s, key, met in target_rows(summary):
        fmt = (lambda v: "%.2fx" % v) if key == "ratio" else common._num
        shown = _range(s, key, fmt) if s is not None else "not measured"
        print("%-70s %26s  %s" % (text, shown, {True: "yes", False: "no", None: "-"}[met]))


def compare(old, new):
    """Rows (name, unit, old summary, new summary) for the figures both trees reported."""
    olds = {s["name"]: s for s in old}
    return [(s["name"], s["unit"], olds[s["name"]], s) for s in new if s["name"] in olds]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", default=",".join(BENCHMARKS))
    p.add_argument("--repeat", type=int, default=1,
                   help="run the list N times in rounds; the table gives medians and ranges")
    p.add_argument("--against", metavar="DIR",
                   help="another checkout of msgr2tx (e.g. a git worktree of an older commit): each "
                        "benchmark runs from it and from this tree alternately, and a before/after table follows")
    p.add_argument("--json", default="/tmp/msgr2tx-bench.json")
    p.add_argument("--reactor", choices=common.REACTORS, default="default",
                   help="event loop for the bulk and small benchmarks (the others use the default)")
    args = p.parse_args(argv)
    names = [n for n in args.only.split(",") if n]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        p.error("unknown benchmark(s) %s; choose from %s" % (",".join(unknown), ",".join(BENCHMARKS)))
    trees = [(None, common.ROOT)]
    if args.against:
        other = os.path.abspath(args.against)
        if not os.path.isdir(os.path.join(other, "bench")) or not os.path.isdir(os.path.join(other, "msgr2tx")):
            p.error("--against %s: not a msgr2tx checkout (no bench/ and msgr2tx/ in it)" % other)
        trees = [("before", other), ("after", common.ROOT)]
    info = machine()
    info["bench_reactor"] = args.reactor
    log("machine: %s", json.dumps(info))
    records, lines = [], {}
    started = time.monotonic()
    for rnd in range(1, args.repeat + 1):
        for name in names:
            for tree, root in trees:
                label = name if tree is None else "%s (%s)" % (name, tree)
                log("=== %s (round %d of %d) ===", label, rnd, args.repeat)
                t = time.monotonic()
                recs, last = run_one(root, name, args, rnd, tree)
                records.extend(recs)
                lines.setdefault(label, []).append(last)
                log("%s done in %.1fs", label, time.monotonic() - t)
                prefix = label if args.repeat == 1 else "%s [%d/%d]" % (label, rnd, args.repeat)
                print("%s: %s" % (prefix, last), flush=True)
    total = time.monotonic() - started
    records.extend(anchor_records(records))
    by_tree = {tree: summarise([r for r in records if r.get("tree") == tree]) for tree, _ in trees}
    summary = by_tree[trees[-1][0]]
    out = {"machine": info, "seconds": total, "repeat": args.repeat, "command": sys.argv,
           "summary": summary, "records": records, "summaries": lines}
    if args.against:
        out["against"] = trees[0][1]
        out["summary_before"] = by_tree["before"]
    with open(args.json, "w") as f:
        json.dump(out, f, indent=1)
    print()
    print("machine: nproc=%s python=%s twisted=%s cryptography=%s reactor=%s cpu=%s" % (
        info["nproc"], info["python"], info["twisted"], info["cryptography"], info.get("reactor"),
        info.get("cpu")))
    if args.repeat > 1:
        print("medians over %d interleaved runs (range in brackets)" % args.repeat)
    if args.against:
        print("before: %s" % trees[0][1])
        print_table(by_tree["before"])
        print("after: %s" % trees[1][1])
    print_table(summary)
    if args.against:
        print()
        print("%-46s %26s %26s %8s  %s" % ("before -> after", "value before", "value after", "change",
                                           "ratio before -> after"))
        for name, unit, b, a in compare(by_tree["before"], summary):
            change = ("%.2fx" % (a["value"] / b["value"])) if a.get("value") and b.get("value") else ""
            print("%-46s %26s %26s %8s  %s" % (
                name, _range(b, "value", common._num), _range(a, "value", common._num), change,
                ("%s -> %s" % (_range(b, "ratio", lambda v: "%.2fx" % v), _range(a, "ratio", lambda v: "%.2fx" % v))
                 if a.get("ratio") is not None and b.get("ratio") is not None else "")))
    print()
    print_targets(summary)
    out["targets"] = [{"target": text, "figure": s["name"] if s else None, "median": s.get(key) if s else None,
                       "met": met} for text, s, key, met in target_rows(summary)]
    with open(args.json, "w") as f:
        json.dump(out, f, indent=1)
    print("all benchmarks: %.0fs; JSON in %s" % (total, args.json))
    ratios = ["%s %s" % (s["name"], _range(s, "ratio", lambda v: "%.2fx" % v)) for s in summary
              if s.get("ratio") is not None]
    print("ratios%s: %s" % (" (medians of %d)" % args.repeat if args.repeat > 1 else "", "; ".join(ratios)))


if __name__ == "__main__":
    main()
