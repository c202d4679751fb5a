"""
Small messages, CPU per message: the processor time (user + system, from
the kernel's accounting of each child process) that the server and the
client of ``bench/small.py`` spend per echoed 4 KiB message, for the plain
Twisted echo and msgr2tx in crc and secure mode (cephx, rev1).

Each pair of processes runs twice, for ``--short`` and ``--long`` seconds;
the difference between the two runs' CPU times over the difference of
their message counts is the marginal cost of one echo, without start-up,
imports and the handshake.  Unlike the messages per second of
``bench/small.py``, this figure hardly moves when other processes compete
for the cores (it counts the work, not the waiting for a core), which makes
it the steadier comparison on a busy machine.  It is not part of
``make bench``.

    python bench/small_cpu.py [--short 1] [--long 4] [--repeat 3]

Figure: microseconds of CPU per echoed message, server and client added;
ratio: the Twisted echo's figure over msgr2tx's (1.0 = as cheap as the
plain echo), medians over ``--repeat`` rounds.
"""

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import log  # noqa: E402

SMALL = os.path.join(common.HERE, "small.py")


def run_pair(kind, mode, seconds, keyring):
    """One server and one client of small.py; returns (messages, server CPU s, client CPU s)."""
    server = common.spawn([SMALL, "server", "--kind", kind, "--keyring", keyring])
    try:
        port = common.read_line(server, "LISTENING")
        client = common.spawn([SMALL, "client", "--kind", kind, "--port", port, "--mode", mode,
                               "--seconds", str(seconds), "--keyring", keyring])
        raw = json.loads(common.read_line(client, "RAW", timeout=seconds + 60))
        client.stdin.close()
        _, _, client_usage = os.wait4(client.pid, 0)
        client.returncode = 0
    finally:
        server.stdin.close()
        _, _, server_usage = os.wait4(server.pid, 0)
        server.returncode = 0
    # the counter runs for `seconds` after a 0.3 s warm-up at about the same rate
    messages = raw["msg/s"] * (seconds + 0.3)
    return (messages, server_usage.ru_utime + server_usage.ru_stime,
            client_usage.ru_utime + client_usage.ru_stime)


def marginal(kind, mode, short, long, keyring):
    """Microseconds of CPU per echoed message (server, client), start-up excluded."""
    n1, s1, c1 = run_pair(kind, mode, short, keyring)
    n2, s2, c2 = run_pair(kind, mode, long, keyring)
    n = n2 - n1
    return (s2 - s1) / n * 1e6, (c2 - c1) / n * 1e6


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--short", type=float, default=1.0)
    p.add_argument("--long", type=float, default=4.0)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args(argv)
    scratch = tempfile.mkdtemp(prefix="msgr2tx-bench-")
    keyring = common.make_keyring(os.path.join(scratch, "keyring"))
    kinds = (("twisted", "crc"), ("msgr2tx", "crc"), ("msgr2tx", "secure"))
    rounds = {k: [] for k in kinds}
    ratios = {k: [] for k in kinds[1:]}
    for i in range(args.repeat):
        for kind, mode in kinds:
            server, client = marginal(kind, mode, args.short, args.long, keyring)
            rounds[(kind, mode)].append(server + client)
            log("round %d %s %s: %.1f us CPU per echo (server %.1f, client %.1f)",
                i + 1, kind, mode, server + client, server, client)
        for k in kinds[1:]:
            ratios[k].append(rounds[kinds[0]][-1] / rounds[k][-1])
    shutil.rmtree(scratch, ignore_errors=True)
    floor = statistics.median(rounds[kinds[0]])
    common.result("small Twisted echo CPU per echo", round(floor, 1), "us")
    parts = []
    for kind, mode in kinds[1:]:
        value = statistics.median(rounds[(kind, mode)])
        r = ratios[(kind, mode)]
        common.result("small 4KiB w16 %s rev1 CPU per echo" % mode, round(value, 1), "us",
                      ratio=round(statistics.median(r), 3), baseline=round(floor, 1),
                      baseline_name="Twisted echo CPU per echo", ratio_range=[round(min(r), 3), round(max(r), 3)])
        parts.append("%s %.1f us CPU per echo = %.2fx Twisted echo (%.2f-%.2f)"
                     % (mode, value, statistics.median(r), min(r), max(r)))
    print("; ".join(parts) + " (Twisted echo %.1f us; medians of %d)" % (floor, args.repeat))


if __name__ == "__main__":
    main()
