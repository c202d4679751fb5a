"""
Memory per idle connection: one msgr2tx server process holds --count
(10,000) READY connections (cephx, secure, by default) opened by --procs
client processes (bench/accept.py's ``hold`` role).  Each process raises its
own RLIMIT_NOFILE with resource.setrlimit.  Figure: (server RSS with all
connections open - server RSS after a warm-up of --warm handshakes) /
--count.

    python bench/memory.py [--count 10000] [--procs 2] [--auth cephx --mode secure]

With --hostile it measures instead how much a hostile or slow peer can make
an echo server (auth none, crc, default limits, in a child process) grow,
and prints the server's RSS growth for each case:

  - pre-auth: --connections (10) connections each send a MESSAGE preamble
    declaring 4 x 32 MiB before auth, then try to push 64 MiB;
  - no-read: one client sends --flood-mib (512) MiB of 1 MiB messages to the
    echo service and reads nothing for --stall seconds (2) after the server
    stops reading, then reads everything back;
  - burst: --burst (1000) connects at once while the server is stopped
    (SIGSTOP): how many the listen backlog holds.

    python bench/memory.py --hostile [--flood-mib 512] [--connections 10] [--burst 1000]
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
                  "KiB", target="\u2264 16 KiB", ratio=round(per_conn / 16384, 3), baseline=16,
                  baseline_name="16 KiB target", connections=held, rss_before=rss0, rss_after=rss1,
                  server_fds=fds, open_seconds=round(elapsed, 2))
    print("memory %.1f KiB per idle connection = %.2fx the 16 KiB target (%d connections, server RSS "
          "%.1f -> %.1f MiB)" % (per_conn / 1024, per_conn / 16384, held, rss0 / 2**20, rss1 / 2**20))


def hostile(args):
    import select
    import signal
    import socket
    import struct

    sys.path.insert(0, common.ROOT)
    from msgr2tx.core.constants import Tag
    from msgr2tx.core.framing import build_preamble
    from msgr2tx.core.messages import GenericMessage
    from tests.hostile import ServerProcess, SyncClient, closed_within
    from tests.test_memory_bounds import client_banner

    mib = 1 << 20
    common.raise_nofile(args.burst + 200)

    # 1. MESSAGE preambles before auth
    server = ServerProcess()
    try:
        time.sleep(0.5)
        rss0 = server.rss()
        preamble = build_preamble(Tag.MESSAGE, [32 * mib] * 4, [8, 8, 8, 4096])
        socks = []
        for _ in range(args.connections):
            s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            s.sendall(client_banner() + preamble)
            socks.append(s)
        pushed = 0
        peak = rss0
        for s in socks:
            try:
                for _ in range(64):
                    s.sendall(bytes(mib))
                    pushed += mib
                    peak = max(peak, server.rss())
            except OSError:
                pass
        closed = sum(1 for s in socks if closed_within(s, 5.0) is not None)
        for s in socks:
            s.close()
        pre_growth = max(peak, server.rss()) - rss0
    finally:
        server.stop()
    log("pre-auth: %d connections declared 4 x 32 MiB MESSAGE frames and pushed %.0f MiB; %d closed at "
        "the preamble; server RSS +%.1f MiB", args.connections, pushed / mib, closed, pre_growth / mib)
    common.result("server RSS growth, %d pre-auth MESSAGE preambles" % args.connections, round(pre_growth / mib, 1),
                  "MiB", connections=args.connections, closed=closed, pushed_mib=round(pushed / mib, 1))

    # 2. a client that sends and never reads
    server = ServerProcess()
    try:
        client = SyncClient(server.port)
        client.handshake()
        time.sleep(0.5)
        rss0 = peak = server.rss()
        payload = bytes(mib)
        out = bytearray()
        for n in range(args.flood_mib):
            client.conn.send_message(GenericMessage(0x7FF0, struct.pack("<Q", n), data=payload))
            out += b"".join(client.conn.data_to_send())
        sock = client.sock
        sock.setblocking(False)
        sent = 0
        stalled = None
        while sent < len(out):
            _, w, _ = select.select([], [sock], [], 0.1)
            if w:
                sent += sock.send(out[sent:sent + mib])
                stalled = None
            elif stalled is None:
                stalled = time.monotonic()
            elif time.monotonic() - stalled > args.stall:
                break
            peak = max(peak, server.rss())
        held_at = sent
        while len(client.messages) < args.flood_mib:
            r, w, _ = select.select([sock], [sock] if sent < len(out) else [], [], 1.0)
            if r:
                data = sock.recv(mib)
                if not data:
                    break
                client.feed(data, flush=False)
                out += b"".join(client.conn.data_to_send())
            if w:
                sent += sock.send(out[sent:sent + mib])
            peak = max(peak, server.rss())
        echoed = len(client.messages)
        client.close()
        growth = peak - rss0
    finally:
        server.stop()
    log("no-read: the server stopped reading after %.0f of %d MiB; RSS peak +%.1f MiB; %d of %d echoes came "
        "back once the client read", held_at / mib, args.flood_mib, growth / mib, echoed, args.flood_mib)
    common.result("server RSS growth, %d MiB to echo without reading" % args.flood_mib, round(growth / mib, 1),
                  "MiB", read_before_pause_mib=round(held_at / mib, 1), echoed=echoed)

    # 3. a burst of connects against a stopped server
    server = ServerProcess()
    socks = []
    try:
        os.kill(server.pid, signal.SIGSTOP)
        for _ in range(args.burst):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", server.port))
            socks.append(s)
        time.sleep(0.5)
        queued = 0
        for s in socks:
            _, w, _ = select.select([], [s], [], 0)
            if w and s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                queued += 1
    finally:
        os.kill(server.pid, signal.SIGCONT)
        for s in socks:
            s.close()
        server.stop()
    log("burst: %d connects at once to a stopped server: the listen backlog held %d", args.burst, queued)
    common.result("connects held by the listen backlog, burst of %d" % args.burst, queued, "connections")
    print("hostile: pre-auth preambles +%.1f MiB, %d MiB unread echo +%.1f MiB, backlog held %d of %d connects"
          % (pre_growth / mib, args.flood_mib, growth / mib, queued, args.burst))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--count", type=int, default=10000)
    p.add_argument("--procs", type=int, default=2)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--warm", type=int, default=50)
    p.add_argument("--auth", default="cephx")
    p.add_argument("--mode", default="secure")
    p.add_argument("--hostile", action="store_true", help="measure hostile and slow peers instead")
    p.add_argument("--connections", type=int, default=10)
    p.add_argument("--flood-mib", type=int, default=512)
    p.add_argument("--stall", type=float, default=2.0)
    p.add_argument("--burst", type=int, default=1000)
    args = p.parse_args(argv)
    if args.hostile:
        hostile(args)
    else:
        main_all(args)


if __name__ == "__main__":
    main()
