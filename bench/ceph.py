"""
Against real Ceph 16.2: one ceph-mon with cephx (tests.cephlab), secure mode
everywhere, same monitor, same run:

- ``version`` command round trips per second, one at a time: msgr2tx
  (MonClient.command) against librados (python3-rados ``mon_command`` in
  Debian's /usr/bin/python3, a subprocess that times its own loop);
- time to connect: msgr2tx ``connect()`` to READY (cephx included) against
  librados ``Rados.connect()`` (median of --connects attempts each);
- optionally (--rados-bench, on by default in ``make bench``) ``rados bench``
  4 MiB seq reads against a memstore OSD in secure and crc mode, as the C++
  anchor.

    python bench/ceph.py [--seconds 3] [--connects 15] [--no-rados-bench]
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import log  # noqa: E402


async def msgr2tx_side(reactor, mon, seconds, connects):
    from msgr2tx.client import connect
    from msgr2tx.clients.monclient import MonClient

    config = common.client_config("secure", 1)
    times = []
    for _ in range(connects):
        auth = common.client_auth("cephx", mon.keyring)
        t = time.perf_counter()
        p = await connect(reactor, mon.addr, auth, config)
        times.append(time.perf_counter() - t)
        assert p.info.mode_name == "secure", p.info
        p.close()

    mc = MonClient()
    p = await connect(reactor, mon.addr, common.client_auth("cephx", mon.keyring), config, receiver=mc)
    # the JSON text, encoded once, as librados_probe.py gives Rados.mon_command
    cmd = json.dumps({"prefix": "version"})
    for _ in range(20):  # warm-up
        r, rs, out = await mc.command(cmd)
        assert r == 0, (r, rs)
    n = 0
    c0 = time.process_time()
    u0 = os.times()
    t0 = time.perf_counter()
    deadline = t0 + seconds
    while True:
        r, rs, out = await mc.command(cmd)
        n += 1
        now = time.perf_counter()
        if now >= deadline:
            break
    elapsed = now - t0
    cpu = time.process_time() - c0
    u1 = os.times()
    p.close()
    return {"connect_s": times, "commands": n, "seconds": elapsed, "cmd/s": n / elapsed,
            "cpu_us_per_cmd": cpu / n * 1e6, "user_us_per_cmd": (u1.user - u0.user) / n * 1e6,
            "sys_us_per_cmd": (u1.system - u0.system) / n * 1e6,
            "version_output": out.decode("utf-8", "replace").strip()}


def run_msgr2tx(mon, seconds, connects):
    """In a child process, like the librados side."""
    proc = common.spawn([__file__, "msgr2tx-side", "--addr", mon.addr, "--keyring", mon.keyring,
                         "--seconds", str(seconds), "--connects", str(connects)])
    try:
        return json.loads(common.read_line(proc, "RAW", timeout=seconds + 120))
    finally:
        common.stop(proc)


def msgr2tx_side_main(args):
    from twisted.internet import defer, task

    class Mon:
        addr = args.addr
        keyring = args.keyring

    out = {}

    def main(reactor):
        return defer.ensureDeferred(msgr2tx_side(reactor, Mon, args.seconds, args.connects)).addCallback(out.update)

    try:
        task.react(main)
    except SystemExit as e:
        if e.code:
            raise
    common.emit("RAW " + json.dumps(out))


def run_librados(python, mon, seconds, connects):
    p = subprocess.run([python, os.path.join(common.HERE, "librados_probe.py"), mon.conf, mon.keyring,
                        "--connects", str(connects), "--seconds", str(seconds), "--mode", "secure"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=seconds + 180,
                       cwd=common.ROOT)
    if p.returncode:
        raise RuntimeError("librados probe failed: %s" % p.stderr[-2000:])
    return json.loads(p.stdout.strip().splitlines()[-1])


def rados_bench(mon, seconds):
    """4 MiB seq reads through the rados CLI (C++ msgr2) in secure and crc mode."""
    out = {}
    log("ceph: adding a memstore OSD for rados bench")
    mon.add_osd(memstore_bytes=1 << 30)
    mon.create_pool("bench", pg_num=8)
    objects = 96  # 384 MiB of 4 MiB objects, well below the 1 GiB memstore
    mon.rados_bench("bench", 10, "write", "-b", "4194304", "-t", "8", "--max-objects", str(objects),
                    "--no-cleanup", timeout=120)
    for mode in ("secure", "crc"):
        text = mon.rados_bench("bench", max(1, int(seconds)), "seq", "-t", "8", "--ms_client_mode", mode,
                               "--ms_mon_client_mode", mode, timeout=120)
        m = re.search(r"Bandwidth \(MB/sec\):\s*([\d.]+)", text)
        out[mode] = float(m.group(1)) if m else None
        log("ceph: rados bench seq 4 MiB %s: %s MB/s (MiB/s as rados counts)", mode, out[mode])
    return out


def main_all(args):
    from tests import cephlab
    try:
        cephlab.ensure_ceph()
        python = cephlab.librados_python()
    except Exception as e:  # SkipTest without Ceph and without root
        print("ceph: skipped: %s" % e)
        return
    log("ceph: starting ceph-mon with cephx")
    mon = cephlab.CephMonitor(auth="cephx").start()
    try:
        log("ceph: monitor %s up in %.1fs", mon.addr, mon.start_time)
        log("ceph: msgr2tx: %d connects, then %.1fs of version commands", args.connects, args.seconds)
        ours = run_msgr2tx(mon, args.seconds, args.connects)
        log("ceph: librados: %d connects, then %.1fs of version commands", args.connects, args.seconds)
        theirs = run_librados(python, mon, args.seconds, args.connects)
        rb = None
        if args.rados_bench:
            try:
                rb = rados_bench(mon, args.bench_seconds)
            except Exception as e:
                log("ceph: rados bench failed: %s", e)
    finally:
        mon.stop()

    ours_c = statistics.median(ours["connect_s"]) * 1e3
    theirs_c = statistics.median(theirs["connect_s"]) * 1e3
    rec_cmd = common.result("mon command rate (secure, cephx)", round(ours["cmd/s"]), "cmd/s",
                            ratio=round(ours["cmd/s"] / theirs["cmd/s"], 3), baseline=round(theirs["cmd/s"]),
                            baseline_name="librados", target="\u2265 1.1x librados",
                            raw={"msgr2tx": {k: v for k, v in ours.items() if k != "connect_s"},
                                 "librados": {k: v for k, v in theirs.items() if k != "connect_s"}})
    rec_conn = common.result("connect time (secure, cephx; median)", round(ours_c, 2), "ms",
                             ratio=round(ours_c / theirs_c, 3), baseline=round(theirs_c, 2),
                             baseline_name="librados Rados.connect()", target="\u2264 1.0x librados",
                             raw={"msgr2tx_ms": [round(t * 1e3, 2) for t in ours["connect_s"]],
                                  "librados_ms": [round(t * 1e3, 2) for t in theirs["connect_s"]]})
    if rb:
        for mode, v in rb.items():
            common.result("rados bench seq 4MiB %s (C++ anchor)" % mode, v, "MB/s")
    line = ("mon command %.0f cmd/s = %.2fx librados (%.0f cmd/s); connect %.2f ms = %.2fx librados (%.2f ms)"
            % (rec_cmd["value"], rec_cmd["ratio"], rec_cmd["baseline"], rec_conn["value"], rec_conn["ratio"],
               rec_conn["baseline"]))
    if rb:
        line += "; rados bench seq 4MiB secure %s MB/s, crc %s MB/s" % (rb.get("secure"), rb.get("crc"))
    print(line)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("role", nargs="?", choices=("all", "msgr2tx-side"), default="all")
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--connects", type=int, default=15)
    p.add_argument("--bench-seconds", type=int, default=3)
    p.add_argument("--no-rados-bench", dest="rados_bench", action="store_false")
    p.add_argument("--addr")
    p.add_argument("--keyring")
    args = p.parse_args(argv)
    if args.role == "msgr2tx-side":
        msgr2tx_side_main(args)
    else:
        main_all(args)


if __name__ == "__main__":
    main()
