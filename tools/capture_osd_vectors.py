"""
Capture the object requests the ``rados`` tool (librados) sends to a real
OSD and the OSD's replies, as known-answer vectors for tests/test_osd_ops.py.

Runs as root (a raw AF_PACKET socket on ``lo``): starts a monitor and a
memstore OSD of the given release (tests/cephlab.py), sniffs the OSD's
port while ``rados`` runs a few commands in crc mode, reassembles each TCP
stream, splits it into msgr2 frames and prints, per MESSAGE frame of type
osd_op (42) or osd_op_reply (43), the header version and the hex of its
front and data segments as JSON lines.

    python3 -m tools.capture_osd_vectors [pacific|reef|tentacle] > vectors.jsonl
"""

import json
import socket
import struct
import sys
import threading
import time

from msgr2tx.core.framing import FrameReader, ReceiveBuffer
from tests import cephlab

_MSG_HEADER2 = struct.Struct("<QQHHHIHQBHH")      # ceph_msg_header2


def sniff(port, stop, packets):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
    s.bind(("lo", 0))
    s.settimeout(0.2)
    while not stop.is_set():
        try:
            frame = s.recv(262144)
        except socket.timeout:
            continue
        ip = frame[14:]
        if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 6:
            continue
        ihl = (ip[0] & 15) * 4
        total = struct.unpack_from(">H", ip, 2)[0]
        tcp = ip[ihl:total]
        sport, dport, seq = struct.unpack_from(">HHI", tcp)
        off = (tcp[12] >> 4) * 4
        payload = tcp[off:]
        if payload and port in (sport, dport):
            packets.append((sport, dport, seq, bytes(payload)))
    s.close()


def streams(packets):
    by_dir = {}
    for sport, dport, seq, payload in packets:
        by_dir.setdefault((sport, dport), {})[seq] = payload
    out = {}
    for key, segs in by_dir.items():
        data = bytearray()
        for seq in sorted(segs):
            data += segs[seq]
        out[key] = bytes(data)
    return out


def messages(stream):
    if not stream.startswith(b"ceph v2\n"):
        return
    n = struct.unpack_from("<H", stream, 8)[0]
    supported = struct.unpack_from("<Q", stream, 10)[0]
    rest = stream[10 + n:]
    reader = FrameReader(rev1=bool(supported & 1))
    buf = ReceiveBuffer()
    buf.append(rest)
    while True:
        frame = reader.next_frame(buf)
        if frame is None:
            return
        if frame.tag == 17:         # MESSAGE
            segs = [bytes(s) for s in frame.segments] + [b""] * 4
            head = _MSG_HEADER2.unpack_from(segs[0])
            yield {"type": head[2], "version": head[4], "compat": head[9], "tid": head[1],
                   "priority": head[3], "data_off": head[6],
                   "front": segs[1].hex(), "data": segs[3].hex()}


def main(argv):
    release = argv[1] if len(argv) > 1 else "pacific"
    mon = cephlab.CephMonitor(auth="none", release=release).start()
    try:
        osd = mon.add_osd()
        mon.create_pool("data")
        stop = threading.Event()
        packets = []
        t = threading.Thread(target=sniff, args=(osd.port, stop, packets))
        t.start()
        time.sleep(0.3)
        run = [
            ("put", "kat", "-", b"known answer"),
            ("get", "kat", "-"),
            ("stat", "kat"),
            ("setxattr", "kat", "user.colour", "blue"),
            ("getxattr", "kat", "user.colour"),
            ("setomapval", "kat", "k1", "v1"),
            ("listomapvals", "kat"),
            ("ls",),
            ("create", "kat"),
            ("rm", "kat"),
            ("stat", "kat"),
        ]
        for cmd in run:
            data = cmd[-1] if isinstance(cmd[-1], bytes) else None
            args = [c for c in cmd if isinstance(c, str)]
            mon.rados("-p", "data", *args, input=data)
        time.sleep(0.5)
        stop.set()
        t.join()
        for (sport, dport), stream in sorted(streams(packets).items()):
            for m in messages(stream):
                if m["type"] in (42, 43):
                    m["release"] = release
                    m["direction"] = "to_osd" if dport == osd.port else "from_osd"
                    print(json.dumps(m))
    finally:
        mon.stop()


if __name__ == "__main__":
    main(sys.argv)
