"""
On-wire compression (Ceph 18.2-20.2): the four segment formats against
vectors made by other implementations (python-lz4, zstandard, a hand-built
snappy block), bounded decompression, the COMPRESSION_REQUEST/_DONE
exchange with Ceph's who-compresses rules, and whole conversations between
two msgr2tx cores whose frames are decoded again from the captured bytes.
"""

import os
import struct
import subprocess
import sys
import tempfile
import zlib

from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase, TestCase

from msgr2tx.auth import AuthDone
from msgr2tx.auth.none import NoneClientHandler, NoneServerHandler
from msgr2tx.core import compression as C
from msgr2tx.core import events as E
from msgr2tx.core import frames as F
from msgr2tx.core.config import ConnectionConfig
from msgr2tx.core.connection import BANNER_SIZE, State
from msgr2tx.core.constants import ConnectionMode, Msgr2Feature, Tag
from msgr2tx.core.crypto import RxCipher, split_connection_secret
from msgr2tx.core.encoding import EntityName, EntityType, utime_t
from msgr2tx.core.crc import segment_crc
from msgr2tx.core.framing import FrameReader, FrameWriter, ReceiveBuffer, build_preamble
from msgr2tx.core.messages import GenericMessage
from msgr2tx.errors import CompressionError, FrameTooLarge, UnexpectedFrame
from msgr2tx.testing import CorePair, Interceptor
from tests import cephlab

SNAPPY, ZLIB, ZSTD, LZ4 = C.SUPPORTED_ALGORITHMS
SECRET = bytes(range(64))

# made with python-lz4 (lz4.block.compress, the second chunk with the first
# as its dictionary, as LZ4_compress_fast_continue does): 2 chunks, 135 and
# 90 bytes; the second block cannot be decoded without the first one's output
LZ4_TWO_CHUNKS = bytes.fromhex(
    "0200000087000000380000005a00000010000000ff1e54686520717569636b2062726f776e20666f78206a756d7073206f"
    "76657220746865206c617a7920646f672e202d004250646f672e200f2d00182f21202d001550646f672e20")
LZ4_TWO_CHUNKS_PLAIN = (b"The quick brown fox jumps over the lazy dog. " * 3
                        + b"The quick brown fox jumps over the lazy dog! "
                        + b"The quick brown fox jumps over the lazy dog. ")
# made with the zstandard package (level 1, content size in the frame
# header) behind Ceph's le32 length prefix: "ceph " x 40
ZSTD_CEPH = bytes.fromhex("c800000028b52ffd20c865000028636570682001004050450b")
# a raw snappy block built by hand: varint 12, literal "abc", copy of 9 bytes from offset 3
SNAPPY_ABC = bytes.fromhex("0c 08 616263 15 03")


class FormatTests(SynchronousTestCase):
    """Each method's blob, byte for byte as Ceph's plugin frames it."""

    def test_snappy_raw_block(self):
        self.assertEqual(C.decompress(SNAPPY, SNAPPY_ABC, 100), b"abc" * 4)
        blob = C.compress(SNAPPY, b"abc" * 100)
        # raw snappy: starts with the varint32 length (300 = ac 02), no stream header
        self.assertEqual(blob[:2], b"\xac\x02")
        self.assertNotIn(b"sNaPpY", blob)

    def test_zlib_mark_then_raw_deflate(self):
        data = b"ceph osd " * 200
        blob = C.compress(ZLIB, data)
        self.assertEqual(blob[0], 0)
        # raw deflate (window bits -15), no zlib header and no adler32
        self.assertEqual(zlib.decompressobj(-15).decompress(blob[1:]), data)
        self.assertRaises(zlib.error, zlib.decompress, blob[1:])
        # an ISA-L build marks its blobs with 1; the stream is the same kind
        raw = zlib.compressobj(5, zlib.DEFLATED, -15)
        isal = b"\x01" + raw.compress(data) + raw.flush()
        self.assertEqual(C.decompress(ZLIB, isal, len(data)), data)

    def test_zstd_length_prefix_and_frame(self):
        self.assertEqual(C.decompress(ZSTD, ZSTD_CEPH, 1000), b"ceph " * 40)
        blob = C.compress(ZSTD, b"ceph " * 40)
        self.assertEqual(blob[:4], struct.pack("<I", 200))
        self.assertEqual(blob[4:8], bytes.fromhex("28b52ffd"))

    def test_lz4_chunk_table(self):
        data = b"ceph " * 40
        blob = C.compress(LZ4, data)
        count, origin, size = struct.unpack_from("<III", blob)
        self.assertEqual((count, origin, size), (1, 200, len(blob) - 12))
        self.assertEqual(C.decompress(LZ4, blob, 200), data)

    def test_lz4_later_chunks_refer_to_earlier_output(self):
        self.assertEqual(C.decompress(LZ4, LZ4_TWO_CHUNKS, 1000), LZ4_TWO_CHUNKS_PLAIN)
        # the limit counts both chunks together
        self.assertRaises(FrameTooLarge, C.decompress, LZ4, LZ4_TWO_CHUNKS, 224)

    def test_roundtrip_every_method(self):
        rnd = os.urandom(3000)
        for method in C.SUPPORTED_ALGORITHMS:
            for data in (b"x", b"abc" * 1000, rnd, rnd[:100] * 50, bytes(70000)):
                blob = C.compress(method, data)
                self.assertEqual(C.decompress(method, blob, len(data)), data, C.algorithm_name(method))

    def test_parse_algorithms(self):
        self.assertEqual(C.parse_algorithms("zstd lz4"), (ZSTD, LZ4))
        self.assertEqual(C.parse_algorithms("snappy,zlib, snappy"), (SNAPPY, ZLIB))
        self.assertRaises(ValueError, C.parse_algorithms, "brotli")
        self.assertRaises(ValueError, C.parse_algorithms, "")

    def test_pick_method_client_order_wins(self):
        self.assertEqual(C.pick_method((ZSTD, LZ4), (LZ4, ZSTD)), ZSTD)
        self.assertEqual(C.pick_method((LZ4, ZSTD), (ZSTD, LZ4)), LZ4)
        self.assertEqual(C.pick_method((LZ4,), (ZSTD,)), 0)
        self.assertEqual(C.pick_method((5, ZLIB), (5, ZLIB)), ZLIB)  # brotli: not ours


class BadBlobTests(SynchronousTestCase):
    """Blobs that do not decompress, or would decompress past the limit."""

    def test_garbage_is_a_compression_error(self):
        for method in C.SUPPORTED_ALGORITHMS:
            for blob in (b"\x07", b"\xff" * 40, struct.pack("<III", 1, 10, 3) + b"\xff\xff\xff"):
                self.assertRaises((CompressionError, FrameTooLarge), C.decompress, method, blob, 1000)

    def test_truncated_blobs(self):
        data = os.urandom(200) * 20
        for method in C.SUPPORTED_ALGORITHMS:
            blob = C.compress(method, data)
            self.assertRaises(CompressionError, C.decompress, method, blob[:len(blob) // 2], len(data))

    def test_declared_length_over_the_limit(self):
        # each refused on its header, before any output is made
        self.assertRaises(FrameTooLarge, C.decompress, SNAPPY, b"\xff\xff\xff\xff\x0f\x00", 1 << 20)
        self.assertRaises(FrameTooLarge, C.decompress, ZSTD, b"\xff\xff\xff\xff" + ZSTD_CEPH[4:], 1 << 20)
        self.assertRaises(FrameTooLarge, C.decompress, LZ4,
                          struct.pack("<IIIII", 2, 0xFFFFFFFF, 1, 0xFFFFFFFF, 1) + b"\x00\x00", 1 << 20)

    def test_blob_holding_more_than_it_declares(self):
        big = b"ceph " * 1000
        zstd_lie = struct.pack("<I", 100) + C.compress(ZSTD, big)[4:]
        self.assertRaises(CompressionError, C.decompress, ZSTD, zstd_lie, 1 << 20)
        block = C.compress(LZ4, big)[12:]
        lz4_lie = struct.pack("<III", 1, 100, len(block)) + block
        self.assertRaises(CompressionError, C.decompress, LZ4, lz4_lie, 1 << 20)
        # snappy's varint says 100, its elements make 5000
        snappy = C.compress(SNAPPY, big)
        self.assertRaises(CompressionError, C.decompress, SNAPPY, b"\x64" + snappy[2:], 1 << 20)

    def test_zlib_bomb_is_cut_at_the_limit(self):
        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        blob = b"\x00" + b"".join(c.compress(bytes(1 << 20)) for _ in range(16)) + c.flush()
        self.assertRaises(FrameTooLarge, C.decompress, ZLIB, blob, 1 << 20)

    def test_bombs_do_not_grow_memory(self):
        """
        A blob of 256 MiB of zeros, for each method, declared as 1 KiB (or
        with no declaration, zlib): decoding it in a fresh interpreter with a
        1 MiB limit fails without its peak RSS growing by the bomb's size.
        """
        tmp = tempfile.mkdtemp(prefix="compression-bombs-")
        self.addCleanup(lambda: [os.unlink(os.path.join(tmp, n)) for n in os.listdir(tmp)] and os.rmdir(tmp))
        zeros = bytes(256 << 20)
        blobs = {
            "zstd": struct.pack("<I", 1024) + C.compress(ZSTD, zeros)[4:],
            "snappy": b"\x80\x08" + C.compress(SNAPPY, zeros)[5:],
            "zlib": C.compress(ZLIB, zeros),
        }
        block = C.compress(LZ4, zeros)[12:]
        blobs["lz4"] = struct.pack("<III", 1, 1024, len(block)) + block
        del zeros, block
        for name, blob in blobs.items():
            with open(os.path.join(tmp, name), "wb") as f:
                f.write(blob)
        code = (
            "import os, resource, sys\n"
            "from msgr2tx.core import compression as C\n"
            "from msgr2tx.errors import CompressionError, FrameTooLarge\n"
            "d = sys.argv[1]\n"
            "blobs = {n: open(os.path.join(d, n), 'rb').read() for n in os.listdir(d)}\n"
            "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "for n, b in sorted(blobs.items()):\n"
            "    try:\n"
            "        C.decompress(C.CompressionAlgorithm[n.upper()], b, 1 << 20)\n"
            "        print(n, 'decoded')\n"
            "    except (CompressionError, FrameTooLarge) as e:\n"
            "        print(n, type(e).__name__)\n"
            "print('growth_kib', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base)\n"
        )
        proc = subprocess.run([sys.executable, "-c", code, tmp], capture_output=True, text=True, timeout=120)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines())
        self.assertEqual(lines["zstd"], "CompressionError")
        self.assertEqual(lines["lz4"], "CompressionError")
        self.assertEqual(lines["snappy"], "CompressionError")
        self.assertEqual(lines["zlib"], "FrameTooLarge")
        # 256 MiB would be 262144 KiB; a few MiB of working memory is allowed
        self.assertLess(int(lines["growth_kib"]), 16 << 10, proc.stdout)
        print("\nbomb decoding grew the peak RSS by %s KiB" % lines["growth_kib"])


# ---- two msgr2tx cores ---------------------------------------------------------

class _SecureClient(NoneClientHandler):
    allowed_modes = (ConnectionMode.SECURE, ConnectionMode.CRC)

    def handle_done(self, global_id, con_mode, payload):
        return b"k" * 16, SECRET


class _SecureServer(NoneServerHandler):
    allowed_modes = (ConnectionMode.SECURE, ConnectionMode.CRC)

    def handle_request(self, request):
        done = super().handle_request(request)
        return AuthDone(done.global_id, b"", b"k" * 16, SECRET)


def osd_pair(client_methods=(SNAPPY,), server_methods=None, secure=False, rev1=True, min_size=0,
             client_type=EntityType.OSD, server_type=EntityType.OSD, client_mode="force", server_mode="force",
             compress_secure=True, server_compression=True, **server_kw):
    """Two cores that compress for OSD peers, like two Reef OSDs with ms_osd_compress_mode=force."""
    modes = (ConnectionMode.SECURE,) if secure else (ConnectionMode.CRC,)
    common = dict(modes=modes, revision1=rev1, compress_min_size=min_size, compress_secure=compress_secure)
    client_cfg = ConnectionConfig(entity_type=client_type, name=EntityName(client_type, "1"),
                                  compress_mode=client_mode, compression_methods=client_methods, **common)
    server_cfg = ConnectionConfig(entity_type=server_type, entity_num=0,
                                  compression=server_compression,
                                  compress_mode=server_mode if server_compression else "none",
                                  compression_methods=server_methods or client_methods, **common, **server_kw)
    client_auth = _SecureClient if secure else NoneClientHandler
    server_auth = _SecureServer if secure else NoneServerHandler
    return CorePair([client_auth(EntityName(client_type, "1"))], [server_auth()],
                    client_config=client_cfg, server_config=server_cfg)


def wire_frames(wire, rev1, secure=False, from_server=False):
    """
    Every frame in one direction's captured bytes, as (tag, flags, on-wire
    segment lengths, raw segments).  Secure frames are decrypted with the
    test secret from the first encrypted frame on (after AUTH_REQUEST from
    the client, after AUTH_DONE from the server).
    """
    rbuf = ReceiveBuffer()
    rbuf.append(bytes(wire[BANNER_SIZE:]))
    reader = FrameReader(rev1, max_segment=1 << 30, max_frame=1 << 30, max_control=1 << 30)
    out = []
    while True:
        frame = reader.read_frame(rbuf)
        if frame is None:
            break
        out.append((frame.tag, frame.flags, [len(s) for s in frame.segments], [bytes(s) for s in frame.segments]))
        if secure and frame.tag == (Tag.AUTH_DONE if from_server else Tag.AUTH_REQUEST):
            key, rx_nonce, _ = split_connection_secret(SECRET, accepting=not from_server)
            reader.cipher = RxCipher(key, rx_nonce, rev1)
    assert len(rbuf) == 0, "bytes left over in the capture"
    return out


def compressed_after_done(frames, method):
    """The frames after COMPRESSION_DONE/REQUEST: (tag, plain size, wire size) for the compressed ones."""
    result = []
    for tag, flags, lengths, segs in frames:
        if flags & 1:
            plain = C.RxDecompressor(method).decompress_segments(segs, 1 << 30, 1 << 30)
            result.append((tag, sum(len(s) for s in plain), sum(lengths)))
    return result


class NegotiationTests(SynchronousTestCase):
    """COMPRESSION_REQUEST / COMPRESSION_DONE and Ceph's rules for who compresses."""

    def request_and_done(self, pair):
        c2s = wire_frames(pair.wire_c2s, pair.client.rev1)
        s2c = wire_frames(pair.wire_s2c, pair.client.rev1, from_server=True)
        (req,) = [segs[0] for tag, _, _, segs in c2s if tag == Tag.COMPRESSION_REQUEST]
        (done,) = [segs[0] for tag, _, _, segs in s2c if tag == Tag.COMPRESSION_DONE]
        return req.hex(), done.hex()

    def test_osd_to_osd_force_snappy_bytes(self):
        pair = osd_pair()
        pair.handshake()
        self.assertIs(pair.client.state, State.READY)
        # as seen between two Reef OSDs
        self.assertEqual(self.request_and_done(pair), ("010100000001000000", "0101000000"))
        self.assertEqual((pair.client.compression_method, pair.server.compression_method), (SNAPPY, SNAPPY))

    def test_request_comes_after_auth_signature_and_before_client_ident(self):
        pair = osd_pair()
        pair.handshake()
        tags = [t for t, _, _, _ in wire_frames(pair.wire_c2s, True)]
        self.assertEqual(tags[:5], [Tag.HELLO, Tag.AUTH_REQUEST, Tag.AUTH_SIGNATURE,
                                    Tag.COMPRESSION_REQUEST, Tag.CLIENT_IDENT])
        tags = [t for t, _, _, _ in wire_frames(pair.wire_s2c, True, from_server=True)]
        self.assertEqual(tags[:5], [Tag.HELLO, Tag.AUTH_DONE, Tag.AUTH_SIGNATURE,
                                    Tag.COMPRESSION_DONE, Tag.SERVER_IDENT])

    def test_client_order_wins(self):
        pair = osd_pair(client_methods=(ZSTD, LZ4), server_methods=(LZ4, ZSTD))
        pair.handshake()
        self.assertEqual(self.request_and_done(pair), ("01020000000300000004000000", "0103000000"))
        pair = osd_pair(client_methods=(LZ4, ZSTD), server_methods=(ZSTD, LZ4))
        pair.handshake()
        self.assertEqual(pair.server.compression_method, LZ4)

    def test_no_common_method_is_off_not_an_error(self):
        pair = osd_pair(client_methods=(LZ4,), server_methods=(ZSTD,))
        pair.handshake()
        self.assertIs(pair.client.state, State.READY)
        self.assertEqual(self.request_and_done(pair), ("010100000004000000", "0000000000"))

    def test_mode_none_still_sends_the_request(self):
        # Reef/Tentacle servers fault on CLIENT_IDENT in COMPRESSION_ACCEPTING
        pair = osd_pair(client_methods=(ZSTD, LZ4), client_mode="none")
        pair.handshake()
        self.assertEqual(self.request_and_done(pair), ("00020000000300000004000000", "0000000000"))

    def test_client_entity_to_an_osd_gets_no_compression(self):
        # the OSD computes its mode for peer type CLIENT: none
        pair = osd_pair(client_type=EntityType.CLIENT)
        pair.handshake()
        self.assertEqual(self.request_and_done(pair), ("010100000001000000", "0000000000"))
        self.assertEqual(pair.client.compression_method, 0)

    def test_towards_a_monitor_nothing_is_asked(self):
        pair = osd_pair(server_type=EntityType.MON)
        pair.handshake()
        self.assertEqual(self.request_and_done(pair), ("0000000000", "0000000000"))

    def test_secure_needs_compress_secure(self):
        pair = osd_pair(secure=True, compress_secure=False)
        pair.handshake()
        self.assertIs(pair.client.state, State.READY)
        self.assertEqual(pair.client.compression_method, 0)
        # the request went out encrypted: is_compress 0, methods still listed
        c2s = wire_frames(pair.wire_c2s, True, secure=True)
        (req,) = [segs[0] for tag, _, _, segs in c2s if tag == Tag.COMPRESSION_REQUEST]
        self.assertEqual(req.hex(), "000100000001000000")

    def test_peer_without_the_bit_gets_no_request(self):
        # Ceph 16.2 advertises supported=1: no COMPRESSION_* frames at all
        pair = osd_pair(server_compression=False)
        pair.handshake()
        self.assertIs(pair.client.state, State.READY)
        self.assertEqual(bytes(pair.wire_s2c[10:18]).hex(), "0100000000000100")  # (and bit 48, ours)
        self.assertEqual(bytes(pair.wire_c2s[10:18]).hex(), "0300000000000100")  # (and bit 48, ours)
        tags = [t for t, _, _, _ in wire_frames(pair.wire_c2s, True)]
        self.assertNotIn(Tag.COMPRESSION_REQUEST, tags)
        self.assertEqual(tags[3], Tag.CLIENT_IDENT)
        self.assertEqual(pair.client.peer_supported & Msgr2Feature.COMPRESSION, 0)

    def test_config_validation(self):
        self.assertRaises(ValueError, ConnectionConfig, compress_mode="aggressive")
        self.assertRaises(ValueError, ConnectionConfig, compression_methods=(5,))
        self.assertRaises(ValueError, ConnectionConfig, compress_mode="force", compression=False)
        self.assertRaises(ValueError, ConnectionConfig, compress_min_size=-1)


class CompressedConversationTests(SynchronousTestCase):
    """
    Two msgr2tx cores, each method x crc/secure x rev0/rev1: compressed
    frames both ways, checked on the captured bytes.
    """

    def converse(self, method, secure, rev1):
        pair = osd_pair(client_methods=(method,), secure=secure, rev1=rev1, min_size=64)
        pair.handshake()
        self.assertIs(pair.client.state, State.READY)
        self.assertEqual(pair.client.compression_method, method)
        front = b"osd_op(client.4100.0:1 2.7 rbd_data.1 [write 0~4096]) " * 30
        data = bytes(range(256)) * 16
        pair.client.send_message(GenericMessage(0x7000, front, b"", data))
        pair.server.send_message(GenericMessage(0x7001, front[:500]))
        pair.client.send_keepalive(utime_t(1, 2))
        pair.server.send_message(GenericMessage(0x7002, b"tiny"))  # under min_size: plain
        pair.pump()
        (m1,) = [e.message for e in pair.events_of("server", E.MessageReceived)]
        self.assertEqual((bytes(m1.front), bytes(m1.data)), (front, data))
        got = [bytes(e.message.front) for e in pair.events_of("client", E.MessageReceived)]
        self.assertEqual(got, [front[:500], b"tiny"])
        self.assertEqual(len(pair.events_of("client", E.KeepaliveAckReceived)), 1)

        c2s = wire_frames(pair.wire_c2s, rev1, secure=secure)
        s2c = wire_frames(pair.wire_s2c, rev1, secure=secure, from_server=True)
        ctags = {t: f for t, f, _, _ in c2s}
        # CLIENT_IDENT (over 64 bytes) is already compressed; so is SERVER_IDENT
        self.assertEqual(ctags[Tag.CLIENT_IDENT], 1)
        self.assertEqual({t: f for t, f, _, _ in s2c}[Tag.SERVER_IDENT], 1)
        # the handshake frames before COMPRESSION_DONE never are
        for frames in (c2s, s2c):
            before = frames[:[t for t, *_ in frames].index(
                Tag.COMPRESSION_REQUEST if frames is c2s else Tag.COMPRESSION_DONE) + 1]
            self.assertEqual([f for _, f, _, _ in before], [0] * len(before))
        # messages both ways compressed; the small one and the 8-byte keepalive not
        cmsg = [(f, lens) for t, f, lens, _ in c2s if t == Tag.MESSAGE]
        smsg = [(f, lens) for t, f, lens, _ in s2c if t == Tag.MESSAGE]
        self.assertEqual([f for f, _ in cmsg], [1])
        self.assertEqual([f for f, _ in smsg], [1, 0])
        self.assertEqual(ctags[Tag.KEEPALIVE2], 0)
        # an empty middle segment stays empty on the wire
        self.assertEqual(cmsg[0][1][2], 0)
        both = compressed_after_done(c2s, method) + compressed_after_done(s2c, method)
        plain = sum(p for _, p, _ in both)
        wire = sum(w for _, _, w in both)
        self.assertLess(wire, plain)
        return plain, wire

    def test_every_method_mode_and_revision(self):
        ratios = {}
        for method in C.SUPPORTED_ALGORITHMS:
            for secure in (False, True):
                for rev1 in (False, True):
                    plain, wire = self.converse(method, secure, rev1)
                    ratios[(C.algorithm_name(method), secure, rev1)] = wire / plain
        self.assertEqual(len(ratios), 16)

    def test_keepalive_compressed_at_min_size_zero(self):
        pair = osd_pair(client_methods=(ZSTD,), min_size=0)
        pair.handshake()
        pair.client.send_keepalive(utime_t(1, 2))
        pair.pump()
        c2s = wire_frames(pair.wire_c2s, True)
        s2c = wire_frames(pair.wire_s2c, True, from_server=True)
        self.assertEqual([f for t, f, _, _ in c2s if t == Tag.KEEPALIVE2], [1])
        self.assertEqual([f for t, f, _, _ in s2c if t == Tag.KEEPALIVE2_ACK], [1])
        self.assertEqual(len(pair.events_of("client", E.KeepaliveAckReceived)), 1)

    def test_counters(self):
        pair = osd_pair(client_methods=(ZLIB,), min_size=64)
        pair.handshake()
        pair.client.send_message(GenericMessage(0x7000, b"a" * 10000))
        pair.pump()
        tx = pair.client.writer.compressor
        self.assertGreater(tx.raw_bytes, 10000)
        self.assertLess(tx.wire_bytes, 1000)


class BadPeerTests(SynchronousTestCase):
    """A peer that compresses when it should not, or sends what does not decompress."""

    def ready_pair(self, method=0):
        if method:
            pair = osd_pair(client_methods=(method,), min_size=0)
        else:
            pair = osd_pair(client_mode="none", server_mode="none")
        pair.handshake()
        self.assertIs(pair.server.state, State.READY)
        return pair

    def forged(self, pair, method):
        """A KEEPALIVE2 compressed with C{method}, as a misbehaving peer would send it."""
        writer = FrameWriter(pair.client.rev1)
        writer.compressor = C.TxCompressor(method, 0)
        return b"".join(writer.assemble(Tag.KEEPALIVE2, F.Keepalive2(utime_t(1, 1)).segments()))

    def test_compressed_frame_without_agreement(self):
        pair = self.ready_pair()
        err = self.assertRaises(CompressionError, pair.server.receive_data, self.forged(pair, ZSTD))
        self.assertIn("no compression was agreed", str(err))
        self.assertIs(pair.server.state, State.CLOSED)

    def test_compressed_frame_of_another_method(self):
        pair = self.ready_pair(SNAPPY)
        self.assertRaises(CompressionError, pair.server.receive_data, self.forged(pair, LZ4))
        self.assertIs(pair.server.state, State.CLOSED)

    def test_bomb_in_a_control_frame(self):
        pair = self.ready_pair(ZSTD)
        # 8 MiB of zeros claimed and contained: over max_control (1 MiB)
        blob = C.compress(ZSTD, bytes(8 << 20))
        wire = build_preamble(Tag.KEEPALIVE2, [len(blob)], [8], 1) + blob + struct.pack("<I", segment_crc(blob))
        self.assertRaises(FrameTooLarge, pair.server.receive_data, wire)
        self.assertIs(pair.server.state, State.CLOSED)

    def test_server_picks_a_method_we_did_not_offer(self):
        pair = osd_pair(client_methods=(SNAPPY,))
        pair.start()
        # the server answers with lz4 whatever the client asked
        pair.server.config = ConnectionConfig(
            entity_type=EntityType.OSD, entity_num=0, compress_mode="force", compression_methods=(LZ4,),
            compress_min_size=0)
        original = C.pick_method
        self.patch(C, "pick_method", lambda client, ours: LZ4 if original(client, (SNAPPY,)) else 0)
        self.assertRaises(UnexpectedFrame, pair.pump)
        self.assertIs(pair.client.state, State.CLOSED)


class OptionTests(SynchronousTestCase):
    """The compression options of ``twistd msgr2`` and the ``msgr2tx`` CLI reach ConnectionConfig."""

    def test_twistd_options(self):
        from twisted.python import usage

        from msgr2tx.tap import Options, makeService
        options = Options()
        options.parseOptions(["--auth", "none", "--mode", "crc", "--entity", "osd.3",
                              "--listen", "tcp:0:interface=127.0.0.1", "--compress-mode", "force",
                              "--compress-methods", "zstd,lz4", "--compress-min-size", "64", "--compress-secure"])
        (listener,) = list(makeService(options))
        config = listener.factory.config
        self.assertEqual((config.compression, config.compress_mode, config.compression_methods,
                          config.compress_min_size, config.compress_secure),
                         (True, "force", (ZSTD, LZ4), 64, True))
        options = Options()
        options.parseOptions(["--auth", "none", "--mode", "crc", "--listen", "tcp:0:interface=127.0.0.1",
                              "--no-compression"])
        (listener,) = list(makeService(options))
        self.assertEqual((listener.factory.config.compression, listener.factory.config.msgr2_supported),
                         (False, 1 | Msgr2Feature.MSGR2TX_FAST_RECONNECT))
        for args in (["--compress-mode", "passive"], ["--compress-methods", "brotli"],
                     ["--compress-min-size", "-1"], ["--compress-mode", "force", "--no-compression"]):
            self.assertRaises(usage.UsageError, Options().parseOptions, ["--auth", "none", "--mode", "crc"] + args)

    def test_cli_options(self):
        from msgr2tx import cli
        parser = cli.build_parser()
        args = parser.parse_args(["ping", "v2:127.0.0.1:3300", "--name", "osd.1", "--compress-mode", "force",
                                  "--compress-methods", "lz4 zlib", "--compress-min-size", "0"])
        _, config = cli._client_setup(args)
        self.assertEqual((config.compress_mode, config.compression_methods, config.compress_min_size,
                          config.compression, config.compress_secure), ("force", (LZ4, ZLIB), 0, True, False))
        args = parser.parse_args(["ping", "v2:127.0.0.1:3300", "--compress-methods", "lzma"])
        self.assertRaises(ValueError, cli._client_setup, args)
        args = parser.parse_args(["ping", "v2:127.0.0.1:3300", "--no-compression"])
        self.assertEqual(cli._client_setup(args)[1].msgr2_supported, 1 | Msgr2Feature.MSGR2TX_FAST_RECONNECT)


class Pacific16Tests(TestCase):
    """
    Ceph 16.2 neither advertises nor speaks compression (its banner says
    supported=1).  We advertise the bit with compression forced and still
    interoperate: no COMPRESSION_REQUEST goes out, nothing is compressed.
    """

    timeout = 120

    @defer.inlineCallbacks
    def _connect(self, addr, name, rev1):
        from twisted.internet import reactor

        from msgr2tx.client import parse_target
        from msgr2tx.factory import Msgr2ClientFactory
        config = ConnectionConfig(entity_type=name.type, name=name, revision1=rev1, compress_mode="force",
                                  compression_methods=(ZSTD, SNAPPY), compress_min_size=0)
        endpoint, target = parse_target(reactor, addr, 10)
        factory = Msgr2ClientFactory([NoneClientHandler(name)], config, target_addr=target,
                                     reactor=reactor, handshake_timeout=10)
        interceptor = factory.interceptor = Interceptor()
        p = yield endpoint.connect(factory)
        self.addCleanup(p.transport.loseConnection)
        yield p.whenReady()
        yield p.keepalive()
        conn = p.conn
        self.assertEqual(conn.peer_supported, 1)
        self.assertEqual(conn.config.msgr2_supported, (3 if rev1 else 2) | Msgr2Feature.MSGR2TX_FAST_RECONNECT)
        self.assertEqual(conn.compression_method, 0)
        self.assertIsNone(conn.writer.compressor)
        writes = {tag for (role, point, tag), n in interceptor.counts.items() if point == "write"}
        self.assertIn(Tag.CLIENT_IDENT, writes)
        self.assertIn(Tag.KEEPALIVE2, writes)
        self.assertNotIn(Tag.COMPRESSION_REQUEST, writes)
        return p

    @defer.inlineCallbacks
    def test_monitor(self):
        mon = cephlab.shared_monitor(auth="none")
        for rev1 in (True, False):
            p = yield self._connect(mon.addr, EntityName.parse("client.admin"), rev1)
            self.assertEqual(str(p.info.peer_name), "mon.0")

    @defer.inlineCallbacks
    def test_osd_as_an_osd_entity(self):
        mon = cephlab.shared_monitor(auth="none", osds=1)
        osd = mon.osds[0]
        for rev1 in (True, False):
            p = yield self._connect(osd.addr, EntityName.parse("osd.7"), rev1)
            self.assertEqual(p.info.peer_name.type, EntityType.OSD)


class FrameRecorder(Interceptor):
    """
    An interceptor that records, for each connection it is given to, every
    frame read (tag, preamble flags, on-wire and decompressed sizes) and the
    compressed frames written (tag, plain and on-wire segment bytes).  It
    works in secure mode too, where a capture of the TCP stream could not be
    read: it looks at the frames just inside the encryption.
    """

    def __init__(self):
        super().__init__()
        self.rx = []
        self.tx = []

    def __call__(self, connection, point, tag=None):
        if point == "banner":
            self._wrap(connection)
        return super().__call__(connection, point, tag)

    def _wrap(self, conn):
        reader, writer = conn.reader, conn.writer
        read_frame, next_frame, assemble = reader.read_frame, reader.next_frame, writer.assemble

        def recording_read(rbuf):
            frame = read_frame(rbuf)
            if frame is not None:
                self.rx.append([frame.tag, frame.flags, sum(len(s) for s in frame.segments), None])
            return frame

        def recording_next(rbuf):
            frame = next_frame(rbuf)
            if frame is not None:
                self.rx[-1][3] = sum(len(s) for s in frame.segments)
            return frame

        def recording_assemble(tag, segments, *args):
            tx = writer.compressor
            before = (tx.raw_bytes, tx.wire_bytes) if tx is not None else None
            parts = assemble(tag, segments, *args)
            if tx is not None and tx.raw_bytes != before[0]:
                self.tx.append((tag, tx.raw_bytes - before[0], tx.wire_bytes - before[1]))
            return parts

        reader.read_frame = recording_read
        reader.next_frame = recording_next
        writer.assemble = recording_assemble

    def compressed_rx(self):
        return [(Tag(t).name, plain, wire) for t, flags, wire, plain in self.rx if flags & 1]

    def compressed_tx(self):
        return [(Tag(t).name, plain, wire) for t, plain, wire in self.tx]


class _OsdCompression:
    """
    Our client identifies as an OSD entity (HELLO type OSD, cephx with an
    OSD key) towards a real OSD with ms_osd_compress_mode=force and a small
    ms_osd_compress_min_size: each of the four methods is negotiated and
    frames go compressed both ways, in crc mode and in secure mode with
    ms_compress_secure.
    """

    release: str = ""
    timeout = 600
    #: (release, method, mode) -> (plain bytes, wire bytes) of the compressed frames both ways
    ratios: dict = {}

    def setUp(self):
        self.mon = cephlab.shared_monitor("cephx", osds=1, release=self.release)
        self.osd = self.mon.osds[0]
        out = self.mon.ceph_checked("auth", "get-or-create", "osd.7", "mon", "allow profile osd",
                                    "osd", "allow *", "mgr", "allow profile osd").stdout
        d = tempfile.mkdtemp(prefix="compression-keyring-")
        self.keyring = os.path.join(d, "keyring")
        with open(self.keyring, "wb") as f:
            f.write(out)
        self.addCleanup(lambda: (os.unlink(self.keyring), os.rmdir(d)))
        self.tell(ms_osd_compress_mode="force", ms_osd_compress_min_size="8", ms_compress_secure="true")

    def tell(self, **options):
        for name, value in options.items():
            self.mon.ceph_checked("tell", self.osd.name, "config", "set", name, value)
        for name, value in options.items():
            got = self.mon.ceph_checked("tell", self.osd.name, "config", "get", name).stdout.decode()
            self.assertIn('"%s"' % value, got)

    @defer.inlineCallbacks
    def _converse(self, method, secure):
        from twisted.internet import reactor

        from msgr2tx.auth.cephx import CephxAuthProvider
        from msgr2tx.client import connect, parse_target
        from msgr2tx.factory import Msgr2ClientFactory
        from msgr2tx.clients.monclient import MonClient
        name = C.algorithm_name(method)
        self.tell(ms_osd_compression_algorithm=name)
        me = EntityName.parse("osd.7")
        modes = (ConnectionMode.SECURE,) if secure else (ConnectionMode.CRC,)
        config = ConnectionConfig(entity_type=EntityType.OSD, name=me, modes=modes, compress_mode="force",
                                  compression_methods=(method,), compress_min_size=0, compress_secure=True)
        handler = CephxAuthProvider().clientHandler("keyring=%s" % self.keyring, name=me)
        p = yield connect(reactor, self.mon.addr, [handler], config, receiver=MonClient(), timeout=15)
        self.addCleanup(p.transport.loseConnection)
        # towards a monitor nothing is compressed, whatever we asked
        self.assertEqual(p.conn.compression_method, 0)
        endpoint, target = parse_target(reactor, self.osd.addr, 15)
        factory = Msgr2ClientFactory([handler.spawn()], config, target_addr=target, reactor=reactor,
                                     handshake_timeout=15)
        recorder = factory.interceptor = FrameRecorder()
        p2 = yield endpoint.connect(factory)
        self.addCleanup(p2.transport.loseConnection)
        yield p2.whenReady()
        self.assertEqual(p2.conn.peer_supported & 3, 3)
        self.assertEqual(p2.info.mode_name, "secure" if secure else "crc")
        self.assertEqual(p2.conn.compression_method, method)
        self.assertEqual(p2.info.compression_name, name)
        for _ in range(3):
            yield p2.keepalive()
        # No MESSAGE is sent: Reef 18.2.7 and Tentacle 20.2.4 OSDs abort
        # (Throttle::put, ceph_assert(count >= c), from ~Message) when a
        # compressed MESSAGE reaches their public messenger: the byte
        # throttle is taken with the compressed segment lengths and
        # released with the decompressed ones.
        rx, tx = recorder.compressed_rx(), recorder.compressed_tx()
        rx_tags, tx_tags = {t for t, _, _ in rx}, {t for t, _, _ in tx}
        self.assertIn("SERVER_IDENT", rx_tags)
        self.assertIn("KEEPALIVE2_ACK", rx_tags)
        self.assertIn("CLIENT_IDENT", tx_tags)
        self.assertIn("KEEPALIVE2", tx_tags)
        # nothing came uncompressed after COMPRESSION_DONE (min_size 8 covers every frame)
        after = recorder.rx[[r[0] for r in recorder.rx].index(Tag.COMPRESSION_DONE) + 1:]
        self.assertEqual([r[1] for r in after], [1] * len(after))
        plain = sum(p for _, p, _ in rx + tx)
        wire = sum(w for _, _, w in rx + tx)
        self.ratios[(self.release, name, "secure" if secure else "crc")] = (plain, wire, rx, tx)
        print("\n%s %s %s: %d plain -> %d on the wire (%.2f); rx %s tx %s"
              % (self.release, name, "secure" if secure else "crc", plain, wire, wire / plain, rx, tx))

    @defer.inlineCallbacks
    def test_every_method_crc_and_secure(self):
        for method in C.SUPPORTED_ALGORITHMS:
            for secure in (False, True):
                yield self._converse(method, secure)


class OsdCompressionReefTests(_OsdCompression, TestCase):
    release = "reef"


class OsdCompressionTentacleTests(_OsdCompression, TestCase):
    release = "tentacle"


class TwistedEchoTests(TestCase):
    """
    Over TCP on loopback: our client as osd.1 to our echo server as osd.0,
    both forcing compression; a 64 KiB message goes out and comes back
    compressed, for each method, in crc and secure mode.
    """

    timeout = 60

    @defer.inlineCallbacks
    def _echo(self, method, secure):
        from twisted.internet import reactor

        from msgr2tx.client import connect
        from msgr2tx.factory import Msgr2ServerFactory
        from msgr2tx.services import EchoReceiver
        modes = (ConnectionMode.SECURE,) if secure else (ConnectionMode.CRC,)
        common = dict(modes=modes, compress_mode="force", compression_methods=(method,), compress_secure=True)
        server_cfg = ConnectionConfig(entity_type=EntityType.OSD, name=EntityName.parse("osd.0"), entity_num=0,
                                      **common)
        server = Msgr2ServerFactory([_SecureServer()], EchoReceiver(), server_cfg)
        server_recorder = server.interceptor = FrameRecorder()
        port = reactor.listenTCP(0, server, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        received = defer.Deferred()

        class Receiver:
            def connectionReady(self, protocol, info):
                pass

            def messageReceived(self, protocol, message):
                received.callback(message)

            def connectionLost(self, protocol, reason):
                pass

        me = EntityName.parse("osd.1")
        client_cfg = ConnectionConfig(entity_type=EntityType.OSD, name=me, **common)
        p = yield connect(reactor, "v2:127.0.0.1:%d" % port.getHost().port, [_SecureClient(me)], client_cfg,
                          receiver=Receiver(), timeout=10)
        self.addCleanup(p.transport.loseConnection)
        self.assertEqual((p.info.compression, p.info.compression_name), (method, C.algorithm_name(method)))
        self.assertEqual(p.info.mode_name, "secure" if secure else "crc")
        front = b"osd_op(client.4100.0:1 2.7 rbd_data.1 [write 0~4096]) " * 1200
        p.sendMessage(GenericMessage(0x7000, front))
        echoed = yield received
        self.assertEqual(bytes(echoed.front), front)
        # the server got it compressed and sent it back compressed
        (rx,) = [(plain, wire) for t, plain, wire in server_recorder.compressed_rx() if t == "MESSAGE"]
        (tx,) = [(plain, wire) for t, plain, wire in server_recorder.compressed_tx() if t == "MESSAGE"]
        self.assertEqual(rx[0], len(front) + 41)
        self.assertEqual(tx[0], len(front) + 41)
        self.assertLess(rx[1], len(front) // 4)

    @defer.inlineCallbacks
    def test_every_method_crc_and_secure(self):
        for method in C.SUPPORTED_ALGORITHMS:
            for secure in (False, True):
                yield self._echo(method, secure)
