"""
Small messages: 4 KiB messages echoed by a server, 16 in flight, client and
server in two processes on loopback: msgr2tx (cephx; crc and secure, rev1;
the server is msgr2tx's own EchoReceiver) against a plain Twisted echo of
4 KiB Int32StringReceiver frames with 16 in flight, in the same run.

    python bench/small.py [--seconds 2.5]
    python bench/small.py server --kind msgr2tx --keyring K
    python bench/small.py client --kind msgr2tx --port P --mode secure --keyring K

Figure: echoed messages per second (round trips completed), counted after a
0.3 s warm-up.
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
from common import HOST, T_SMALL, log  # noqa: E402

SIZE = 4096
WINDOW = 16
#: issue 13's targets, ratios to the Twisted echo of the same run
TARGETS = {"crc": 0.7, "secure": 0.55}
WARMUP = 0.3


class Counter:
    """Counts echoes after the warm-up; stops sending at the deadline."""

    def __init__(self, seconds):
        self.seconds = seconds
        self.count = 0
        self.t0 = None
        self.t_end = None
        self.deadline = None

    def start(self):
        now = time.perf_counter()
        self.warm_until = now + WARMUP
        self.deadline = self.warm_until + self.seconds

    def echoed(self):
        """One echo arrived: True to send another."""
        now = time.perf_counter()
        if now < self.warm_until:
            return True
        if self.t0 is None:
            self.t0 = now
            return True
        if now >= self.deadline:
            if self.t_end is None:
                self.t_end = now
            return False
        self.count += 1
        return True

    def summary(self):
        seconds = self.t_end - self.t0
        return {"messages": self.count, "seconds": seconds, "msg/s": self.count / seconds,
                "MB/s": self.count * SIZE / seconds / 1e6}


# ---- plain Twisted -----------------------------------------------------------------

def twisted_server(reactor):
    from twisted.internet.protocol import Factory
    from twisted.protocols.basic import Int32StringReceiver

    class Echo(Int32StringReceiver):
        def connectionMade(self):
            common.tune(self.transport)

        def stringReceived(self, data):
            self.sendString(data)

    return reactor.listenTCP(0, Factory.forProtocol(Echo), interface=HOST)


def twisted_client(reactor, port, seconds):
    from twisted.internet import defer
    from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
    from twisted.protocols.basic import Int32StringReceiver

    done = defer.Deferred()
    counter = Counter(seconds)
    payload = bytes(SIZE)

    class Client(Int32StringReceiver):
        def connectionMade(self):
            common.tune(self.transport)
            self.inflight = WINDOW
            counter.start()
            for _ in range(WINDOW):
                self.sendString(payload)

        def stringReceived(self, data):
            self.inflight -= 1
            if counter.echoed():
                self.inflight += 1
                self.sendString(payload)
            elif self.inflight == 0:
                self.transport.loseConnection()
                done.callback(counter.summary())

    connectProtocol(TCP4ClientEndpoint(reactor, HOST, port), Client())
    return done


# ---- msgr2tx --------------------------------------------------------------------------

def msgr2tx_server(reactor, keyring):
    from msgr2tx.factory import Msgr2ServerFactory
    from msgr2tx.services import EchoReceiver

    factory = Msgr2ServerFactory(common.server_auth("cephx", keyring), EchoReceiver(),
                                 common.server_config())
    factory.protocol = common.tuned_protocol_class()
    return reactor.listenTCP(0, factory, interface=HOST)


async def msgr2tx_client(reactor, port, seconds, mode, rev, keyring):
    from twisted.internet import defer
    from twisted.internet.endpoints import TCP4ClientEndpoint

    from msgr2tx.core.messages import GenericMessage
    from msgr2tx.factory import Msgr2ClientFactory

    done = defer.Deferred()
    counter = Counter(seconds)
    payload = bytes(SIZE)
    state = {"inflight": 0}

    class Receiver:
        def connectionReady(self, protocol, info):
            pass

        def connectionLost(self, protocol, reason):
            pass

        def messageReceived(self, protocol, message):
            if message.TYPE != T_SMALL:
                return
            state["inflight"] -= 1
            if counter.echoed():
                state["inflight"] += 1
                protocol.sendMessage(GenericMessage(T_SMALL, data=payload))
            elif state["inflight"] == 0 and not done.called:
                done.callback(counter.summary())

    factory = Msgr2ClientFactory(common.client_auth("cephx", keyring), common.client_config(mode, rev),
                                 receiver=Receiver(), reactor=reactor)
    factory.protocol = common.tuned_protocol_class()
    protocol = await TCP4ClientEndpoint(reactor, HOST, port).connect(factory)
    info = await protocol.whenReady()
    assert info.mode_name == mode, info
    counter.start()
    for _ in range(WINDOW):
        state["inflight"] += 1
        protocol.sendMessage(GenericMessage(T_SMALL, data=payload))
    out = await done
    protocol.close()
    return out


# ---- roles -----------------------------------------------------------------------------

def run_server(args):
    common.install_reactor(args.reactor)
    from twisted.internet import reactor
    log("%s server: reactor %s", os.path.basename(__file__), common.reactor_name())
    port = twisted_server(reactor) if args.kind == "twisted" else msgr2tx_server(reactor, args.keyring)
    common.exit_on_stdin_eof(reactor)
    common.emit("LISTENING %d" % port.getHost().port)
    reactor.run()


def run_client(args):
    common.install_reactor(args.reactor)
    from twisted.internet import defer, task
    out = {}

    def main(reactor):
        if args.kind == "twisted":
            d = twisted_client(reactor, args.port, args.seconds)
        else:
            d = defer.ensureDeferred(msgr2tx_client(reactor, args.port, args.seconds, args.mode,
                                                    args.rev, args.keyring))
        out["reactor"] = common.reactor_name()
        return d.addCallback(out.update)

    try:
        task.react(main)
    except SystemExit as e:
        if e.code:
            raise
    common.emit("RAW " + json.dumps(out))


def measure(kind, seconds, keyring, mode="crc", rev=1, reactor="default"):
    server = common.spawn([__file__, "server", "--kind", kind, "--keyring", keyring, "--reactor", reactor])
    try:
        port = common.read_line(server, "LISTENING")
        client = common.spawn([__file__, "client", "--kind", kind, "--port", port, "--mode", mode,
                               "--rev", str(rev), "--seconds", str(seconds), "--keyring", keyring,
                               "--reactor", reactor])
        try:
            return json.loads(common.read_line(client, "RAW", timeout=seconds + 60))
        finally:
            common.stop(client)
    finally:
        common.stop(server)


def main_all(args):
    scratch = tempfile.mkdtemp(prefix="msgr2tx-bench-")
    keyring = common.make_keyring(os.path.join(scratch, "keyring"))
    log("small: plain Twisted echo (4 KiB, window 16, %.1fs)", args.seconds)
    floor = measure("twisted", args.seconds, keyring, reactor=args.reactor)
    log("small: Twisted echo %.0f msg/s", floor["msg/s"])
    common.result("small Twisted echo", round(floor["msg/s"]), "msg/s", raw=floor)
    records = []
    for mode in ("crc", "secure"):
        log("small: msgr2tx %s rev1 (%.1fs)", mode, args.seconds)
        raw = measure("msgr2tx", args.seconds, keyring, mode, 1, args.reactor)
        log("small: msgr2tx %s %.0f msg/s", mode, raw["msg/s"])
        records.append(common.result(
            "small 4KiB w16 %s rev1" % mode, round(raw["msg/s"]), "msg/s",
            ratio=round(raw["msg/s"] / floor["msg/s"], 3), baseline=round(floor["msg/s"]),
            baseline_name="Twisted echo", target="\u2265 %.2fx Twisted echo" % TARGETS[mode], raw=raw))
    shutil.rmtree(scratch, ignore_errors=True)
    print("; ".join("%s %.0f msg/s = %.2fx Twisted echo" % (r["name"], r["value"], r["ratio"])
                    for r in records) + " (Twisted echo %.0f msg/s)" % floor["msg/s"])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("role", nargs="?", choices=("all", "server", "client"), default="all")
    p.add_argument("--kind", choices=("msgr2tx", "twisted"), default="msgr2tx")
    p.add_argument("--port", type=int)
    p.add_argument("--mode", default="crc")
    p.add_argument("--rev", type=int, default=1)
    p.add_argument("--seconds", type=float, default=2.5)
    p.add_argument("--keyring")
    common.add_reactor_option(p)
    args = p.parse_args(argv)
    {"all": main_all, "server": run_server, "client": run_client}[args.role](args)


if __name__ == "__main__":
    main()
