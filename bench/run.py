"""
Run every msgr2tx benchmark in one go (``make bench``): bulk stream, small
messages, real Ceph (monitor commands, connect time, rados bench), object I/O
against librados (objects), server
accept rate, memory per idle connection.  Each benchmark runs as its own
process and prints its figure and its ratio as its last line; this script
prints those lines, a table of every figure, and writes all records as JSON
to --json (default /tmp/msgr2tx-bench.json).

    python bench/run.py [--only bulk,small,ceph,accept,memory] [--json PATH]
                        [--reactor default|asyncio|uvloop]   (bulk and small only)
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import log  # noqa: E402

BENCHMARKS = ["bulk", "small", "ceph", "objects", "accept", "memory", "latency"]
REACTOR_AWARE = ("bulk", "small")  # benchmarks that take --reactor


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


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", default=",".join(BENCHMARKS))
    p.add_argument("--json", default="/tmp/msgr2tx-bench.json")
    p.add_argument("--reactor", choices=common.REACTORS, default="default",
                   help="event loop for the bulk and small benchmarks (the others use the default)")
    args = p.parse_args(argv)
    info = machine()
    info["bench_reactor"] = args.reactor
    log("machine: %s", json.dumps(info))
    records, lines = [], {}
    started = time.monotonic()
    for name in args.only.split(","):
        log("=== %s ===", name)
        t = time.monotonic()
        extra = ["--reactor", args.reactor] if name in REACTOR_AWARE else []
        proc = subprocess.run([sys.executable, os.path.join(common.HERE, name + ".py")] + extra,
                              stdout=subprocess.PIPE, text=True, cwd=common.ROOT)
        out = proc.stdout.strip().splitlines()
        for line in out:
            if line.startswith("RESULT "):
                rec = json.loads(line[7:])
                rec["benchmark"] = name
                records.append(rec)
        last = out[-1] if out else "(no output)"
        if proc.returncode:
            last = "FAILED (exit %d): %s" % (proc.returncode, last)
        lines[name] = last
        log("%s done in %.1fs", name, time.monotonic() - t)
        print("%s: %s" % (name, last), flush=True)
    total = time.monotonic() - started
    with open(args.json, "w") as f:
        json.dump({"machine": info, "seconds": total, "records": records, "summaries": lines}, f, indent=1)
    print()
    print("machine: nproc=%s python=%s twisted=%s cryptography=%s reactor=%s cpu=%s" % (
        info["nproc"], info["python"], info["twisted"], info["cryptography"], info.get("reactor"),
        info.get("cpu")))
    print("%-46s %14s %-13s %8s  %s" % ("figure", "value", "unit", "ratio", "against"))
    for r in records:
        ratio = "%.2fx" % r["ratio"] if r.get("ratio") is not None else ""
        against = ("%s %s" % (r.get("baseline_name"), r.get("baseline"))) if r.get("baseline_name") else ""
        print("%-46s %14s %-13s %8s  %s" % (r["name"], common._num(r["value"]), r["unit"], ratio, against))
    print("all benchmarks: %.0fs; JSON in %s" % (total, args.json))


if __name__ == "__main__":
    main()
