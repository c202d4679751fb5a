"""
On-wire compression of msgr2 frames, as Ceph 18.2 (Reef) to 20.2 (Tentacle)
do it.  No I/O and no Twisted: bytes in, bytes out.

Who compresses (Ceph's C{CompressorRegistry}, C{src/msg/compressor_registry.cc}):
only connections whose peer is an OSD, and on a secure connection only when
C{ms_compress_secure} allows it (L{compress_mode_for}).  The client lists the
methods it wants in COMPRESSION_REQUEST; the server takes the first one of the
client's list that it also has (L{pick_method}).

Per frame (Ceph's C{FrameAssembler::asm_compress}, C{src/msg/async/frames_v2.cc}):
a frame whose segments add up to at least C{ms_osd_compress_min_size} bytes
has each non-empty segment compressed on its own into a standalone blob, and
the preamble's flags byte gets C{FRAME_EARLY_DATA_COMPRESSED}.  The blob
formats are those of Ceph's compressor plugins (C{src/compressor/*}):

 - snappy (1): a raw snappy block (varint32 length, then elements);
 - zlib (2): one byte, the "compressor variation" mark (0; 1 from an ISA-L
   build), then a raw deflate stream (window bits -15, level 5);
 - zstd (3): le32 uncompressed length, then a zstd frame (level 1);
 - lz4 (4): le32 chunk count N, N x (le32 uncompressed length, le32
   compressed length), then the N raw LZ4 blocks, where a later block may
   refer back into the output of earlier ones (LZ4's streaming API).

Decompression never allocates more than the limit it is given: every format
states the uncompressed length up front (zlib is inflated with a maximum
output size), so a blob that claims or produces more than the limit is a
L{FrameTooLarge} before any output is made.

The codecs come from C{cramjam} (snappy, zstd, lz4) and the standard
library's C{zlib}.
"""

import enum
import struct
import zlib
from typing import Iterable, List, Sequence, Tuple

import cramjam

from msgr2tx.core.encoding import EntityType
from msgr2tx.errors import CompressionError, FrameTooLarge


class CompressionAlgorithm(enum.IntEnum):
    """Ceph's C{Compressor::CompressionAlgorithm}: the method ids on the wire."""

    NONE = 0
    SNAPPY = 1
    ZLIB = 2
    ZSTD = 3
    LZ4 = 4
    BROTLI = 5


#: the methods msgr2tx can compress and decompress
SUPPORTED_ALGORITHMS: Tuple[CompressionAlgorithm, ...] = (
    CompressionAlgorithm.SNAPPY, CompressionAlgorithm.ZLIB,
    CompressionAlgorithm.ZSTD, CompressionAlgorithm.LZ4,
)

#: the values of Ceph's C{ms_osd_compress_mode}
COMPRESS_MODES = ("none", "force")

#: Ceph's defaults: C{ms_osd_compress_min_size}, C{ms_osd_compression_algorithm}
DEFAULT_MIN_SIZE = 1024
DEFAULT_ALGORITHMS: Tuple[int, ...] = (CompressionAlgorithm.SNAPPY,)

# what Ceph's plugins use: zlib level 5 (compressor_zlib_level), raw deflate
# (compressor_zlib_winsize -15), memLevel 8; zstd level 1 (compressor_zstd_level)
_ZLIB_LEVEL = 5
_ZLIB_WBITS = -15
_ZLIB_MEMLEVEL = 8
_ZSTD_LEVEL = 1

_U32 = struct.Struct("<I")
_U32X2 = struct.Struct("<II")


def parse_algorithms(text: str) -> Tuple[int, ...]:
    """
    Parse an ordered method list as Ceph's C{ms_osd_compression_algorithm}
    takes it (C{"zstd lz4"}; commas work too).  Returns the method ids in
    order, without repeats.  Raises C{ValueError} for a method msgr2tx
    cannot compress (brotli included) or an empty list.
    """
    result: List[int] = []
    for word in text.replace(",", " ").split():
        try:
            alg = CompressionAlgorithm[word.strip().upper()]
        except KeyError:
            alg = None
        if alg is None or alg not in SUPPORTED_ALGORITHMS:
            raise ValueError("unknown compression method %r (snappy, zlib, zstd, lz4)" % (word,))
        if alg not in result:
            result.append(alg)
    if not result:
        raise ValueError("the compression method list is empty (snappy, zlib, zstd, lz4)")
    return tuple(result)


def algorithm_name(method: int) -> str:
    """C{"zstd"} for 3, C{"none"} for 0; the number itself for an unknown id."""
    try:
        return CompressionAlgorithm(method).name.lower()
    except ValueError:
        return str(method)


def compress_mode_for(mode: str, secure_allowed: bool, peer_type: int, secure: bool) -> str:
    """
    Ceph's C{CompressorRegistry::get_mode}: the compress mode towards a peer
    of C{peer_type} (a CEPH_ENTITY_TYPE_*), C{"none"} or C{"force"}.  Only OSD
    peers are compressed for; a secure connection only with C{secure_allowed}
    (C{ms_compress_secure}).
    """
    if secure and not secure_allowed:
        return "none"
    if peer_type != EntityType.OSD:
        return "none"
    return mode


def pick_method(client_methods: Iterable[int], our_methods: Sequence[int]) -> int:
    """
    Ceph's C{CompressorRegistry::pick_method}: the first of the client's
    methods that we have too (the client's order wins), or 0 (none).
    """
    for method in client_methods:
        if method in our_methods and method in SUPPORTED_ALGORITHMS:
            return int(method)
    return CompressionAlgorithm.NONE


# ---- codecs ----------------------------------------------------------------

def compress(method: int, data) -> bytes:
    """
    One segment, compressed into the blob format of Ceph's plugin for
    C{method} (see the module docstring).  C{data} is bytes-like and not
    empty.  Raises C{ValueError} for a method msgr2tx does not have.
    """
    if method == CompressionAlgorithm.SNAPPY:
        return bytes(cramjam.snappy.compress_raw(data))
    if method == CompressionAlgorithm.ZSTD:
        return _U32.pack(len(data)) + bytes(cramjam.zstd.compress(data, level=_ZSTD_LEVEL))
    if method == CompressionAlgorithm.LZ4:
        block = bytes(cramjam.lz4.compress_block(data, store_size=False))
        return struct.pack("<III", 1, len(data), len(block)) + block
    if method == CompressionAlgorithm.ZLIB:
        c = zlib.compressobj(_ZLIB_LEVEL, zlib.DEFLATED, _ZLIB_WBITS, _ZLIB_MEMLEVEL)
        return b"\x00" + c.compress(data) + c.flush()
    raise ValueError("msgr2tx cannot compress with method %s" % algorithm_name(method))


def decompress(method: int, blob, limit: int) -> bytes:
    """
    The original bytes of one compressed segment.  At most C{limit} bytes are
    ever allocated for the output.

    @raise FrameTooLarge: the blob would decompress to more than C{limit}.
    @raise CompressionError: the blob is not valid for C{method}.
    """
    name = algorithm_name(method)
    try:
        if method == CompressionAlgorithm.SNAPPY:
            return _decompress_snappy(blob, limit)
        if method == CompressionAlgorithm.ZSTD:
            return _decompress_zstd(blob, limit)
        if method == CompressionAlgorithm.LZ4:
            return _decompress_lz4(blob, limit)
        if method == CompressionAlgorithm.ZLIB:
            return _decompress_zlib(blob, limit)
    except (CompressionError, FrameTooLarge):
        raise
    except (cramjam.DecompressionError, zlib.error, ValueError, struct.error) as e:
        raise CompressionError("a %s segment of %d bytes does not decompress (%s)"
                               % (name, len(blob), type(e).__name__)) from None
    raise CompressionError("no decompressor for method %s" % name)


def _too_large(name: str, claimed: int, limit: int) -> FrameTooLarge:
    return FrameTooLarge("a %s segment would decompress to %d bytes, over the limit of %d"
                         % (name, claimed, limit))


def _exact(name: str, got: int, claimed: int) -> None:
    if got != claimed:
        raise CompressionError("a %s segment decompressed to %d bytes but declares %d" % (name, got, claimed))


def _decompress_snappy(blob, limit: int) -> bytes:
    # the varint length that starts every raw snappy block
    blob = bytes(blob)
    claimed = cramjam.snappy.decompress_raw_len(blob)
    if claimed > limit:
        raise _too_large("snappy", claimed, limit)
    out = bytearray(claimed)
    _exact("snappy", cramjam.snappy.decompress_raw_into(blob, out), claimed)
    return bytes(out)


def _decompress_zstd(blob, limit: int) -> bytes:
    if len(blob) < 4:
        raise CompressionError("a zstd segment of %d bytes lacks its length prefix" % len(blob))
    claimed = _U32.unpack_from(blob)[0]
    if claimed > limit:
        raise _too_large("zstd", claimed, limit)
    out = bytearray(claimed)
    # decompress_into stops with an error at the end of the buffer: a frame
    # that holds more than it claims never grows memory
    _exact("zstd", cramjam.zstd.decompress_into(bytes(memoryview(blob)[4:]), out), claimed)
    return bytes(out)


def _decompress_zlib(blob, limit: int) -> bytes:
    if len(blob) < 2:
        raise CompressionError("a zlib segment of %d bytes is too short" % len(blob))
    # blob[0] is Ceph's compressor variation mark (0 zlib, 1 ISA-L): both
    # are raw deflate with the default window
    d = zlib.decompressobj(_ZLIB_WBITS)
    out = d.decompress(memoryview(blob)[1:], limit + 1)
    if len(out) > limit:
        raise _too_large("zlib", len(out), limit)
    if not d.eof or d.unused_data:
        raise CompressionError("a zlib segment of %d bytes is not one complete deflate stream" % len(blob))
    return out


def _decompress_lz4(blob, limit: int) -> bytes:
    if len(blob) < 4:
        raise CompressionError("an lz4 segment of %d bytes lacks its chunk count" % len(blob))
    count = _U32.unpack_from(blob)[0]
    head = 4 + 8 * count
    if count == 0 or head > len(blob):
        raise CompressionError("an lz4 segment of %d bytes cannot hold %d chunks" % (len(blob), count))
    pairs = [_U32X2.unpack_from(blob, 4 + 8 * i) for i in range(count)]
    claimed = sum(p[0] for p in pairs)
    if claimed > limit:
        raise _too_large("lz4", claimed, limit)
    if sum(p[1] for p in pairs) != len(blob) - head:
        raise CompressionError("an lz4 segment's chunk lengths do not add up to its %d bytes" % len(blob))
    if count == 1:
        out = bytearray(claimed)
        _exact("lz4", cramjam.lz4.decompress_block_into(bytes(memoryview(blob)[head:]), out), claimed)
        return bytes(out)
    # several chunks: each may copy from what the ones before it produced
    out = bytearray()
    pos = head
    for origin, size in pairs:
        start = len(out)
        _lz4_block_continue(memoryview(blob)[pos:pos + size], out, start + origin)
        _exact("lz4", len(out) - start, origin)
        pos += size
    return bytes(out)


def _lz4_block_continue(src, out: bytearray, end: int) -> None:
    """
    Decode one raw LZ4 block onto the end of C{out}, whose earlier bytes are
    the history (LZ4_decompress_safe_continue over a contiguous output).
    Never lets C{out} grow past C{end}.  Raises C{ValueError} on bad input.
    """
    i, n = 0, len(src)
    while True:
        if i >= n:
            raise ValueError("lz4 block ends inside a sequence")
        token = src[i]
        i += 1
        length = token >> 4
        if length == 15:
            while True:
                if i >= n:
                    raise ValueError("lz4 literal length runs off the block")
                b = src[i]
                i += 1
                length += b
                if b != 255:
                    break
        if i + length > n or len(out) + length > end:
            raise ValueError("lz4 literals run off the block or the output")
        out += src[i:i + length]
        i += length
        if i == n:
            return  # the last sequence has literals only
        if i + 2 > n:
            raise ValueError("lz4 match offset runs off the block")
        offset = src[i] | (src[i + 1] << 8)
        i += 2
        mlen = token & 15
        if mlen == 15:
            while True:
                if i >= n:
                    raise ValueError("lz4 match length runs off the block")
                b = src[i]
                i += 1
                mlen += b
                if b != 255:
                    break
        mlen += 4
        if offset == 0 or offset > len(out) or len(out) + mlen > end:
            raise ValueError("lz4 match reaches outside the output")
        start = len(out) - offset
        if offset >= mlen:
            out += out[start:start + mlen]
        else:
            for k in range(mlen):  # an overlapping copy repeats a pattern
                out.append(out[start + k])


# ---- per frame ------------------------------------------------------------------

class TxCompressor:
    """
    The sending half of a negotiated compression: compresses a frame's
    segments when they add up to C{min_size} bytes or more.
    """

    __slots__ = ("method", "min_size", "raw_bytes", "wire_bytes")

    def __init__(self, method: int, min_size: int = DEFAULT_MIN_SIZE) -> None:
        if method not in SUPPORTED_ALGORITHMS:
            raise ValueError("msgr2tx cannot compress with method %s" % algorithm_name(method))
        self.method = int(method)
        self.min_size = min_size
        #: segment bytes before and after compression, over the compressed frames
        self.raw_bytes = 0
        self.wire_bytes = 0

    def compress_segments(self, segments: Sequence, total: int):
        """
        The segments to send instead, or None when the frame goes out as it
        is (below the threshold).  Empty segments stay empty.
        """
        if total < self.min_size:
            return None
        method = self.method
        out = [compress(method, seg) if len(seg) else b"" for seg in segments]
        self.raw_bytes += total
        self.wire_bytes += sum(len(s) for s in out)
        return out


class RxDecompressor:
    """The receiving half: decompresses every segment of a flagged frame."""

    __slots__ = ("method",)

    def __init__(self, method: int) -> None:
        self.method = int(method)

    def decompress_segments(self, segments: Sequence, max_segment: int, max_total: int) -> list:
        """
        The frame's original segments.  Each is at most C{max_segment} bytes
        and all together at most C{max_total}; more is a L{FrameTooLarge}
        before the output is made.
        """
        out = []
        left = max_total
        for seg in segments:
            if not len(seg):
                out.append(b"")
                continue
            plain = decompress(self.method, seg, min(max_segment, left))
            left -= len(plain)
            out.append(plain)
        return out
