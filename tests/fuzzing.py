"""
A structure-aware mutation fuzzer for msgr2 byte streams (crc mode).

It starts from valid captured streams (a client's banner, handshake and
MESSAGE frames of every registered message type, and a server's), splits
them into frames, mutates what a hostile peer controls (preamble tag, count,
lengths, alignments, flags; segment bytes; u32 lengths and counts nested in
payloads; the message header's type, versions and offsets; whole frames
dropped, doubled or swapped) and reassembles them with the crcs recomputed,
so the mutations get past the crc checks to the decoders.

    fuzzer = Fuzzer(seed=1)
    for case in fuzzer.cases(1000, "c2s"):     # bytes to feed a server
        ...

L{run_core_case} feeds one case to a fresh server (or client) core and
answers what it asks, as the Twisted layer would; it returns the typed error
that ended the connection, or None.  Anything else it raises is a bug.
"""

import random
import struct
from typing import Dict, Iterator, List, Optional, Tuple

from msgr2tx.auth import AuthDone, AuthRequestInfo
from msgr2tx.auth.none import NoneClientHandler, NoneServerHandler
from msgr2tx.core import events as E
from msgr2tx.core.config import ConnectionConfig
from msgr2tx.core.connection import BANNER_SIZE, Msgr2Connection, Role, State
from msgr2tx.core.constants import PREAMBLE_SIZE, Tag
from msgr2tx.core.crc import preamble_crc, segment_crc
from msgr2tx.core.encoding import EntityName, EntityType, entity_addr_t, entity_addrvec_t, utime_t
from msgr2tx.core.messages import MESSAGE_TYPES, GenericMessage
from msgr2tx.core.session import Session, SessionTable
from msgr2tx.errors import ProtocolError

ADMIN = EntityName.parse("client.admin")
_PREAMBLE = struct.Struct("<BBIHIHIHIHBB")
_EMPTY_CRC = 0xFFFFFFFF


class RawFrame:
    """A frame as it was on the wire: preamble fields and segment bytes."""

    __slots__ = ("tag", "count", "lengths", "aligns", "flags", "reserved", "segments", "late")

    def __init__(self, tag, count, lengths, aligns, flags, reserved, segments, late):
        self.tag = tag
        self.count = count
        self.lengths = lengths      # as declared (4 slots)
        self.aligns = aligns        # 4 slots
        self.flags = flags
        self.reserved = reserved
        self.segments = segments    # the bytes actually sent, one per declared segment
        self.late = late

    def copy(self) -> "RawFrame":
        return RawFrame(self.tag, self.count, list(self.lengths), list(self.aligns), self.flags, self.reserved,
                        [bytes(s) for s in self.segments], self.late)


def split_stream(data: bytes, rev1: bool) -> Tuple[bytes, List[RawFrame]]:
    """The banner and the frames of a valid plaintext (crc mode) stream."""
    banner = data[:BANNER_SIZE]
    pos = BANNER_SIZE
    frames = []
    while pos < len(data):
        fields = _PREAMBLE.unpack_from(data, pos)
        tag, count = fields[0], fields[1]
        lengths = [fields[2 + 2 * i] for i in range(4)]
        aligns = [fields[3 + 2 * i] for i in range(4)]
        pos += PREAMBLE_SIZE
        segments = []
        late = 0
        if rev1:
            segments.append(data[pos:pos + lengths[0]])
            pos += lengths[0] + (4 if lengths[0] else 0)
            if count > 1:
                for i in range(1, count):
                    segments.append(data[pos:pos + lengths[i]])
                    pos += lengths[i]
                late = data[pos]
                pos += 13
        else:
            for i in range(count):
                segments.append(data[pos:pos + lengths[i]])
                pos += lengths[i]
            late = data[pos]
            pos += 17
        frames.append(RawFrame(tag, count, lengths, aligns, fields[10], fields[11], segments, late))
    return banner, frames


def assemble(frame: RawFrame, rev1: bool, bad_preamble_crc: bool = False, bad_crc: bool = False) -> bytes:
    """The frame's bytes with the preamble and segment crcs recomputed from what is there."""
    count = frame.count
    slots = []
    for i in range(4):
        slots += [frame.lengths[i] & 0xFFFFFFFF, frame.aligns[i] & 0xFFFF]
    body = _PREAMBLE.pack(frame.tag & 0xFF, count & 0xFF, *slots, frame.flags & 0xFF, frame.reserved & 0xFF)
    pcrc = preamble_crc(body) ^ (1 if bad_preamble_crc else 0)
    out = bytearray(body + struct.pack("<I", pcrc))
    segs = frame.segments
    n = max(1, min(len(segs), 4))

    def scrc(i):
        value = segment_crc(segs[i]) if segs[i] else _EMPTY_CRC
        return value ^ (1 if bad_crc else 0)
    if rev1:
        if segs and segs[0]:
            out += segs[0]
            out += struct.pack("<I", scrc(0))
        if n > 1:
            crcs = [0, 0, 0]
            for i in range(1, n):
                out += segs[i]
                crcs[i - 1] = scrc(i)
            out += struct.pack("<BIII", frame.late & 0xFF, *crcs)
    else:
        crcs = [0, 0, 0, 0]
        for i in range(n):
            if i < len(segs):
                out += segs[i]
                crcs[i] = scrc(i)
        out += struct.pack("<BIIII", frame.late & 0xFF, *crcs)
    return bytes(out)


def _pair(rev1: bool, server_port: int, lossless: bool = False, session: Optional[Session] = None,
          sessions: Optional[SessionTable] = None):
    server_addr = entity_addr_t.parse("v2:127.0.0.1:%d/0" % server_port)
    client_addr = entity_addr_t.parse("v2:127.0.0.1:40000/0")
    client = Msgr2Connection(ConnectionConfig(revision1=rev1, lossy=not lossless), Role.CLIENT, client_addr,
                             server_addr, nonce=99, cookie=0x1111, session=session)
    server = Msgr2Connection(ConnectionConfig(entity_type=EntityType.MON, entity_num=0, revision1=rev1,
                                              lossy=not lossless),
                             Role.SERVER, server_addr, client_addr, server_addrs=entity_addrvec_t((server_addr,)),
                             cookie=0x2222, sessions=sessions)
    return client, server


def sample_messages() -> list:
    """A populated instance of every registered message type, and raw ones with all segments."""
    from tests.test_messages import samples
    messages = samples()
    messages.append(GenericMessage(0x7FF0, b"front", b"middle", b"data" * 300))
    messages.append(GenericMessage(0x7FF1, b"", b"", bytes(5000)))
    return messages


def capture(rev1: bool = True, server_port: int = 3300, lossless: bool = False,
            session: Optional[Session] = None, sessions: Optional[SessionTable] = None,
            leave_unacked: bool = False) -> Tuple[bytes, bytes]:
    """
    What a client (auth none) and a server send each other in a valid
    session: handshake, every sample message both ways, KEEPALIVE2 and ACK.
    Returns (client to server, server to client).  C{lossless}: a lossless
    session (CLIENT_IDENT with a cookie; with a C{session} that has one, the
    client resumes it with SESSION_RECONNECT).
    """
    client, server = _pair(rev1, server_port, lossless, session, sessions)
    c2s, s2c = bytearray(), bytearray()
    cauth = NoneClientHandler(ADMIN)
    sauth = NoneServerHandler()

    def answer(conn, event):
        if isinstance(event, E.AuthRequestNeeded):
            conn.send_auth_request(cauth.method, cauth.build_request(conn.peer_entity_type), [1])
        elif isinstance(event, E.AuthDoneReceived):
            conn.auth_finish(*cauth.handle_done(event.global_id, event.con_mode, event.payload))
        elif isinstance(event, E.AuthRequestReceived):
            result = sauth.handle_request(AuthRequestInfo(event.method, 1, event.payload, event.more,
                                                          conn.peer_entity_type, {}))
            assert isinstance(result, AuthDone)
            conn.send_auth_done(result.global_id, 1, result.payload)

    def pump():
        for _ in range(50):
            moved = False
            for src, dst, wire in ((client, server, c2s), (server, client, s2c)):
                out = b"".join(src.data_to_send())
                if out:
                    moved = True
                    wire += out
                    events = dst.receive_data(out)
                    while events:
                        for ev in events:
                            answer(dst, ev)
                        events = dst.receive_data()
            if not moved:
                return
        raise AssertionError("capture did not settle")

    client.initiate()
    server.initiate()
    pump()
    assert client.state is State.READY and server.state is State.READY
    for message in sample_messages():
        client.send_message(message)
        server.send_message(message)
    client.send_keepalive(utime_t(1700000000, 1))
    server.send_keepalive(utime_t(1700000000, 2))
    pump()
    if leave_unacked:
        # something unacknowledged for a reconnect to replay
        client.send_message(GenericMessage(0x7FF2, b"after", data=b"x" * 100))
        client.data_to_send()
    client.connection_lost()
    server.connection_lost()
    return bytes(c2s), bytes(s2c)


def capture_reconnect(rev1: bool = True, server_port: int = 3300) -> Tuple[bytes, bytes]:
    """
    A lossless session and its resumption: (the first connection's client
    stream, the second one's, which starts with SESSION_RECONNECT).  Feed
    the first to a server to give it the session the second resumes.
    """
    session = Session()
    sessions = SessionTable()
    first = capture(rev1, server_port, True, session, sessions, leave_unacked=True)[0]
    second = capture(rev1, server_port, True, session, sessions)[0]
    return first, second


_INTERESTING_U32 = (0, 1, 2, 3, 4, 7, 8, 16, 255, 256, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000,
                    0xFFFFFFFE, 0xFFFFFFFF, 64 << 20, (64 << 20) + 1, 1 << 30)
_INTERESTING_ALIGN = (0, 1, 3, 8, 4096, 0x8000, 0xFFFF)


class Fuzzer:
    """Cases from the captured streams of both revisions, by a seeded generator."""

    def __init__(self, seed: int = 0, server_port: int = 3300) -> None:
        self.rnd = random.Random(seed)
        self.corpus: Dict[Tuple[str, bool], Tuple[bytes, List[RawFrame]]] = {}
        #: per revision, the stream that gives a server the session that
        #: the "reconnect" streams resume
        self.prime: Dict[bool, bytes] = {}
        for rev1 in (True, False):
            c2s, s2c = capture(rev1, server_port)
            self.corpus[("c2s", rev1)] = split_stream(c2s, rev1)
            self.corpus[("s2c", rev1)] = split_stream(s2c, rev1)
            c2s, s2c = capture(rev1, server_port, lossless=True)
            self.corpus[("c2s-lossless", rev1)] = split_stream(c2s, rev1)
            self.corpus[("s2c-lossless", rev1)] = split_stream(s2c, rev1)
            self.prime[rev1], again = capture_reconnect(rev1, server_port)
            self.corpus[("c2s-reconnect", rev1)] = split_stream(again, rev1)
        self.message_types = sorted(MESSAGE_TYPES)

    def cases(self, n: int, direction: str = "c2s") -> Iterator[Tuple[bool, bytes, str]]:
        """C{n} cases: (rev1, bytes, a short description of the mutations)."""
        for _ in range(n):
            yield self.case(direction)

    def case(self, direction: str = "c2s") -> Tuple[bool, bytes, str]:
        rnd = self.rnd
        rev1 = rnd.random() < 0.6
        banner, frames = self.corpus[(direction, rev1)]
        frames = [f.copy() for f in frames]
        notes = []
        # how far into the session the mutations go: the handshake frames
        # come first, so most cases cut the stream a few frames after a
        # mutation (frames after the first broken one are rarely reached)
        target = rnd.randrange(len(frames))
        for _ in range(rnd.choice((1, 1, 1, 2, 3))):
            i = min(target, len(frames) - 1) if rnd.random() < 0.7 else rnd.randrange(len(frames))
            notes.append(self._mutate(frames, i))
        keep = min(len(frames), target + 1 + rnd.choice((0, 0, 1, 2, 5, len(frames))))
        bad_preamble = rnd.random() < 0.02
        bad_crc = rnd.random() < 0.02
        out = bytearray(banner)
        for k, f in enumerate(frames[:keep]):
            out += assemble(f, rev1, bad_preamble and k == target, bad_crc and k == target)
        if rnd.random() < 0.1:
            cut = rnd.randrange(len(out) + 1)
            notes.append("cut at %d" % cut)
            out = out[:cut]
        if rnd.random() < 0.05:
            out += bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 64)))
            notes.append("garbage after")
        return rev1, bytes(out), "; ".join(notes)

    # ---- mutations ------------------------------------------------------------

    def _mutate(self, frames: List[RawFrame], i: int) -> str:
        rnd = self.rnd
        f = frames[i]
        what = rnd.choice(("tag", "count", "length", "align", "flags", "late", "payload", "payload",
                           "payload", "nested", "nested", "nested", "header", "header", "retype",
                           "frames", "resize"))
        if what == "tag":
            f.tag = rnd.choice((0, rnd.randrange(1, 24), rnd.randrange(1, 24), 255, 21, 22))
            return "frame %d tag %d" % (i, f.tag)
        if what == "count":
            f.count = rnd.choice((0, 1, 2, 3, 4, 5, 255))
            return "frame %d count %d" % (i, f.count)
        if what == "length":
            slot = rnd.randrange(4)
            f.lengths[slot] = rnd.choice(_INTERESTING_U32 + (f.lengths[slot] + 1, max(0, f.lengths[slot] - 1)))
            return "frame %d length[%d] %d" % (i, slot, f.lengths[slot])
        if what == "align":
            slot = rnd.randrange(4)
            f.aligns[slot] = rnd.choice(_INTERESTING_ALIGN)
            return "frame %d align[%d] %d" % (i, slot, f.aligns[slot])
        if what == "flags":
            if rnd.random() < 0.5:
                f.flags = rnd.randrange(256)
            else:
                f.reserved = rnd.randrange(256)
            return "frame %d flags/reserved" % i
        if what == "late":
            f.late = rnd.choice((0, 1, 0x0e, 0x0f, 0x10, 0xff, rnd.randrange(256)))
            return "frame %d late 0x%x" % (i, f.late)
        if what == "frames":
            op = rnd.choice(("drop", "double", "swap"))
            if op == "drop" and len(frames) > 1:
                del frames[i]
            elif op == "double":
                frames.insert(i, f.copy())
            else:
                j = rnd.randrange(len(frames))
                frames[i], frames[j] = frames[j], frames[i]
            return "frame %d %s" % (i, op)
        if what == "header" and f.tag == Tag.MESSAGE and f.segments and len(f.segments[0]) == 41:
            header = bytearray(f.segments[0])
            # seq, tid, type, priority, version, pre-padding, data_off, ack_seq, flags, compat, reserved
            field = rnd.choice(((0, "<Q"), (8, "<Q"), (16, "<H"), (18, "<H"), (20, "<H"), (22, "<I"),
                                (26, "<H"), (28, "<Q"), (36, "<B"), (37, "<H"), (39, "<H")))
            off, fmt = field
            size = struct.calcsize(fmt)
            value = rnd.choice((0, 1, 2, 0xFF, rnd.randrange(1 << (8 * size)), (1 << (8 * size)) - 1))
            struct.pack_into(fmt, header, off, value)
            f.segments[0] = bytes(header)
            return "frame %d header@%d=%d" % (i, off, value)
        if what == "retype" and f.tag == Tag.MESSAGE and f.segments and len(f.segments[0]) == 41:
            header = bytearray(f.segments[0])
            new_type = rnd.choice(self.message_types)
            struct.pack_into("<H", header, 16, new_type)
            f.segments[0] = bytes(header)
            return "frame %d type %d" % (i, new_type)
        if what == "resize":
            # a segment's bytes change length; the preamble follows (or not)
            s = rnd.randrange(len(f.segments)) if f.segments else 0
            if not f.segments:
                return "no segments"
            seg = bytearray(f.segments[s])
            if seg and rnd.random() < 0.5:
                del seg[rnd.randrange(len(seg)):]
            else:
                seg += bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 40)))
            f.segments[s] = bytes(seg)
            if rnd.random() < 0.8:
                f.lengths[s] = len(seg)
            return "frame %d segment %d resized to %d" % (i, s, len(seg))
        # payload bytes: byte flips or nested u32 lengths/counts
        segs = [k for k, s in enumerate(f.segments) if len(s)]
        if not segs:
            f.tag = rnd.randrange(1, 24)
            return "frame %d tag %d (empty)" % (i, f.tag)
        s = rnd.choice(segs)
        seg = bytearray(f.segments[s])
        if what == "nested" and len(seg) >= 4:
            for _ in range(rnd.choice((1, 1, 2))):
                off = rnd.randrange(len(seg) - 3)
                value = rnd.choice(_INTERESTING_U32 + (len(seg) - off, len(seg) - off - 4, len(seg) - off - 3))
                struct.pack_into("<I", seg, off, value & 0xFFFFFFFF)
            f.segments[s] = bytes(seg)
            return "frame %d segment %d nested u32" % (i, s)
        for _ in range(rnd.choice((1, 1, 2, 4))):
            off = rnd.randrange(len(seg))
            seg[off] = rnd.choice((0, 1, 2, 0x7f, 0x80, 0xff, rnd.randrange(256)))
        f.segments[s] = bytes(seg)
        return "frame %d segment %d bytes" % (i, s)


class _Driver:
    """Answers a core's events as the Twisted layer would (auth none, echo)."""

    def __init__(self, conn: Msgr2Connection) -> None:
        self.conn = conn
        self.sauth = NoneServerHandler()
        self.cauth = NoneClientHandler(ADMIN)

    def handle(self, events) -> None:
        conn = self.conn
        for event in events:
            if isinstance(event, E.AuthRequestReceived):
                result = self.sauth.handle_request(AuthRequestInfo(
                    event.method, 1, event.payload, event.more, conn.peer_entity_type, {}))
                if isinstance(result, AuthDone):
                    mode = conn.pick_mode(event.preferred_modes, (1,))
                    if mode:
                        conn.send_auth_done(result.global_id, mode, result.payload)
                    else:
                        conn.send_auth_bad_method(event.method, -95, [1], [1])
                else:
                    conn.send_auth_bad_method(event.method, -13, [1], [1])
            elif isinstance(event, E.AuthRequestNeeded):
                conn.send_auth_request(1, self.cauth.build_request(conn.peer_entity_type), [1])
            elif isinstance(event, E.AuthDoneReceived):
                conn.auth_finish(b"", b"")
            elif isinstance(event, E.MessageReceived):
                # the echo service sends every decoded message back
                event.message.seq = 0
                conn.send_message(event.message)


def _feed(conn: Msgr2Connection, driver: "_Driver", data: bytes, step: int) -> None:
    pos = 0
    while pos < len(data) and conn.state is not State.CLOSED:
        piece = data[pos:pos + step]
        pos += step
        events = conn.receive_data(piece)
        while events:
            driver.handle(events)
            events = conn.receive_data()
        conn.data_to_send()


def run_core_case(data: bytes, rev1: bool, role: Role = Role.SERVER, chunk: Optional[int] = None,
                  server_port: int = 3300, lossless: bool = False,
                  prime: Optional[bytes] = None) -> Optional[ProtocolError]:
    """
    Feed C{data} (what the peer sends) to a fresh core of C{role} in pieces
    of C{chunk} bytes (None: all at once), answering auth and echoing
    messages.  Returns the L{ProtocolError} that closed the connection, or
    None if it is still open.  Any other exception is a bug and propagates.

    C{lossless}: both sides' policies allow lossless sessions.  C{prime}: a
    valid stream fed first to another server core sharing the session table
    (the session a SESSION_RECONNECT in C{data} resumes).
    """
    sessions = SessionTable()
    if prime is not None:
        _, first = _pair(rev1, server_port, True, sessions=sessions)
        first.initiate()
        first.data_to_send()
        _feed(first, _Driver(first), prime, len(prime))
        first.connection_lost()
    client, server = _pair(rev1, server_port, lossless or prime is not None, sessions=sessions)
    conn = server if role is Role.SERVER else client
    conn.initiate()
    conn.data_to_send()
    driver = _Driver(conn)
    try:
        _feed(conn, driver, data, chunk or len(data) or 1)
    except ProtocolError as e:
        # the events before the error still reach the application
        try:
            driver.handle(getattr(e, "events", ()))
        except ProtocolError:
            pass
        return e
    return None
