"""
The librados side of bench/ceph.py.  Runs in Debian's /usr/bin/python3
(python3-rados), not in the project's venv; times its own loops and prints
one JSON object on stdout.

    /usr/bin/python3 bench/librados_probe.py CONF KEYRING --connects 15 --seconds 3 [--mode secure]
"""

import argparse
import json
import sys
import time

import rados


def make(conf, keyring, mode):
    return rados.Rados(conffile=conf, name="client.admin",
                       conf={"keyring": keyring, "ms_client_mode": mode, "ms_mon_client_mode": mode,
                             "ms_service_mode": mode, "ms_cluster_mode": mode})


def main():
    p = argparse.ArgumentParser()
    p.add_argument("conf")
    p.add_argument("keyring")
    p.add_argument("--connects", type=int, default=15)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--mode", default="secure")
    a = p.parse_args()

    connect_times = []
    for _ in range(a.connects):
        r = make(a.conf, a.keyring, a.mode)
        t = time.perf_counter()
        r.connect()
        connect_times.append(time.perf_counter() - t)
        r.shutdown()

    r = make(a.conf, a.keyring, a.mode)
    r.connect()
    cmd = json.dumps({"prefix": "version"})
    for _ in range(20):  # warm-up
        ret, out, err = r.mon_command(cmd, b"")
        assert ret == 0, (ret, err)
    n = 0
    t0 = time.perf_counter()
    deadline = t0 + a.seconds
    while True:
        ret, out, err = r.mon_command(cmd, b"")
        n += 1
        now = time.perf_counter()
        if now >= deadline:
            break
    elapsed = now - t0
    r.shutdown()
    json.dump({"connect_s": connect_times, "commands": n, "seconds": elapsed, "cmd/s": n / elapsed,
               "version_output": out.decode("utf-8", "replace").strip()}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
