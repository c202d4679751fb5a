"""
Small messages through two cores, no sockets: a cephx-authenticated client
and server core (msgr2tx.testing.CorePair, msgr2.1) exchange batches of 16
messages of 4 KiB (data segment), the server echoing each one, in one
process.  This is the per-message work of msgr2tx's core alone (framing,
crc or AES-GCM, headers, message objects), without Twisted and the kernel.

    python bench/small_core.py [--mode crc|secure] [--rounds 2000]

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
    from msgr2tx.core import events as E
    from msgr2tx.core.messages import GenericMessage
    from msgr2tx.testing import CorePair

    scratch = tempfile.mkdtemp(prefix="msgr2tx-bench-")
    keyring = common.make_keyring(os.path.join(scratch, "keyring"))
    pair = CorePair(common.client_auth("cephx", keyring), common.server_auth("cephx", keyring),
                    client_config=common.client_config(args.mode), server_config=common.server_config())
    pair.handshake()
    shutil.rmtree(scratch, ignore_errors=True)
    client, server = pair.client, pair.server
    payload = bytes(SIZE)

    def run(rounds):
        echoed = 0
        for _ in range(rounds):
            for _ in range(WINDOW):
                client.send_message(GenericMessage(common.T_SMALL, data=payload))
            for event in server.receive_data(b"".join(client.data_to_send())):
                if type(event) is E.MessageReceived:
                    event.message.seq = 0
                    server.send_message(event.message)
            server.send_ack()
            for event in client.receive_data(b"".join(server.data_to_send())):
                if type(event) is E.MessageReceived:
                    echoed += 1
        return echoed

    run(50)
    best = None
    for _ in range(5):
        t = time.process_time()
        echoed = run(args.rounds // 5)
        us = (time.process_time() - t) / echoed * 1e6
        best = us if best is None else min(best, us)
    common.result("small 4KiB core %s rev1 CPU per echo" % args.mode, round(best, 2), "us")
    print("core alone, %s rev1: %.1f us CPU per echoed 4 KiB message (both sides, best of 5)" % (args.mode, best))


if __name__ == "__main__":
    main()
