#!/usr/bin/env python3
"""
An msgr2 echo server embedded in a program with Msgr2ServerService.

    python examples/echo_server.py --listen tcp:3300:interface=127.0.0.1

It prints "listening on v2:HOST:PORT" once it listens (use tcp:0:... for a
free port), echoes every message back to its sender, and on SIGINT or
SIGTERM stops listening, closes every connection cleanly, prints
"stopped after closing N connection(s)" and exits 0.  Try it with
"msgr2tx ping v2:127.0.0.1:3300" or "msgr2tx echo-test --target ...".
"""

import argparse
import sys

from twisted.application.service import MultiService
from twisted.internet import reactor

from msgr2tx.auth import makeServerHandler
from msgr2tx.core.config import ConnectionConfig
from msgr2tx.core.encoding import EntityName, EntityType
from msgr2tx.service import Msgr2ServerService
from msgr2tx.services import EchoReceiver


def main(argv=None):
    parser = argparse.ArgumentParser(description="msgr2 echo server")
    parser.add_argument("--listen", action="append", default=[],
                        help="server endpoint string (repeatable; default tcp:3300:interface=127.0.0.1)")
    parser.add_argument("--auth", default="none", help="server auth method, e.g. none or cephx:keyring=PATH")
    parser.add_argument("--lossless", action="store_true", help="grant lossless sessions to clients that ask")
    args = parser.parse_args(argv)

    config = ConnectionConfig(entity_type=EntityType.MON, name=EntityName(EntityType.MON, "a"),
                              entity_num=0, lossy=not args.lossless)
    server = Msgr2ServerService(args.listen or ["tcp:3300:interface=127.0.0.1"],
                                [makeServerHandler(args.auth)], EchoReceiver(), config, close_timeout=5.0)
    # the application's service tree: more services would go here too
    top = MultiService()
    server.setServiceParent(top)

    def listening(ports):
        for port in ports:
            host = port.getHost()
            print("listening on v2:%s:%d" % (host.host, host.port), flush=True)

    def could_not_listen(failure):
        print("echo_server: error: %s" % failure.getErrorMessage(), file=sys.stderr)
        exit_code[0] = 1
        reactor.stop()

    exit_code = [0]

    def stop():
        count = len(server.openProtocols)
        d = top.stopService()
        d.addCallback(lambda _: print("stopped after closing %d connection(s)" % count, flush=True))
        return d

    def start():
        top.startService()
        server.whenListening().addCallbacks(listening, could_not_listen)

    reactor.callWhenRunning(start)
    # reactor.stop() (SIGINT, SIGTERM) waits for this Deferred: the clean close
    reactor.addSystemEventTrigger("before", "shutdown", stop)
    reactor.run()
    return exit_code[0]


if __name__ == "__main__":
    sys.exit(main())
