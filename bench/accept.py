"""
Server accept rate: complete cephx + secure handshakes per second that one
msgr2tx server process accepts from many concurrent msgr2tx clients in
--procs other processes (--concurrency connections in flight each).  Every
client connection runs the full handshake (banner, HELLO, cephx in two
round trips, AUTH_SIGNATURE, CLIENT_IDENT/SERVER_IDENT) to READY and is then
closed.  The CPU use of the server and the client processes over the same
window tells which side saturates.

    python bench/accept.py [--seconds 3] [--procs 2] [--concurrency 16]

The client role (``accept.py client ...``) is also used by bench/memory.py
to hold many idle connections open.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import HOST, log  # noqa: E402

NOFILE = 16384


def run_server(args):
    from twisted.internet import reactor

    from msgr2tx.factory import Msgr2ServerFactory

    common.raise_nofile(NOFILE)

    class Count:
        ready = 0

        def connectionReady(self, protocol, info):
            self.ready += 1

        def connectionLost(self, protocol, reason):
            pass

        def messageReceived(self, protocol, message):
            pass

    factory = Msgr2ServerFactory(common.server_auth(args.auth, args.keyring), Count(),
                                 common.server_config([args.mode]), handshake_timeout=120)
    port = reactor.listenTCP(0, factory, interface=HOST, backlog=4096)
    common.exit_on_stdin_eof(reactor)
    if args.server_profile:
        import cProfile
        prof = cProfile.Profile()
        prof.enable()
        reactor.addSystemEventTrigger("after", "shutdown", lambda: prof.dump_stats(args.server_profile))
    common.emit("LISTENING %d" % port.getHost().port)
    reactor.run()


def run_client(args):
    """churn: connect, READY, close, for --seconds; hold: open --count and keep them."""
    from twisted.internet import defer, stdio, task
    from twisted.internet.protocol import Protocol

    from msgr2tx.client import connect

    common.raise_nofile(NOFILE)
    config = common.client_config(args.mode, 1)
    addr = "v2:%s:%d" % (HOST, args.port)
    go = defer.Deferred()
    eof = defer.Deferred()

    class Control(Protocol):
        def dataReceived(self, data):
            if b"GO" in data and not go.called:
                go.callback(None)

        def connectionLost(self, reason):
            if not go.called:
                go.callback(None)
            eof.callback(None)

    async def one(reactor):
        return await connect(reactor, addr, common.client_auth(args.auth, args.keyring), config,
                             timeout=120)

    async def churn(reactor):
        state = {"n": 0, "t0": None, "stop": False, "errors": 0}
        warm_until = time.perf_counter() + args.warmup
        deadline = warm_until + args.seconds

        async def worker():
            while not state["stop"]:
                try:
                    p = await one(reactor)
                except Exception:
                    state["errors"] += 1
                    continue
                p.close()
                now = time.perf_counter()
                if now >= deadline:
                    state["stop"] = True
                    if "t1" not in state:
                        state["t1"] = now
                        state["cpu1"] = common.cpu_seconds()
                elif now >= warm_until:
                    if state["t0"] is None:
                        state["t0"] = now
                        state["cpu0"] = common.cpu_seconds()
                        common.emit("WARM")
                    else:
                        state["n"] += 1

        await defer.gatherResults([defer.ensureDeferred(worker()) for _ in range(args.concurrency)])
        seconds = state["t1"] - state["t0"]
        return {"handshakes": state["n"], "seconds": seconds, "rate": state["n"] / seconds,
                "errors": state["errors"], "cpu": (state["cpu1"] - state["cpu0"]) / seconds}

    async def hold(reactor):
        for _ in range(args.warm):
            (await one(reactor)).close()
        common.emit("WARM")
        await go
        held = []
        started = time.perf_counter()
        pending = iter(range(args.count))

        async def worker():
            for _ in pending:
                held.append(await one(reactor))

        await defer.gatherResults([defer.ensureDeferred(worker()) for _ in range(args.concurrency)])
        common.emit("OPEN %d %.3f" % (len(held), time.perf_counter() - started))
        await eof
        for p in held:
            p.abort()
        return {"held": len(held)}

    out = {}

    def main(reactor):
        stdio.StandardIO(Control(), stdout=os.open(os.devnull, os.O_WRONLY))
        fn = churn if args.role == "client" else hold
        return defer.ensureDeferred(fn(reactor)).addCallback(out.update)

    try:
        task.react(main)
    except SystemExit as e:
        if e.code:
            raise
    common.emit("RAW " + json.dumps(out))


def main_all(args):
    scratch = tempfile.mkdtemp(prefix="msgr2tx-bench-")
    keyring = common.make_keyring(os.path.join(scratch, "keyring"))
    server = common.spawn([__file__, "server", "--keyring", keyring, "--mode", "secure", "--auth", "cephx"]
                          + (["--server-profile", args.server_profile] if args.server_profile else []))
    clients = []
    try:
        port = common.read_line(server, "LISTENING")
        log("accept: %d client processes x %d concurrent handshakes (cephx, secure), %.1fs",
            args.procs, args.concurrency, args.seconds)
        for _ in range(args.procs):
            clients.append(common.spawn([__file__, "client", "--port", port, "--keyring", keyring,
                                         "--mode", "secure", "--auth", "cephx", "--seconds", str(args.seconds),
                                         "--concurrency", str(args.concurrency)]))
        for c in clients:
            common.read_line(c, "WARM", timeout=60)
        s_cpu0, s_t0 = common.cpu_seconds(server.pid), time.perf_counter()
        raws = [json.loads(common.read_line(c, "RAW", timeout=args.seconds + 60)) for c in clients]
        s_cpu = (common.cpu_seconds(server.pid) - s_cpu0) / (time.perf_counter() - s_t0)
    finally:
        for c in clients:
            common.stop(c)
        common.stop(server)
        shutil.rmtree(scratch, ignore_errors=True)
    rate = sum(r["rate"] for r in raws)
    c_cpu = sum(r["cpu"] for r in raws)
    errors = sum(r["errors"] for r in raws)
    ncpu = os.cpu_count()
    s_ms = s_cpu / rate * 1e3 if rate else None       # server CPU ms per handshake
    c_ms = c_cpu / rate * 1e3 if rate else None       # client CPU ms per handshake
    if s_cpu >= 0.9:
        saturated = "server (a full core)"
    elif s_cpu + c_cpu >= 0.8 * ncpu:
        saturated = ("the machine: server + clients use %.0f%% of %d cores; clients need %.2f ms CPU per "
                     "handshake, the server %.2f ms" % ((s_cpu + c_cpu) * 100, ncpu, c_ms, s_ms))
    else:
        saturated = "neither (latency-bound; raise --concurrency)"
    ceiling = 1e3 / s_ms if s_ms else None
    log("accept: %.0f handshakes/s; server CPU %.0f%%, clients CPU %.0f%% (of one core)",
        rate, s_cpu * 100, c_cpu * 100)
    rec = common.result("server accept rate (cephx, secure)", round(rate), "handshakes/s",
                        ratio=round(rate / 500, 3), baseline=500, baseline_name="500/s target",
                        target="\u2265 500 handshakes/s", server_cpu=round(s_cpu, 3),
                        clients_cpu=round(c_cpu, 3), server_cpu_ms_per_handshake=round(s_ms, 3),
                        client_cpu_ms_per_handshake=round(c_ms, 3),
                        server_bound_ceiling=round(ceiling), saturated=saturated, errors=errors,
                        procs=args.procs, concurrency=args.concurrency, raw=raws)
    common.result("server CPU per accepted handshake (cephx, secure)", round(s_ms, 3), "ms",
                  ratio=round(s_ms / 1.0, 3), baseline=1.0, baseline_name="1.0 ms target",
                  target="\u2264 1.0 ms")
    print("server accept %.0f handshakes/s (%.2fx the 500/s target); server CPU %.0f%% = %.2f ms/handshake "
          "(a full core would give %.0f/s); %d client processes CPU %.0f%% = %.2f ms/handshake; saturated: %s"
          % (rate, rate / 500, s_cpu * 100, s_ms, ceiling, args.procs, c_cpu * 100, c_ms, saturated))
    return rec


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("role", nargs="?", choices=("all", "server", "client", "hold"), default="all")
    p.add_argument("--port", type=int)
    p.add_argument("--keyring")
    p.add_argument("--auth", default="cephx")
    p.add_argument("--mode", default="secure")
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--warmup", type=float, default=0.5)
    p.add_argument("--procs", type=int, default=2)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--server-profile", metavar="FILE", help="run the server under cProfile, stats to FILE")
    p.add_argument("--count", type=int, default=5000, help="hold: connections to open")
    p.add_argument("--warm", type=int, default=50, help="hold: connections opened and closed first")
    args = p.parse_args(argv)
    {"all": main_all, "server": run_server, "client": run_client, "hold": run_client}[args.role](args)


if __name__ == "__main__":
    main()
