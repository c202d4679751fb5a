"""
msgr2 framing: the preamble, up to four segments, the epilogue, for both
revisions (msgr2.0 = rev0, msgr2.1 = rev1) in crc mode.

L{FrameWriter} turns a tag and its segments into the parts to write.
L{FrameReader} is incremental: feed it bytes with L{ReceiveBuffer.append} and
call L{FrameReader.next_frame} until it returns None.  It checks the preamble
before it waits for the body, so it never holds more than one frame of the
configured maximum size.
"""

import mmap
import struct
import sys
from typing import List, Optional, Sequence

from crc32c import crc32c as _std_crc32c

from msgr2tx.core.constants import (
    CRC_SIZE, EPILOGUE_CRC_REV0_SIZE, FLAG_EARLY_DATA_COMPRESSED, EPILOGUE_CRC_REV1_SIZE, EPILOGUE_SECURE_SIZE,
    GCM_TAG_SIZE, KNOWN_TAGS, PREAMBLE_INLINE_SIZE,
    LATE_FLAG_ABORTED, LATE_STATUS_ABORTED, LATE_STATUS_ABORTED_MASK,
    LATE_STATUS_COMPLETE, MAX_NUM_SEGMENTS, PREAMBLE_SIZE, SEGMENT_ALIGN_DEFAULT,
    Tag,
)
from msgr2tx.core.caches import remember
from msgr2tx.core.crc import preamble_crc, segment_crc
from msgr2tx.errors import (
    BadSegmentCount, CompressionError, CrcMismatch, FrameTooLarge, FramingError, UnknownTag,
)

# tag, count, 4 x (length, alignment), flags, reserved
_PREAMBLE_BODY = struct.Struct("<BBIHIHIHIHBB")
_U32 = struct.Struct("<I")
_EPILOGUE_REV0 = struct.Struct("<BIIII")
_EPILOGUE_REV1 = struct.Struct("<BIII")

DEFAULT_MAX_SEGMENT = 64 << 20
DEFAULT_MAX_FRAME = 128 << 20
DEFAULT_MAX_CONTROL = 1 << 20

#: the crc of a used but empty segment (seed 0xFFFFFFFF, nothing added)
_EMPTY_CRC = 0xFFFFFFFF


class Frame:
    """A received frame: its tag, logical segments and preamble flags."""

    __slots__ = ("tag", "segments", "flags")

    def __init__(self, tag: int, segments: list, flags: int = 0) -> None:
        self.tag = tag
        self.segments = segments
        self.flags = flags

    def __repr__(self) -> str:
        try:
            name = Tag(self.tag).name
        except ValueError:
            name = str(self.tag)
        return "<Frame %s segments=%s>" % (name, [len(s) for s in self.segments])


def build_preamble(tag: int, lengths: Sequence[int], aligns: Sequence[int], flags: int = 0) -> bytes:
    """The 32-byte preamble, crc included."""
    n = len(lengths)
    if n == 1:
        body = _PREAMBLE_BODY.pack(tag, 1, lengths[0], aligns[0], 0, 0, 0, 0, 0, 0, flags, 0)
    elif n == 4:
        body = _PREAMBLE_BODY.pack(tag, 4, lengths[0], aligns[0], lengths[1], aligns[1],
                                   lengths[2], aligns[2], lengths[3], aligns[3], flags, 0)
    elif 1 <= n <= MAX_NUM_SEGMENTS:
        slots = [0] * 8
        for i in range(n):
            slots[2 * i] = lengths[i]
            slots[2 * i + 1] = aligns[i]
        body = _PREAMBLE_BODY.pack(tag, n, *slots, flags, 0)
    else:
        raise ValueError("a frame has 1 to 4 segments, not %d" % n)
    return body + _U32.pack(preamble_crc(body))


def trim_segments(segments: Sequence) -> int:
    """How many segments go on the wire: up to the last non-empty one, at least one."""
    for i in range(len(segments) - 1, 0, -1):
        if len(segments[i]):
            return i + 1
    return 1


class FrameWriter:
    """Assemble outgoing frames for one revision in crc mode."""

    def __init__(self, rev1: bool = True, data_crc: bool = True) -> None:
        self.rev1 = rev1
        self.data_crc = data_crc
        #: when a bytearray, every assembled frame is appended to it
        #: (the pre-auth transcript for AUTH_SIGNATURE)
        self.recording: Optional[bytearray] = None
        #: a L{msgr2tx.core.crypto.TxCipher} once secure mode is on
        self.cipher = None
        #: a L{msgr2tx.core.compression.TxCompressor} once compression is agreed
        self.compressor = None

    # (class-level defaults, set on the instance only once used: an idle
    # connection's writer keeps a small instance dictionary)
    # MESSAGE preambles by segment lengths (assemble_message), for one
    # alignment tuple
    _preambles: Optional[dict] = None
    _preamble_aligns: Optional[Sequence[int]] = None
    #: large secure frame parts may be read-only views of the buffers
    #: this writer reuses (see L{Msgr2Connection.send_views})
    views = False
    #: views of those buffers are out: the I/O layer has not finished
    #: with them (sent them or copied them) and called L{release}
    lent = False
    #: the reused buffers not lent now, and those lent (at most
    #: L{REUSED_BUFFERS} in all)
    _free: Optional[list] = None
    _lent: Optional[list] = None
    #: how many buffers a writer reuses: two, so that the next large frame
    #: is written into the other while the socket still takes the end of
    #: the last one
    REUSED_BUFFERS = 2

    def assemble(self, tag: int, segments: Sequence, aligns: Sequence[int] = (SEGMENT_ALIGN_DEFAULT,)) -> List[bytes]:
        """
        Return the frame as a list of parts, ready for C{writeSequence}.
        Segments are bytes-like; bytes are not copied (other buffers are,
        because C{writeSequence} takes bytes only).
        """
        n = trim_segments(segments)
        lengths = [len(segments[i]) for i in range(n)]
        flags = 0
        if self.compressor is not None:
            # Ceph compresses after trimming; the preamble then carries the
            # compressed lengths and the flag, alignments stay as they are
            compressed = self.compressor.compress_segments(segments[:n], sum(lengths))
            if compressed is not None:
                segments = compressed
                lengths = [len(s) for s in compressed]
                flags = FLAG_EARLY_DATA_COMPRESSED
        preamble = build_preamble(tag, lengths, aligns, flags)
        if self.cipher is not None:
            return self._assemble_secure(preamble, segments, lengths)
        parts = [preamble]
        data_crc = self.data_crc
        if self.rev1:
            seg0 = segments[0]
            if lengths[0]:
                parts.append(seg0 if type(seg0) is bytes else bytes(seg0))
                parts.append(_U32.pack(segment_crc(seg0) if data_crc else 0))
            if n > 1:
                crcs = [0, 0, 0]
                for i in range(1, n):
                    if lengths[i]:
                        seg = segments[i]
                        if data_crc:
                            crcs[i - 1] = segment_crc(seg)
                        # Twisted's writeSequence takes bytes only
                        parts.append(seg if type(seg) is bytes else bytes(seg))
                    elif data_crc:
                        crcs[i - 1] = _EMPTY_CRC
                parts.append(_EPILOGUE_REV1.pack(LATE_STATUS_COMPLETE, *crcs))
        else:
            crcs = [0, 0, 0, 0]
            for i in range(n):
                if lengths[i]:
                    seg = segments[i]
                    if data_crc:
                        crcs[i] = segment_crc(seg)
                    parts.append(seg if type(seg) is bytes else bytes(seg))
                elif data_crc:
                    crcs[i] = _EMPTY_CRC
            parts.append(_EPILOGUE_REV0.pack(0, *crcs))
        if self.recording is not None:
            for p in parts:
                self.recording += p
        return parts

    def assemble_message(self, header: bytes, front, middle, data, aligns: Sequence[int]) -> List[bytes]:
        """
        A MESSAGE frame (ceph_msg_header2 C{header}, then front, middle and
        data), as L{assemble} would build it, built directly in the common
        case (msgr2.1, no compression, no transcript, a header that fits the
        inline part of a secure preamble).  Same bytes on the wire as
        L{assemble}; parts may be grouped differently.
        """
        l0 = len(header)
        if not self.rev1 or self.compressor is not None or self.recording is not None or l0 > PREAMBLE_INLINE_SIZE:
            return self.assemble(Tag.MESSAGE, (header, front, middle, data), aligns)
        l1 = len(front)
        l2 = len(middle)
        l3 = len(data)
        key = (l0, l1, l2, l3)
        preambles = self._preambles
        if preambles is None or aligns is not self._preamble_aligns:
            preambles = self._preambles = {}
            # (a list could change under the same identity: not remembered)
            self._preamble_aligns = aligns if type(aligns) is tuple else None
        cached = preambles.get(key)
        if cached is None:
            cached = remember(preambles, key, self._message_preamble(l0, l1, l2, l3, aligns), _MAX_SHAPES)
        n, preamble = cached
        cipher = self.cipher
        if cipher is not None:
            if l1 + l2 + l3 >= _FAST_SECURE_LIMIT:
                # large messages the general way: with this path a 4 MiB
                # secure stream ran at half the speed (bench/bulk.py), for
                # reasons not pinned down; small ones gain from it
                return self._assemble_secure(preamble, (header, front, middle, data)[:n],
                                             [l0, l1, l2, l3][:n])
            first = b"".join((preamble, header, _ZEROS[:PREAMBLE_INLINE_SIZE - l0]))
            if n == 1:
                return [cipher.encrypt(first)]
            if n == 4 and not l1 and not l2:
                # (the common shape: a data segment only)
                rest = b"".join((data, _ZEROS[:-l3 & 15], _SECURE_EPILOGUE_REV1))
            else:
                pieces = []
                if l1:
                    pieces.append(front)
                    pieces.append(_ZEROS[:-l1 & 15])
                if l2:
                    pieces.append(middle)
                    pieces.append(_ZEROS[:-l2 & 15])
                if l3:
                    pieces.append(data)
                    pieces.append(_ZEROS[:-l3 & 15])
                pieces.append(_SECURE_EPILOGUE_REV1)
                rest = b"".join(pieces)
            return cipher.encrypt_pair(first, rest)
        if not self.data_crc:
            parts = [b"".join((preamble, header, _ZERO_CRC))]
            if n > 1:
                if l1:
                    parts.append(front if type(front) is bytes else bytes(front))
                if l2:
                    parts.append(middle if type(middle) is bytes else bytes(middle))
                if l3:
                    parts.append(data if type(data) is bytes else bytes(data))
                parts.append(_EPILOGUE_REV1_NO_CRC)
            return parts
        parts = [b"".join((preamble, header, _U32.pack(_std_crc32c(header) ^ _CRC_MASK)))]
        if n == 1:
            return parts
        c1 = c2 = c3 = 0
        if l1:
            c1 = _std_crc32c(front) ^ _CRC_MASK
            parts.append(front if type(front) is bytes else bytes(front))
        else:
            c1 = _EMPTY_CRC
        if n > 2:
            if l2:
                c2 = _std_crc32c(middle) ^ _CRC_MASK
                parts.append(middle if type(middle) is bytes else bytes(middle))
            else:
                c2 = _EMPTY_CRC
            if n > 3:
                c3 = _std_crc32c(data) ^ _CRC_MASK
                parts.append(data if type(data) is bytes else bytes(data))
        parts.append(_EPILOGUE_REV1.pack(LATE_STATUS_COMPLETE, c1, c2, c3))
        return parts

    def _message_preamble(self, l0: int, l1: int, l2: int, l3: int, aligns: Sequence[int]):
        """(segment count, 32-byte preamble) of a MESSAGE frame with these segment lengths."""
        a0, a1, a2, a3 = aligns
        if l3:
            n = 4
            body = _PREAMBLE_BODY.pack(_MESSAGE, 4, l0, a0, l1, a1, l2, a2, l3, a3, 0, 0)
        elif l2:
            n = 3
            body = _PREAMBLE_BODY.pack(_MESSAGE, 3, l0, a0, l1, a1, l2, a2, 0, 0, 0, 0)
        elif l1:
            n = 2
            body = _PREAMBLE_BODY.pack(_MESSAGE, 2, l0, a0, l1, a1, 0, 0, 0, 0, 0, 0)
        else:
            n = 1
            body = _PREAMBLE_BODY.pack(_MESSAGE, 1, l0, a0, 0, 0, 0, 0, 0, 0, 0, 0)
        return n, body + _U32.pack(_std_crc32c(body, _CRC_MASK) ^ _CRC_MASK)

    def _assemble_secure(self, preamble: bytes, segments: Sequence, lengths: List[int]) -> list:
        """The frame encrypted: parts are bytes, or (with L{views}) a large one a view of the reused buffer."""
        encrypt = self.cipher.encrypt
        n = len(lengths)
        if self.rev1:
            seg0 = segments[0]
            padded0 = _pad16(lengths[0])
            if padded0 > PREAMBLE_INLINE_SIZE:
                first = bytearray(preamble)
                first += memoryview(seg0)[:PREAMBLE_INLINE_SIZE]
                rest = bytearray(memoryview(seg0)[PREAMBLE_INLINE_SIZE:])
                rest += bytes(padded0 - lengths[0])
                parts = [encrypt(first), encrypt(rest)]
            else:
                first = bytearray(preamble)
                first += seg0
                first += bytes(PREAMBLE_INLINE_SIZE - lengths[0])
                parts = [encrypt(first)]
            if n > 1:
                parts.append(self._encrypt_segments(segments, lengths, 1, _SECURE_EPILOGUE_REV1, None))
            return parts
        return [self._encrypt_segments(segments, lengths, 0, _SECURE_EPILOGUE_REV0, preamble)]

    def _encrypt_segments(self, segments: Sequence, lengths: List[int], start: int, epilogue: bytes,
                          head: Optional[bytes]):
        """
        One GCM operation over C{head} (if any), the segments from C{start}
        on, each padded to 16 bytes, and C{epilogue}: C{bytes}, or (with
        L{views}) for a large frame a view of the reused buffer.
        """
        pieces = [head] if head is not None else []
        for i in range(start, len(lengths)):
            pieces.append(segments[i])
            pieces.append(_ZEROS[:-lengths[i] & 15])
        pieces.append(epilogue)
        if self.views and sum(lengths[start:]) >= _FAST_SECURE_LIMIT:
            view = self._encrypt_into_buffer(pieces)
            if view is not None:
                return view
        return self.cipher.encrypt(b"".join(pieces))

    def _encrypt_into_buffer(self, pieces) -> Optional[memoryview]:
        """
        Encrypt the concatenated C{pieces} into one of this writer's reused
        buffers that is not lent (grown to the largest such frame part so
        far); returns a read-only view of ciphertext || tag and marks the
        buffer L{lent} until L{release}, or None when all
        L{REUSED_BUFFERS} are lent.
        """
        need = sum(len(p) for p in pieces) + GCM_TAG_SIZE + 15
        free, lent = self._free, self._lent
        if lent is None:
            free, lent = self._free, self._lent = [], []
        if free:
            buf = free.pop()
            if len(buf) < need:
                buf = bytearray(need)
        elif len(lent) < self.REUSED_BUFFERS:
            buf = bytearray(need)
        else:
            return None
        lent.append(buf)
        self.lent = True
        view = memoryview(buf)
        n = self.cipher.encrypt_into(pieces, view)
        return view[:n].toreadonly()

    def release(self, keep=()) -> None:
        """
        The I/O layer is done with the views L{_encrypt_into_buffer} lent,
        except views of the buffers in C{keep} (the C{.obj} of views it
        still holds): the others may be written again.
        """
        lent = self._lent
        if not lent:
            self.lent = False
            return
        kept = [buf for buf in lent if any(buf is k for k in keep)]
        self._free.extend(buf for buf in lent if not any(buf is k for k in keep))
        self._lent = kept
        self.lent = bool(kept)


def _pad16(n: int) -> int:
    return (n + 15) & ~15


_SECURE_EPILOGUE_REV0 = bytes(EPILOGUE_SECURE_SIZE)
_SECURE_EPILOGUE_REV1 = bytes([LATE_STATUS_COMPLETE]) + bytes(EPILOGUE_SECURE_SIZE - 1)
_EPILOGUE_REV1_NO_CRC = _EPILOGUE_REV1.pack(LATE_STATUS_COMPLETE, 0, 0, 0)
_ZEROS = bytes(PREAMBLE_INLINE_SIZE)
_ZERO_CRC = bytes(CRC_SIZE)
_CRC_MASK = 0xFFFFFFFF
_MESSAGE = int(Tag.MESSAGE)
_FAST_SECURE_LIMIT = 64 << 10  # payload bytes; see FrameWriter.assemble_message
_HEADER2_SIZE = 41  # ceph_msg_header2 (msgr2tx.core.frames.HEADER2_SIZE)


class ReceiveBuffer:
    """
    Received bytes with a read offset; consumed bytes are dropped lazily.

    Small frames accumulate in a bytearray.  When the reader knows a large
    frame is coming (L{expect}, called only after its preamble passed the
    length limits), one buffer of exactly that frame's size is set up (a
    view of an anonymous memory map, whose pages cost memory only once
    written) and every received byte is copied into it once, at the next
    free offset;
    bytes beyond the frame wait in C{tail} until the frame is consumed
    (L{settle}).  A transport that can read into memory fills the frame
    directly: L{writable} gives the free part, L{filled} counts what was
    written.  The finished frame buffer is C{shared}: its segments are
    handed out as views of it, so it is never written again (a later large
    frame reuses it only when nothing refers to it any more).
    """

    __slots__ = ("buf", "pos", "want", "got", "tail", "tail_len", "shared", "frame", "spare")

    def __init__(self) -> None:
        self.buf = bytearray()
        self.pos = 0
        #: size of the large frame being collected in C{buf} (0: none)
        self.want = 0
        #: bytes of C{buf} received so far while C{want} is set
        self.got = 0
        #: received bytes past the end of the collected large frame
        self.tail: list = []
        self.tail_len = 0
        #: C{buf} may have views handed out; it is never resized or written
        self.shared = False
        #: the anonymous memory map C{buf} is a view of while C{shared}
        self.frame: Optional[mmap.mmap] = None
        #: the last frame map, for reuse by the next large frame of about the same size
        self.spare: Optional[mmap.mmap] = None

    def expect(self, n: int) -> None:
        """
        The next C{n} bytes from the read offset form one frame.  C{n} must
        already be within the configured limits: this allocates it.
        """
        if self.want:
            return
        pos = self.pos
        have = len(self.buf) - pos
        spare = self.spare
        self.spare = None
        # reuse the previous frame map when no segment view (or anything
        # else) still refers to it: the names spare and getrefcount's
        # argument are the only references then
        if (spare is not None and _refcount is not None and n <= len(spare) <= n + 2 * _REUSE_SLACK
                and _refcount(spare) <= 2):
            frame = spare
        else:
            # anonymous memory: its pages cost nothing until bytes arrive, so
            # a preamble alone (even one announcing max_frame) commits no memory
            frame = mmap.mmap(-1, n + _REUSE_SLACK)
        big = memoryview(frame)[:n]
        if have:
            big[:have] = memoryview(self.buf)[pos:]
        self.frame = frame
        self.buf = big
        self.pos = 0
        self.got = have
        self.want = n
        self.shared = True

    def writable(self) -> Optional[memoryview]:
        """
        The free part of the large frame being collected, for a transport to
        read into (then call L{filled}); None when no large frame is under way.
        """
        if not self.want:
            return None
        return memoryview(self.buf)[self.got:]

    def filled(self, n: int) -> None:
        """C{n} bytes were written at the start of L{writable}'s buffer."""
        got = self.got + n
        if got >= self.want:
            self.want = 0
        self.got = got

    def append(self, data) -> None:
        want = self.want
        if want:
            got = self.got
            n = len(data)
            if got + n <= want:
                self.buf[got:got + n] = data
                got += n
            else:
                room = want - got
                view = memoryview(data)
                self.buf[got:want] = view[:room]
                self.tail.append(bytes(view[room:]))
                self.tail_len += n - room
                got = want
            self.got = got
            if got == want:
                self.want = 0
            return
        if self.tail:
            # (kept: a copy, as data may be a view of a buffer the caller reuses)
            self.tail.append(data if type(data) is bytes else bytes(data))
            self.tail_len += len(data)
            return
        buf = self.buf
        if self.shared:
            # a finished frame buffer is never written: start a new one
            self.spare, self.frame = self.frame, None
            self.buf = bytearray(memoryview(buf)[self.pos:])
            self.pos = 0
            self.shared = False
            self.buf += data
            return
        if self.pos:
            # bytearray deletes from the front without moving the rest
            del buf[:self.pos]
            self.pos = 0
        buf += data

    def settle(self) -> None:
        """The collected large frame has been consumed: continue with what came after it."""
        if self.want or self.pos < len(self.buf):
            return
        if self.shared:
            self.spare, self.frame = self.frame, None
            self.shared = False
        tail = self.tail
        self.buf = bytearray(b"".join(tail)) if len(tail) != 1 else bytearray(tail[0])
        self.pos = 0
        self.tail = []
        self.tail_len = 0

    def __len__(self) -> int:
        if self.want:
            return self.got - self.pos
        return len(self.buf) - self.pos + self.tail_len

    def take(self, n: int) -> bytes:
        pos = self.pos
        self.pos = pos + n
        return bytes(self.buf[pos:pos + n])


_refcount = getattr(sys, "getrefcount", None)
#: frame maps are this much larger than their first frame, and one that is at
#: most twice this larger than the next large frame is reused for it
_REUSE_SLACK = 64 << 10

#: frames at least this large are collected in one preallocated buffer (ReceiveBuffer.expect)
LARGE_FRAME = 256 << 10
#: in a large secure msgr2.1 frame, a last segment of at least this many
#: bytes is decrypted into a bytes object of its own (RxCipher.decrypt_split)
OWN_SEGMENT_MIN = 1 << 20


class FrameReader:
    """
    Parse frames for one revision in crc mode out of a L{ReceiveBuffer}.

    Limits: C{max_segment} for any one segment, C{max_frame} for the sum of a
    frame's segments, and C{max_control} for frames other than MESSAGE.

    C{gate}, when set, is called with each frame's tag as soon as its
    preamble is checked, before any of its segments are read; it returns the
    most bytes that frame may have (its segments together) or raises a
    L{ProtocolError} to refuse the frame (the connection state machine
    refuses the tags its state does not accept, as Ceph faults at the
    preamble of a MESSAGE before READY).
    """

    def __init__(self, rev1: bool = True, data_crc: bool = True,
                 max_segment: int = DEFAULT_MAX_SEGMENT,
                 max_frame: int = DEFAULT_MAX_FRAME,
                 max_control: int = DEFAULT_MAX_CONTROL) -> None:
        self.rev1 = rev1
        self.data_crc = data_crc
        self.max_segment = max_segment
        self.max_frame = max_frame
        self.max_control = max_control
        self.recording: Optional[bytearray] = None
        #: a L{msgr2tx.core.crypto.RxCipher} once secure mode is on
        self.cipher = None
        #: a L{msgr2tx.core.compression.RxDecompressor} once compression is agreed
        self.decompressor = None
        # the parsed preamble of the frame whose body we are waiting for
        self._pending = None
        #: callable(tag) -> byte limit of that frame, or raises to refuse it
        self.gate = None

    # the READY fast path: preambles (32 bytes, crc included) of MESSAGE
    # frames that passed every check, with what the check found, for the
    # limits they were checked against (see _message_shape); class-level
    # defaults until first used, so that an idle reader stays small
    _shapes: Optional[dict] = None
    _shape_limits: tuple = ()

    def _check_preamble(self, buf, pos: int):
        """Validate a plaintext preamble; returns (tag, lengths, flags)."""
        fields = _PREAMBLE_BODY.unpack_from(buf, pos)
        expected = _U32.unpack_from(buf, pos + 28)[0]
        actual = preamble_crc(memoryview(buf)[pos:pos + 28])
        if actual != expected:
            raise CrcMismatch("preamble crc 0x%08x does not match its bytes (0x%08x)" % (expected, actual))
        tag, count = fields[0], fields[1]
        if not 1 <= count <= MAX_NUM_SEGMENTS:
            raise BadSegmentCount("preamble declares %d segments (1 to 4 allowed)" % count)
        if tag not in KNOWN_TAGS:
            raise UnknownTag("unknown frame tag %d" % tag)
        lengths = [fields[2 + 2 * i] for i in range(count)]
        if count > 1 and lengths[-1] == 0:
            raise FramingError("last of %d segments is empty" % count)
        if self.gate is not None:
            limit = self.gate(tag)
        else:
            limit = self.max_frame if tag == Tag.MESSAGE else self.max_control
        total = 0
        for length in lengths:
            if length > self.max_segment:
                raise FrameTooLarge("segment of %d bytes exceeds the limit of %d" % (length, self.max_segment))
            total += length
        if total > limit:
            raise FrameTooLarge("frame %s of %d bytes exceeds the limit of %d" % (Tag(tag).name, total, limit))
        return tag, lengths, fields[10]

    def _parse_preamble(self, buf: bytearray, pos: int):
        tag, lengths, flags = self._check_preamble(buf, pos)
        total = sum(lengths)
        if self.rev1:
            size = lengths[0] + (CRC_SIZE if lengths[0] else 0)
            if len(lengths) > 1:
                size += total - lengths[0] + EPILOGUE_CRC_REV1_SIZE
        else:
            size = total + EPILOGUE_CRC_REV0_SIZE
        return tag, lengths, flags, size

    def next_frame(self, rbuf: ReceiveBuffer) -> Optional[Frame]:
        """
        The next complete frame, or None when more bytes are needed.  Frames
        the sender aborted are skipped; compressed ones come back
        decompressed (their C{flags} still say they were compressed).
        Raises a L{FramingError} subclass: L{CompressionError} for a
        compressed frame without agreed compression or a segment that does
        not decompress, L{FrameTooLarge} for one that would decompress past
        the limits.
        """
        frame = self.read_frame(rbuf)
        if frame is not None and frame.flags & FLAG_EARLY_DATA_COMPRESSED:
            return self._decompress(frame)
        return frame

    def _decompress(self, frame: Frame) -> Frame:
        if self.decompressor is None:
            raise CompressionError("peer sent a compressed %s frame, but no compression was agreed"
                                   % _tag_name(frame.tag))
        limit = self.max_frame if frame.tag == Tag.MESSAGE else self.max_control
        frame.segments = self.decompressor.decompress_segments(frame.segments, self.max_segment, limit)
        return frame

    def read_frame(self, rbuf: ReceiveBuffer) -> Optional[Frame]:
        """
        Like L{next_frame}, but segments come back as they were on the wire
        (compressed ones still compressed).
        """
        if self.cipher is not None:
            return self._next_secure_frame(rbuf)
        while True:
            buf = rbuf.buf
            pos = rbuf.pos
            avail = len(rbuf)
            pending = self._pending
            if pending is None:
                if avail < PREAMBLE_SIZE:
                    return None
                pending = self._pending = self._parse_preamble(buf, pos)
            tag, lengths, flags, size = pending
            if avail < PREAMBLE_SIZE + size:
                if size >= LARGE_FRAME:
                    rbuf.expect(PREAMBLE_SIZE + size)
                return None
            self._pending = None
            start = pos
            pos += PREAMBLE_SIZE
            # segments may share a finished large frame's buffer (read-only
            # views: it is never written again while they live); the
            # ordinary buffer is reused
            cut = _share if rbuf.shared else _copy
            view = memoryview(buf).toreadonly() if cut is _share else memoryview(buf)
            try:
                segments = []
                if self.rev1:
                    complete = self._rev1_body(view, pos, lengths, segments, cut)
                else:
                    complete = self._rev0_body(view, pos, lengths, segments, cut)
                end = start + PREAMBLE_SIZE + size
                if self.recording is not None:
                    self.recording += view[start:end]
            finally:
                if cut is _copy:
                    view.release()
            rbuf.pos = end
            if cut is _share:
                rbuf.settle()
            if complete:
                return Frame(tag, segments, flags)
            # an aborted frame: drop it and look at the next one

    def _rev0_body(self, view, pos, lengths, segments, cut) -> bool:
        for length in lengths:
            segments.append(cut(view, pos, length))
            pos += length
        late_flags, *crcs = _EPILOGUE_REV0.unpack_from(view, pos)
        # crcs first, as Ceph does: an aborted frame must still be intact
        if self.data_crc:
            for i, seg in enumerate(segments):
                actual = segment_crc(seg) if lengths[i] else _EMPTY_CRC
                if actual != crcs[i]:
                    raise CrcMismatch("segment %d crc 0x%08x does not match its bytes (0x%08x)" % (i, crcs[i], actual))
        return not late_flags & LATE_FLAG_ABORTED

    def _rev1_body(self, view, pos, lengths, segments, cut) -> bool:
        data_crc = self.data_crc
        length = lengths[0]
        seg0 = cut(view, pos, length)
        pos += length
        if length:
            expected = _U32.unpack_from(view, pos)[0]
            pos += CRC_SIZE
            if data_crc:
                actual = segment_crc(seg0)
                if actual != expected:
                    raise CrcMismatch("segment 0 crc 0x%08x does not match its bytes (0x%08x)" % (expected, actual))
        segments.append(seg0)
        if len(lengths) == 1:
            return True
        for length in lengths[1:]:
            segments.append(cut(view, pos, length))
            pos += length
        late_status, *crcs = _EPILOGUE_REV1.unpack_from(view, pos)
        if data_crc:
            for i in range(1, len(segments)):
                actual = segment_crc(segments[i]) if lengths[i] else _EMPTY_CRC
                if actual != crcs[i - 1]:
                    raise CrcMismatch("segment %d crc 0x%08x does not match its bytes (0x%08x)"
                                      % (i, crcs[i - 1], actual))
        aborted = late_status & LATE_STATUS_ABORTED_MASK
        if aborted != LATE_STATUS_ABORTED and aborted != LATE_STATUS_COMPLETE:
            raise FramingError("epilogue late status 0x%02x is neither complete nor aborted" % late_status)
        return aborted == LATE_STATUS_COMPLETE

    # ---- READY fast path ------------------------------------------------------

    def read_messages(self, rbuf: ReceiveBuffer, on_message, max_frame: int) -> None:
        """
        The READY-state fast path: take every complete, plain MESSAGE frame
        (msgr2.1, not compressed, a 41-byte header, within C{max_frame} and
        C{max_segment}, all checks passing) from the front of C{rbuf} in one
        loop, without L{Frame} objects, calling C{on_message(src, offset,
        front, middle, data)} for each (the ceph_msg_header2 is at C{offset}
        in C{src}; segments are bytes-like).

        It stops, having consumed nothing of it, at the first frame it does
        not take (a control frame, a compressed or aborted one, one not
        complete yet, anything that fails a check): L{next_frame} then reads
        that frame exactly as it would have, with the same errors.  In secure
        mode a first block it had to decrypt is left as the pending frame
        for L{next_frame}, as L{next_frame} itself would have left it.
        The caller admits MESSAGE frames (the state is READY).
        """
        buf = rbuf.buf
        if (self._pending is not None or not self.rev1 or self.recording is not None or rbuf.want
                or rbuf.shared or type(buf) is not bytearray):
            return
        if len(buf) - rbuf.pos < 32:
            return  # not even a preamble (and an idle reader makes no cache)
        shapes = self._shapes
        limits = (self.max_segment, max_frame, self.cipher is not None)
        if shapes is None or self._shape_limits != limits:
            shapes = self._shapes = {}
            self._shape_limits = limits
        if self.cipher is not None:
            self._read_secure_messages(rbuf, on_message, max_frame, shapes)
            return
        u32 = _U32.unpack_from
        data_crc = self.data_crc
        end = len(buf)
        pos = rbuf.pos
        view = memoryview(buf)
        try:
            while end - pos >= PREAMBLE_SIZE:
                preamble = bytes(view[pos:pos + PREAMBLE_SIZE])
                shape = shapes.get(preamble)
                if shape is None:
                    shape = self._message_shape(preamble, max_frame)
                    if shape is None:
                        return
                    remember(shapes, preamble, shape, _MAX_SHAPES)
                count, l1, l2, l3, size = shape
                if end - pos < size:
                    return
                p = pos + PREAMBLE_SIZE
                if data_crc and _std_crc32c(view[p:p + _HEADER2_SIZE]) ^ _CRC_MASK != u32(buf, p + _HEADER2_SIZE)[0]:
                    return
                front = middle = data = b""
                if count > 1:
                    q = p + _HEADER2_SIZE + CRC_SIZE
                    if l1:
                        front = bytes(view[q:q + l1])
                        q += l1
                    if l2:
                        middle = bytes(view[q:q + l2])
                        q += l2
                    if l3:
                        data = bytes(view[q:q + l3])
                        q += l3
                    late_status, c1, c2, c3 = _EPILOGUE_REV1.unpack_from(buf, q)
                    if late_status & LATE_STATUS_ABORTED_MASK != LATE_STATUS_COMPLETE:
                        return
                    # (an empty segment's crc is 0xFFFFFFFF)
                    if data_crc and ((_std_crc32c(front) ^ _CRC_MASK if l1 else _EMPTY_CRC) != c1
                                     or (count > 2 and (_std_crc32c(middle) ^ _CRC_MASK if l2 else _EMPTY_CRC) != c2)
                                     or (count > 3 and _std_crc32c(data) ^ _CRC_MASK != c3)):
                        return
                pos += size
                rbuf.pos = pos
                on_message(buf, p, front, middle, data)
        finally:
            view.release()

    def _message_shape(self, preamble: bytes, max_frame: int):
        """
        For the fast path: the plaintext C{preamble} (32 bytes) of a frame
        it takes (a plain MESSAGE with a 41-byte header, a good crc, within
        the limits; see L{read_messages}) gives (segment count, front,
        middle and data lengths, bytes of the whole crc-mode frame); any
        other preamble gives None (L{next_frame} reads that frame).
        """
        tag, count, l0, _, l1, _, l2, _, l3, _, flags, _ = _PREAMBLE_BODY.unpack_from(preamble, 0)
        if tag != _MESSAGE or flags or l0 != _HEADER2_SIZE or not 1 <= count <= MAX_NUM_SEGMENTS:
            return None
        if count < 4:
            l3 = 0
            if count < 3:
                l2 = 0
                if count < 2:
                    l1 = 0
            if count > 1 and not (l2 if count == 3 else l1):
                return None  # an empty last segment: next_frame refuses it
        elif not l3:
            return None
        max_segment = self.max_segment
        if l1 > max_segment or l2 > max_segment or l3 > max_segment or l0 > max_segment:
            return None
        size = l1 + l2 + l3
        if l0 + size > max_frame:
            return None
        if _std_crc32c(preamble[:28], _CRC_MASK) ^ _CRC_MASK != _U32.unpack_from(preamble, 28)[0]:
            return None
        size = PREAMBLE_SIZE + l0 + CRC_SIZE + (size + EPILOGUE_CRC_REV1_SIZE if count > 1 else 0)
        return count, l1, l2, l3, size

    def _read_secure_messages(self, rbuf: ReceiveBuffer, on_message, max_frame: int, shapes: dict) -> None:
        buf = rbuf.buf
        decrypt = self.cipher.decrypt
        end = len(buf)
        pos = rbuf.pos
        view = memoryview(buf)
        try:
            while end - pos >= _SECURE_FIRST_SIZE:
                first = decrypt(view[pos:pos + _SECURE_FIRST_SIZE])
                pos += _SECURE_FIRST_SIZE
                rbuf.pos = pos
                preamble = first[:PREAMBLE_SIZE]
                shape = shapes.get(preamble)
                if shape is None:
                    shape = self._message_shape(preamble, max_frame)
                    if shape is not None:
                        count, l1, l2, l3, _ = shape
                        op3 = 0
                        if count > 1:
                            op3 = (((l1 + 15) & ~15) + ((l2 + 15) & ~15) + ((l3 + 15) & ~15)
                                   + EPILOGUE_SECURE_SIZE + GCM_TAG_SIZE)
                        shape = remember(shapes, preamble, (count, l1, l2, l3, op3), _MAX_SHAPES)
                if shape is None or end - pos < shape[4]:
                    # next_frame goes on with this frame (and raises what it raises)
                    self._pending = self._secure_rev1_pending(first)
                    return
                _, l1, l2, l3, op3 = shape
                front = middle = data = b""
                if op3:
                    rbuf.pos = pos + op3
                    body = decrypt(view[pos:pos + op3])
                    pos += op3
                    # small segments as bytes slices (what the message keeps
                    # of them anyway), larger ones as views of the plaintext
                    plain = body if op3 < _SLICE_BELOW else memoryview(body)
                    off = 0
                    if l1:
                        front = plain[:l1]
                        off = (l1 + 15) & ~15
                    if l2:
                        middle = plain[off:off + l2]
                        off += (l2 + 15) & ~15
                    if l3:
                        data = plain[off:off + l3]
                        off += (l3 + 15) & ~15
                    late_status = body[off] & LATE_STATUS_ABORTED_MASK
                    if late_status != LATE_STATUS_COMPLETE:
                        if late_status == LATE_STATUS_ABORTED:
                            continue
                        raise FramingError("epilogue late status 0x%02x is neither complete nor aborted" % body[off])
                on_message(first, PREAMBLE_SIZE, front, middle, data)
        finally:
            view.release()

    # ---- secure mode -----------------------------------------------------

    def _next_secure_frame(self, rbuf: ReceiveBuffer) -> Optional[Frame]:
        while True:
            frame = (self._next_secure_rev1(rbuf) if self.rev1 else self._next_secure_rev0(rbuf))
            if frame is None or frame is not _ABORTED:
                return frame

    def _next_secure_rev1(self, rbuf: ReceiveBuffer):
        cipher = self.cipher
        pending = self._pending
        if pending is None:
            if len(rbuf) < _SECURE_FIRST_SIZE:
                return None
            first = cipher.decrypt(memoryview(rbuf.buf)[rbuf.pos:rbuf.pos + _SECURE_FIRST_SIZE])
            rbuf.pos += _SECURE_FIRST_SIZE
            pending = self._pending = self._secure_rev1_pending(first)
        tag, lengths, flags, inline, op2, op3 = pending
        if len(rbuf) < op2 + op3:
            if op2 + op3 >= LARGE_FRAME:
                rbuf.expect(op2 + op3)
            return None
        self._pending = None
        pos = rbuf.pos
        shared = rbuf.shared
        view = memoryview(rbuf.buf)
        try:
            if op2:
                seg0 = inline + cipher.decrypt(view[pos:pos + op2])
            else:
                seg0 = inline
            segments = [seg0[:lengths[0]]]
            if op3:
                own = None
                if shared:
                    # a large frame's own buffer: decrypt it where it is
                    last = lengths[-1]
                    if last >= OWN_SEGMENT_MIN and len(lengths) > 2:
                        # (its large last segment into a bytes object of its own)
                        at = sum(_pad16(n) for n in lengths[1:-1])
                        body, own = cipher.decrypt_split(view[pos + op2:pos + op2 + op3], at, last)
                        body = plain = body.toreadonly()
                    else:
                        body = plain = cipher.decrypt_in_place(view[pos + op2:pos + op2 + op3]).toreadonly()
                else:
                    body = cipher.decrypt(view[pos + op2:pos + op2 + op3])
                    plain = memoryview(body)
                off = 0
                for n in lengths[1:]:
                    segments.append(plain[off:off + n])
                    off += _pad16(n)
                if own is not None:
                    segments[-1] = own
                late_status = body[off] & LATE_STATUS_ABORTED_MASK
                if late_status == LATE_STATUS_ABORTED:
                    return _ABORTED
                if late_status != LATE_STATUS_COMPLETE:
                    raise FramingError("epilogue late status 0x%02x is neither complete nor aborted" % body[off])
        finally:
            if not shared:
                view.release()
            rbuf.pos = pos + op2 + op3
            if shared:
                rbuf.settle()
        return Frame(tag, segments, flags)

    def _secure_rev1_pending(self, first: bytes):
        """Check the decrypted first block of a msgr2.1 secure frame; what is left to read."""
        tag, lengths, flags = self._check_preamble(first, 0)
        padded0 = _pad16(lengths[0])
        op2 = padded0 - PREAMBLE_INLINE_SIZE + GCM_TAG_SIZE if padded0 > PREAMBLE_INLINE_SIZE else 0
        op3 = 0
        if len(lengths) > 1:
            op3 = sum(_pad16(n) for n in lengths[1:]) + EPILOGUE_SECURE_SIZE + GCM_TAG_SIZE
        return (tag, lengths, flags, first[PREAMBLE_SIZE:], op2, op3)

    def _next_secure_rev0(self, rbuf: ReceiveBuffer):
        cipher = self.cipher
        pending = self._pending
        if pending is None:
            if len(rbuf) < PREAMBLE_SIZE:
                return None
            # the lengths are needed before the tag can be checked
            preamble = cipher.peek_keystream_decrypt(memoryview(rbuf.buf)[rbuf.pos:rbuf.pos + PREAMBLE_SIZE])
            tag, lengths, flags = self._check_preamble(preamble, 0)
            size = (PREAMBLE_SIZE + sum(_pad16(n) for n in lengths)
                    + EPILOGUE_SECURE_SIZE + GCM_TAG_SIZE)
            pending = self._pending = (tag, lengths, flags, size)
        tag, lengths, flags, size = pending
        if len(rbuf) < size:
            if size >= LARGE_FRAME:
                rbuf.expect(size)
            return None
        self._pending = None
        pos = rbuf.pos
        in_place = rbuf.shared
        view = memoryview(rbuf.buf)
        try:
            if in_place:
                plain = cipher.decrypt_in_place(view[pos:pos + size]).toreadonly()
            else:
                plain = cipher.decrypt(view[pos:pos + size])
        finally:
            if not in_place:
                view.release()
            rbuf.pos = pos + size
            if in_place:
                rbuf.settle()
        segments = []
        shared = memoryview(plain)
        off = PREAMBLE_SIZE
        for n in lengths:
            segments.append(shared[off:off + n])
            off += _pad16(n)
        if plain[off] & LATE_FLAG_ABORTED:
            return _ABORTED
        return Frame(tag, segments, flags)


_ABORTED = object()


def _tag_name(tag: int) -> str:
    try:
        return Tag(tag).name
    except ValueError:
        return str(tag)
_SECURE_FIRST_SIZE = PREAMBLE_SIZE + PREAMBLE_INLINE_SIZE + GCM_TAG_SIZE  # 96
#: preambles the READY fast path remembers per connection (FrameReader._shapes)
_MAX_SHAPES = 16
#: secure fast path: segments of decrypted frame bodies smaller than this
#: come out as bytes (msgr2tx.core.messages.SHARE_SEGMENTS_FROM: a message
#: copies smaller views anyway)
_SLICE_BELOW = 64 << 10


def _copy(view, pos, length):
    return bytes(view[pos:pos + length])


def _share(view, pos, length):
    return view[pos:pos + length]
