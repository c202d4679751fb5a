"""
Memory per idle connection: one msgr2tx server process holds --count
(10,000) READY connections (cephx, secure, by default) opened by --procs
client processes (bench/accept.py's ``hold`` role).  Each process raises its
own RLIMIT_NOFILE with resource.setrlimit.  Figure: (server RSS with all
connections open - server RSS after a warm-up of --warm handshakes) /
--count.

    python bench/memory.py [--count 10000] [--procs 2] [--auth cephx --mode secure]
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import log  # noqa: E402

ACCEPT = os.path.join(common.HERE, "accept.py")


def main_all(args):
    scratch = tempfile.mkdtemp(prefix="msgr2tx-bench-")
    keyring = common.make_keyring(os.path.join(scratch, "keyring"))
    server = common.spawn([ACCEPT, "server", "--keyring", keyring, "--mode", args.mode, "--auth", args.auth])
    clients = []
    try:
        port = common.read_line(server, "LISTENING")
        per = [args.count // args.procs + (1 if i < args.count % args.procs else 0) for i in range(args.procs)]
        for n in per:
            clients.append(common.spawn([ACCEPT, "hold", "--port", port, "--keyring", keyring, "--mode", args.mode,
                                         "--auth", args.auth, "--count", str(n), "--warm", str(args.warm),
                                         "--concurrency", str(args.concurrency)]))
        for c in clients:
            common.read_line(c, "WARM", timeout=120)
        time.sleep(0.5)
        rss0 = common.rss_bytes(server.pid)
        log("memory: server RSS after warm-up %.1f MiB; opening %d connections (%s, %s) from %d processes",
            rss0 / 2**20, args.count, args.auth, args.mode, args.procs)
        t0 = time.perf_counter()
        for c in clients:
            c.stdin.write("GO\n")
            c.stdin.flush()
        held = 0
        for c in clients:
            held += int(common.read_line(c, "OPEN", timeout=600).split()[0])
        elapsed = time.perf_counter() - t0
        time.sleep(1.0)
        rss1 = common.rss_bytes(server.pid)
        fds = len(os.listdir("/proc/%d/fd" % server.pid))
    finally:
        for c in clients:
            common.stop(c, timeout=60)
        common.stop(server)
        shutil.rmtree(scratch, ignore_errors=True)
    per_conn = (rss1 - rss0) / held
    log("memory: %d connections open in %.1fs; server RSS %.1f MiB -> %.1f MiB (%d fds)",
        held, elapsed, rss0 / 2**20, rss1 / 2**20, fds)
    common.result("memory per idle connection (%s, %s)" % (args.auth, args.mode), round(per_conn / 1024, 2),
                  "KiB", target="\u2264 64 KiB", ratio=round(per_conn / 65536, 3), baseline=64,
                  baseline_name="64 KiB target", connections=held, rss_before=rss0, rss_after=rss1,
                  server_fds=fds, open_seconds=round(elapsed, 2))
    print("memory %.1f KiB per idle connection = %.2fx the 64 KiB target (%d connections, server RSS "
          "%.1f -> %.1f MiB)" % (per_conn / 1024, per_conn / 65536, held, rss0 / 2**20, rss1 / 2**20))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--count", type=int, default=10000)
    p.add_argument("--procs", type=int, default=2)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--warm", type=int, default=50)
    p.add_argument("--auth", default="cephx")
    p.add_argument("--mode", default="secure")
    main_all(p.parse_args(argv))


if __name__ == "__main__":
    main()
