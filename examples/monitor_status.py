#!/usr/bin/env python3
"""
A Twisted application that runs a monitor command every second with
MonClient, for a number of iterations, printing one JSON line per answer.

    python examples/monitor_status.py --mon v2:127.0.0.1:3300 --count 5
    python examples/monitor_status.py --mon v2:10.0.0.1:3300 --auth cephx \\
        --keyring /etc/ceph/ceph.client.admin.keyring --command '{"prefix": "df", "format": "json"}'

The client is a ReconnectingClient, so a monitor restart in the middle only
delays the next answer.  Exit code 0 when every command returned 0, 1 when
one failed or the monitor could not be reached in time, 2 for bad usage.
"""

import argparse
import json
import sys

from twisted.application.service import MultiService, Service
from twisted.internet import defer, task
from twisted.internet.task import LoopingCall

from msgr2tx.auth import makeClientHandler
from msgr2tx.client import ReconnectingClient
from msgr2tx.core.config import ConnectionConfig
from msgr2tx.core.encoding import EntityName
from msgr2tx.clients.monclient import MonClient
from msgr2tx.core.constants import AuthMethod
from msgr2tx.errors import AuthBadMethod, AuthError


class CommandPoller(Service):
    """Run one monitor command every `interval` seconds, `count` times."""

    def __init__(self, monclient, command, count, interval, clock):
        self.monclient = monclient
        self.command = command
        self.count = count
        self.interval = interval
        self.clock = clock
        self.answers = 0
        self.failures = 0
        self.busy = False
        #: fires when `count` answers have arrived
        self.done = defer.Deferred()
        self.loop = LoopingCall(self.tick)
        self.loop.clock = clock

    def startService(self):
        super().startService()
        self.loop.start(self.interval, now=True)

    def stopService(self):
        super().stopService()
        if self.loop.running:
            self.loop.stop()

    def tick(self):
        if self.busy:  # the previous command is still waiting (e.g. during a reconnect)
            return
        self.busy = True
        started = self.clock.seconds()
        d = self.monclient.command(self.command)
        d.addCallbacks(self.answered, self.failed, callbackArgs=(started,))
        d.addBoth(self.idle)

    def answered(self, answer, started):
        result, status, output = answer
        text = output.decode("utf-8", "replace")
        try:
            parsed = json.loads(text) if text.strip() else None
        except ValueError:
            parsed = text
        self.answers += 1
        if result != 0:
            self.failures += 1
        print(json.dumps({"iteration": self.answers, "result": result, "status": status,
                          "seconds": round(self.clock.seconds() - started, 4), "output": parsed}), flush=True)
        if self.answers >= self.count and not self.done.called:
            self.done.callback(self.failures)

    def failed(self, failure):
        if not self.done.called:
            self.done.errback(failure)

    def idle(self, _):
        self.busy = False


async def run(reactor, args, command):
    name = EntityName.parse(args.name)
    spec = args.auth
    if args.keyring and spec.startswith("cephx") and "keyring=" not in spec:
        spec += ":keyring=" + args.keyring
    handler = makeClientHandler(spec, name=name)
    config = ConnectionConfig(entity_type=name.type, name=name)
    monclient = MonClient(resend_on_reconnect=True, clock=reactor)
    client = ReconnectingClient(reactor, args.mon, [handler], config, receiver=monclient, timeout=args.timeout)
    poller = CommandPoller(monclient, command, args.count, args.interval, reactor)

    # a refused login will not get better by reconnecting: stop at once and say so
    new_protocol = client.factory.onProtocol

    def watch(protocol):
        new_protocol(protocol)

        def refused(failure):
            if failure.check(AuthError) and not poller.done.called:
                poller.done.errback(failure)
        protocol.whenReady().addErrback(refused)
    client.factory.onProtocol = watch

    app = MultiService()
    client.setServiceParent(app)
    poller.setServiceParent(app)
    app.startService()
    deadline = reactor.callLater(args.timeout + args.count * args.interval, poller.done.cancel)
    try:
        failures = await poller.done
    except defer.CancelledError:
        print("monitor_status: error: no answer from %s in time" % args.mon, file=sys.stderr)
        return 1
    except AuthError as e:
        hint = ""
        if isinstance(e, AuthBadMethod) and AuthMethod.CEPHX in e.allowed_methods and args.auth == "none":
            hint = ": give --auth cephx --keyring PATH"
        print("monitor_status: error: the monitor at %s refused our login: %s%s" % (args.mon, e, hint),
              file=sys.stderr)
        return 1
    except Exception as e:
        print("monitor_status: error: %s: %s" % (type(e).__name__, e), file=sys.stderr)
        return 1
    finally:
        if deadline.active():
            deadline.cancel()
        await app.stopService()
    return 1 if failures else 0


def main(argv=None):
    parser = argparse.ArgumentParser(description="run a monitor command every second")
    parser.add_argument("--mon", required=True, help="monitor address, e.g. v2:127.0.0.1:3300")
    parser.add_argument("--command", default='{"prefix": "status", "format": "json"}',
                        help="the command as JSON (default: status)")
    parser.add_argument("--count", type=int, default=5, help="iterations (default 5)")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between commands (default 1)")
    parser.add_argument("--auth", default="none", help="none or cephx")
    parser.add_argument("--keyring", help="keyring with our key (cephx)")
    parser.add_argument("--name", default="client.admin", help="our entity name")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the monitor")
    args = parser.parse_args(argv)
    try:
        command = json.loads(args.command)
    except ValueError as e:
        parser.error("--command is not JSON: %s" % e)
    if args.count < 1 or args.interval <= 0:
        parser.error("--count must be at least 1 and --interval positive")

    async def start(reactor):
        code = await run(reactor, args, command)
        if code:
            raise SystemExit(code)  # task.react exits with it

    task.react(lambda reactor: defer.ensureDeferred(start(reactor)))


if __name__ == "__main__":
    main()
