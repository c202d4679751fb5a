"""
Object I/O against real Ceph 16.2, msgr2tx against librados, on the same
cluster in the same run: one ceph-mon and --osds memstore ceph-osd (cephx,
tests.cephlab), one pool of --size replicas (default 1; see below), and

- 4 MiB writes (``write_full``) of --objects objects in turn, --depth-large in flight;
- 4 MiB sequential reads of those objects, --depth-large in flight;
- 4 KiB reads at random 4 KiB-aligned offsets of those objects, --depth-small (16) in flight;

each in crc and in secure mode (every ``ms_*_mode`` / ConnectionConfig
modes).  The msgr2tx side is L{msgr2tx.rados.IoCtx} in a child process of the
project's Python; the librados side is python3-rados (``aio_write_full`` /
``aio_read`` with completions) in Debian's /usr/bin/python3.  Both sides
stay connected for the whole run and take commands on stdin, so the cells
are interleaved: each round runs every cell on both sides back to back
(alternating which side goes first), --repeat rounds, and the figures are
medians over the rounds.  Each cell is --seconds of timed I/O after a short
warm-up.  Both sides also report their client CPU per op (process_time over
the timed I/O; for librados the whole python3 process, its messenger threads
included), which this shared machine swings less than op/s.

    python bench/objects.py [--seconds 2] [--repeat 5] [--osds 3] [--size 1]

Why size 1 by default: on this 2-core machine the three OSDs and the client
share the same cores, and with size 2 every write is sent on to a second
OSD, which makes the cluster's own replication the larger cost and the
client side a smaller part of what is measured; size 1 keeps the client's
messenger the part that differs between the two sides.  --size 2 runs the
replicated variant.
"""

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))

MiB = 1 << 20
LARGE = 4 * MiB
SMALL = 4096
CELLS = [("write", "4MiB"), ("read", "4MiB"), ("randread", "4KiB")]
MODES = ["crc", "secure"]
TARGETS = {"write": 1.0, "read": 1.0, "randread": 0.7}


def oid(i):
    return "bench-obj-%d" % i


# ---- librados side (system python) ----------------------------------------------------

def librados_side(args):
    import rados

    clusters = {}
    payload = os.urandom(LARGE)

    def ioctx(mode):
        if mode not in clusters:
            r = rados.Rados(conffile=args.conf, name="client.admin",
                            conf={"keyring": args.keyring, "ms_client_mode": mode, "ms_mon_client_mode": mode,
                                  "ms_service_mode": mode, "ms_cluster_mode": mode})
            r.connect()
            clusters[mode] = (r, r.open_ioctx(args.pool))
        return clusters[mode][1]

    def run(cmd):
        io = ioctx(cmd["mode"])
        kind, depth, seconds, objects = cmd["kind"], cmd["depth"], cmd["seconds"], cmd["objects"]
        rnd = random.Random(1)
        cond = threading.Condition()
        state = {"inflight": 0, "ops": 0, "bytes": 0, "errors": 0}

        def done(comp, *rest):
            rv = comp.get_return_value()
            with cond:
                state["inflight"] -= 1
                if rv < 0:
                    state["errors"] += 1
                else:
                    state["ops"] += 1
                    state["bytes"] += LARGE if kind == "write" else (len(rest[0]) if rest and rest[0] else 0)
                cond.notify()

        def issue(n):
            if kind == "write":
                io.aio_write_full(oid(n % objects), payload, oncomplete=done)
            elif kind == "read":
                io.aio_read(oid(n % objects), LARGE, 0, oncomplete=done)
            else:
                io.aio_read(oid(rnd.randrange(objects)), SMALL, SMALL * rnd.randrange(LARGE // SMALL),
                            oncomplete=done)

        def loop(secs):
            n = 0
            t0 = time.perf_counter()
            deadline = t0 + secs
            while time.perf_counter() < deadline:
                with cond:
                    while state["inflight"] >= depth:
                        cond.wait()
                    state["inflight"] += 1
                issue(n)
                n += 1
            with cond:
                while state["inflight"]:
                    cond.wait()
            return time.perf_counter() - t0

        loop(cmd["warmup"])
        state.update(ops=0, bytes=0, errors=0)
        cpu0 = time.process_time()      # the whole process: librados's messenger threads too
        elapsed = loop(seconds)
        return {"ops": state["ops"], "bytes": state["bytes"], "errors": state["errors"], "seconds": elapsed,
                "cpu": time.process_time() - cpu0}

    serve(run)
    for r, io in clusters.values():
        io.close()
        r.shutdown()


def serve(run):
    """One JSON command per stdin line, one RAW line per answer."""
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd.get("kind") == "quit":
            break
        out = run(cmd)
        sys.stdout.write("RAW " + json.dumps(out) + "\n")
        sys.stdout.flush()


# ---- msgr2tx side (the project's python) ----------------------------------------------

def msgr2tx_side(args):
    sys.path.insert(0, HERE)
    import common
    from twisted.internet import defer, reactor, threads

    from msgr2tx.rados import Rados

    payload = os.urandom(LARGE)
    clusters = {}

    async def ioctx(mode):
        if mode not in clusters:
            r = Rados(reactor, args.mon, auth="cephx:keyring=%s" % args.keyring,
                      config=common.client_config(mode, 1))
            await r.connect()
            clusters[mode] = (r, r.open_ioctx(args.pool))
        return clusters[mode][1]

    async def run(cmd):
        io = await ioctx(cmd["mode"])
        kind, depth, seconds, objects = cmd["kind"], cmd["depth"], cmd["seconds"], cmd["objects"]
        rnd = random.Random(1)
        counter = iter(range(1 << 62))
        state = {}

        async def worker(deadline):
            while time.perf_counter() < deadline:
                n = next(counter)
                if kind == "write":
                    await io.write_full(oid(n % objects), payload)
                    got = LARGE
                elif kind == "read":
                    got = len(await io.read(oid(n % objects), LARGE))
                elif kind == "readview":
                    # (not a cell: IoCtx.read_view's saving, by hand with the msgr2tx-side command)
                    got = len(await io.read_view(oid(n % objects), LARGE))
                else:
                    got = len(await io.read(oid(rnd.randrange(objects)), SMALL,
                                            SMALL * rnd.randrange(LARGE // SMALL)))
                state["ops"] += 1
                state["bytes"] += got

        async def loop(secs):
            state.update(ops=0, bytes=0)
            t0 = time.perf_counter()
            await defer.gatherResults([defer.ensureDeferred(worker(t0 + secs)) for _ in range(depth)],
                                      consumeErrors=True)
            return time.perf_counter() - t0

        await loop(cmd["warmup"])
        cpu0 = time.process_time()
        elapsed = await loop(seconds)
        return {"ops": state["ops"], "bytes": state["bytes"], "errors": 0, "seconds": elapsed,
                "cpu": time.process_time() - cpu0}

    async def main():
        sys.stdout.write("READY\n")
        sys.stdout.flush()
        while True:
            line = await threads.deferToThread(sys.stdin.readline)
            if not line:
                break
            cmd = json.loads(line)
            if cmd.get("kind") == "quit":
                break
            out = await run(cmd)
            sys.stdout.write("RAW " + json.dumps(out) + "\n")
            sys.stdout.flush()
        for r, _ in clusters.values():
            r.close()

    def stop(result):
        if isinstance(result, Exception) or hasattr(result, "printTraceback"):
            result.printTraceback(file=sys.stderr)
        reactor.callLater(0.2, reactor.stop)

    reactor.callWhenRunning(lambda: defer.ensureDeferred(main()).addBoth(stop))
    reactor.run()


# ---- the driver ----------------------------------------------------------------------------

class Side:
    def __init__(self, name, argv):
        sys.path.insert(0, HERE)
        import common
        self.common = common
        self.name = name
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     cwd=common.ROOT)
        common.read_line(self.proc, "READY", timeout=60)

    def run(self, cmd, timeout):
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.common.read_line(self.proc, "RAW", timeout=timeout))

    def close(self):
        try:
            self.proc.stdin.write(json.dumps({"kind": "quit"}) + "\n")
            self.proc.stdin.flush()
        except OSError:
            pass
        self.common.stop(self.proc)


def main_all(args):
    sys.path.insert(0, HERE)
    import common
    from common import log
    from tests import cephlab

    try:
        cephlab.ensure_ceph()
        python = cephlab.librados_python()
    except Exception as e:  # SkipTest without Ceph and without root
        print("objects: skipped: %s" % e)
        return
    log("objects: ceph-mon (cephx) and %d memstore OSDs, pool size %d", args.osds, args.size)
    mon = cephlab.CephMonitor(auth="cephx").start()
    sides = []
    try:
        for _ in range(args.osds):
            mon.add_osd(memstore_bytes=max(256 * MiB, 2 * args.objects * LARGE * args.size // args.osds))
        mon.create_pool("objbench", pg_num=args.pgs, wait=False)
        if args.size != 1:
            mon.ceph_checked("osd", "pool", "set", "objbench", "size", str(args.size), "--yes-i-really-mean-it")
        mon.rados("-p", "objbench", "ls", timeout=60)
        # the objects both sides read (and overwrite, with the same size)
        data = os.urandom(LARGE)
        for i in range(args.objects):
            mon.rados_put("objbench", oid(i), data)
        log("objects: %d objects of 4 MiB written", args.objects)
        base = ["--mon", mon.addr, "--conf", mon.conf, "--keyring", mon.keyring, "--pool", "objbench"]
        ours = Side("msgr2tx", [common.python(), __file__, "msgr2tx-side"] + base)
        sides.append(ours)
        theirs = Side("librados", [python, __file__, "librados-side"] + base)
        sides.append(theirs)
        raws = {}
        for rnd in range(args.repeat):
            for kind, size in CELLS:
                for mode in MODES:
                    depth = args.depth_small if kind == "randread" else args.depth_large
                    cmd = {"kind": kind, "mode": mode, "depth": depth, "seconds": args.seconds,
                           "warmup": args.warmup, "objects": args.objects}
                    order = (ours, theirs) if rnd % 2 == 0 else (theirs, ours)
                    for side in order:
                        raw = side.run(cmd, timeout=args.seconds + 120)
                        raw["rate"] = raw["ops"] / raw["seconds"]
                        raws.setdefault((kind, mode), {}).setdefault(side.name, []).append(raw)
                    cell = raws[(kind, mode)]
                    log("objects round %d: %s %s %s: msgr2tx %.1f op/s, librados %.1f op/s (%.2fx)",
                        rnd + 1, kind, size, mode, cell["msgr2tx"][-1]["rate"], cell["librados"][-1]["rate"],
                        cell["msgr2tx"][-1]["rate"] / cell["librados"][-1]["rate"])
        for side in sides:
            side.close()
        sides = []
        anchor = {}
        if args.rados_bench:
            # Ceph's C++ client on the same cluster, as the anchor of bench/bulk.py's secure target
            mon.rados_bench("objbench", 3, "write", "-b", str(LARGE), "-t", str(args.depth_large),
                            "--max-objects", str(args.objects), "--no-cleanup", timeout=120)
            for mode in MODES:
                text = mon.rados_bench("objbench", max(1, int(args.seconds)), "seq", "-t", str(args.depth_large),
                                       "--ms_client_mode", mode, "--ms_mon_client_mode", mode, timeout=120)
                m = re.search(r"Bandwidth \(MB/sec\):\s*([\d.]+)", text)
                anchor[mode] = float(m.group(1)) if m else None
                log("objects: rados bench seq 4 MiB %s: %s MiB/s", mode, anchor[mode])
    finally:
        for side in sides:
            side.close()
        mon.stop()
    summary = []
    for kind, size in CELLS:
        for mode in MODES:
            cell = raws[(kind, mode)]
            ratios = [a["rate"] / b["rate"] for a, b in zip(cell["msgr2tx"], cell["librados"])]
            ours_rate = statistics.median(r["rate"] for r in cell["msgr2tx"])
            theirs_rate = statistics.median(r["rate"] for r in cell["librados"])
            unit_scale = LARGE / 1e6 if size == "4MiB" else 1.0
            unit = "MB/s" if size == "4MiB" else "op/s"
            ratio = statistics.median(ratios)
            name = "objects %s %s %s (depth %d)" % (kind, size, mode,
                                                    args.depth_small if kind == "randread" else args.depth_large)
            common.result(name, round(ours_rate * unit_scale, 1), unit, ratio=round(ratio, 3),
                          baseline=round(theirs_rate * unit_scale, 1), baseline_name="librados",
                          target="\u2265 %.1fx librados" % TARGETS[kind],
                          ratio_range=[round(min(ratios), 3), round(max(ratios), 3)], rounds=args.repeat,
                          raw=cell)
            # client CPU per op (process_time; librados: its whole process, messenger threads too)
            cpu = {name: statistics.median(r["cpu"] / r["ops"] * 1e6 for r in cell[name] if r.get("cpu") and r["ops"])
                   if any(r.get("cpu") and r["ops"] for r in cell[name]) else None for name in ("msgr2tx", "librados")}
            summary.append("%s %s %s %.1f %s = %.2fx librados (%.2f-%.2f)%s" % (
                kind, size, mode, ours_rate * unit_scale, unit, ratio, min(ratios), max(ratios),
                ", CPU/op %.0f vs %.0f us" % (cpu["msgr2tx"], cpu["librados"])
                if None not in cpu.values() else ""))
    for mode, value in anchor.items():
        common.result("rados bench seq 4MiB %s (C++ anchor, objects cluster)" % mode, value, "MiB/s")
        summary.append("rados bench seq 4MiB %s %s MiB/s" % (mode, value))
    print("; ".join(summary) + " (medians of %d interleaved rounds, pool size %d, %d OSDs)"
          % (args.repeat, args.size, args.osds))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("role", nargs="?", choices=("all", "msgr2tx-side", "librados-side"), default="all")
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--warmup", type=float, default=0.3)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--osds", type=int, default=3)
    p.add_argument("--size", type=int, default=1)
    p.add_argument("--pgs", type=int, default=32)
    p.add_argument("--objects", type=int, default=24)
    p.add_argument("--depth-large", type=int, default=8)
    p.add_argument("--depth-small", type=int, default=16)
    p.add_argument("--no-rados-bench", dest="rados_bench", action="store_false",
                   help="skip the rados bench seq anchor after the rounds")
    p.add_argument("--mon")
    p.add_argument("--conf")
    p.add_argument("--keyring")
    p.add_argument("--pool")
    args = p.parse_args(argv)
    {"all": main_all, "msgr2tx-side": msgr2tx_side, "librados-side": librados_side}[args.role](args)


if __name__ == "__main__":
    main()
