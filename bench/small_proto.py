"""
Small messages through two Msgr2Protocols, no sockets, no reactor: a
cephx-authenticated client and server protocol (msgr2.1, the server running
msgr2tx's own EchoReceiver) joined by two in-memory transports, the client
keeping 16 messages of 4 KiB (data segment) in flight as bench/small.py's
client does.  This is the Python of one echo on both sides (the core, the
Twisted layer's dispatch and sendMessage, the receivers), without the
event loop and the kernel: between bench/small_core.py (the core alone)
and bench/small_cpu.py (everything).

    python bench/small_proto.py [--mode crc|secure] [--rounds 2000]

Figure: microseconds of CPU (process time) per echoed message, both sides
added, the best of 5 runs; not part of ``make bench``.
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

WINDOW = 16
SIZE = 4096


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", choices=("crc", "secure"), default="crc")
    p.add_argument("--rounds", type=int, default=2000)
    args = p.parse_args(argv)
    from twisted.internet import task
    from twisted.internet.address import IPv4Address
    from twisted.internet.testing import StringTransport

    from msgr2tx.core.messages import GenericMessage
    from msgr2tx.factory import Msgr2ClientFactory, Msgr2ServerFactory
    from msgr2tx.services import EchoReceiver

    payload = bytes(SIZE)
    echoed = [0]

    class Receiver:
        def connectionReady(self, protocol, info):
            pass

        def connectionLost(self, protocol, reason):
            pass

        def messageReceived(self, protocol, message):
            if message.TYPE == common.T_SMALL:
                echoed[0] += 1
                protocol.sendMessage(GenericMessage(common.T_SMALL, data=payload))

    scratch = tempfile.mkdtemp(prefix="msgr2tx-bench-")
    keyring = common.make_keyring(os.path.join(scratch, "keyring"))
    clock = task.Clock()
    server_factory = Msgr2ServerFactory(common.server_auth("cephx", keyring), EchoReceiver(),
                                        common.server_config())
    client_factory = Msgr2ClientFactory(common.client_auth("cephx", keyring), common.client_config(args.mode),
                                        receiver=Receiver(), reactor=clock)
    client_addr = IPv4Address("TCP", common.HOST, 40000)
    server_addr = IPv4Address("TCP", common.HOST, 6789)
    server = server_factory.buildProtocol(client_addr)
    client = client_factory.buildProtocol(server_addr)
    server_transport = StringTransport(hostAddress=server_addr, peerAddress=client_addr)
    client_transport = StringTransport(hostAddress=client_addr, peerAddress=server_addr)
    server.makeConnection(server_transport)
    client.makeConnection(client_transport)

    def shuttle():
        data = client_transport.value()
        if data:
            client_transport.clear()
            server.dataReceived(data)
        data = server_transport.value()
        if data:
            server_transport.clear()
            client.dataReceived(data)

    for _ in range(100):
        shuttle()
        clock.advance(0.01)
    shutil.rmtree(scratch, ignore_errors=True)
    if client.info is None or client.info.mode_name != args.mode:
        raise SystemExit("no READY in %s mode: %r" % (args.mode, client.info))
    for _ in range(WINDOW):
        client.sendMessage(GenericMessage(common.T_SMALL, data=payload))
    for _ in range(200):
        shuttle()
    best = None
    for _ in range(5):
        echoed[0] = 0
        t = time.process_time()
        for _ in range(args.rounds // 5):
            shuttle()
        us = (time.process_time() - t) / echoed[0] * 1e6
        best = us if best is None else min(best, us)
    common.result("small 4KiB protocols %s rev1 CPU per echo" % args.mode, round(best, 2), "us")
    print("protocols and core, %s rev1: %.1f us CPU per echoed 4 KiB message (both sides, best of 5)"
          % (args.mode, best))


if __name__ == "__main__":
    main()
