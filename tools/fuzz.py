"""
Run the msgr2 mutation fuzzer (tests/fuzzing.py) for longer than CI does.

    python tools/fuzz.py --seconds 600                 # the cores, both roles, seed after seed
    python tools/fuzz.py --seconds 600 --live          # also a live echo server in a child process

A core case fails when feeding it raises anything but a typed ProtocolError.
A live case fails when the server keeps the connection open for more than
5 s after the peer's FIN; at the end the server must still be alive and
serving, with no traceback in its log.  The first failures are printed with
the seed and case number that reproduce them; the exit status is 1 if any.
"""

import argparse
import collections
import os
import socket
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from msgr2tx.core.connection import Role  # noqa: E402
from tests.fuzzing import Fuzzer, run_core_case  # noqa: E402
from tests.hostile import ServerProcess, SyncClient, closed_within  # noqa: E402


#: (stream, the core fed with it, lossless policies)
KINDS = [("c2s", Role.SERVER, False), ("s2c", Role.CLIENT, False), ("c2s-lossless", Role.SERVER, True),
         ("s2c-lossless", Role.CLIENT, True), ("c2s-reconnect", Role.SERVER, False)]


def core(seconds: float, seed: int, per_seed: int) -> int:
    deadline = time.monotonic() + seconds
    outcomes: collections.Counter = collections.Counter()
    failures = 0
    cases = 0
    while time.monotonic() < deadline:
        fuzzer = Fuzzer(seed)
        for n in range(per_seed):
            direction, role, lossless = KINDS[n % len(KINDS)]
            rev1, data, notes = fuzzer.case(direction)
            chunk = fuzzer.rnd.choice((None, 1, 7, 100, 4096))
            prime = fuzzer.prime[rev1] if direction == "c2s-reconnect" else None
            try:
                error = run_core_case(data, rev1, role, chunk, lossless=lossless, prime=prime)
            except Exception:
                failures += 1
                if failures <= 10:
                    print("FAIL seed %d case %d (%s, rev%d, chunk %s): %s\n%s"
                          % (seed, n, direction, rev1, chunk, notes, traceback.format_exc()))
                continue
            outcomes[type(error).__name__ if error is not None else "open"] += 1
            cases += 1
            if time.monotonic() > deadline:
                break
        seed += 1
    print("core: %d cases, %d failures, last seed %d: %s" % (cases, failures, seed - 1,
                                                             dict(outcomes.most_common())))
    return failures


def live(seconds: float, seed: int) -> int:
    log = tempfile.NamedTemporaryFile(prefix="msgr2tx-fuzz-", suffix=".log", delete=False).name
    server = ServerProcess(log_path=log, handshake_timeout=5.0)
    failures = 0
    cases = 0
    try:
        time.sleep(0.3)
        rss0 = server.rss()
        fuzzer = Fuzzer(seed, server_port=server.port)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            rev1, data, notes = fuzzer.case("c2s")
            s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            try:
                s.sendall(data)
                s.shutdown(socket.SHUT_WR)
            except OSError:
                pass  # the server closed first
            took = closed_within(s, 5.0)
            s.close()
            cases += 1
            if took is None:
                failures += 1
                print("FAIL live case %d (seed %d): open 5 s after FIN: %s" % (cases - 1, seed, notes))
            if not server.alive():
                print("FAIL the server died")
                return failures + 1
        client = SyncClient(server.port)
        client.handshake()
        client.close()
        rss1 = server.rss()
        text = server.log_text()
        for bad in ("Traceback", "Unhandled", "internal error"):
            if bad in text:
                failures += 1
                print("FAIL the server log has %r (%s)" % (bad, log))
        print("live: %d cases, %d failures; server RSS %.1f -> %.1f MiB%s"
              % (cases, failures, rss0 / 2**20, rss1 / 2**20, "; log %s" % log if failures else ""))
    finally:
        server.stop()
    if not failures:
        os.unlink(log)
    return failures


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--seed", type=int, default=int(time.time()))
    p.add_argument("--per-seed", type=int, default=2000, help="cases before moving to the next seed")
    p.add_argument("--live", action="store_true", help="also fuzz a live server for the same time")
    args = p.parse_args(argv)
    failures = core(args.seconds, args.seed, args.per_seed)
    if args.live:
        failures += live(args.seconds, args.seed)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
