"""
Secure mode (AES-128-GCM) framing for msgr2.0 and msgr2.1.

Expected ciphertexts are computed here through a second route: the
streaming GCM interface of ``cryptography`` over plaintext laid out by hand
from the frame rules, with nonces built by hand from the secret.
"""

import os
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from twisted.trial.unittest import SynchronousTestCase

from msgr2tx.auth import AuthDone
from msgr2tx.auth.none import NoneClientHandler, NoneServerHandler
from msgr2tx.core import events as E
from msgr2tx.core.config import ConnectionConfig
from msgr2tx.core.connection import State
from msgr2tx.core.constants import ConnectionMode, Tag
from msgr2tx.core.crypto import NonceSequence, RxCipher, TxCipher, split_connection_secret
from msgr2tx.core.encoding import EntityName, EntityType
from msgr2tx.core.framing import FrameReader, FrameWriter, ReceiveBuffer
from msgr2tx.core.messages import GenericMessage
from msgr2tx.errors import AuthError, AuthTagMismatch, NoncesExhausted
from msgr2tx.testing import CorePair

SECRET = bytes(range(64))
KEY = SECRET[:16]
NONCE_A = SECRET[16:28]
NONCE_B = SECRET[28:40]
# the rev1 crc KEEPALIVE2 (1 s, 2 ns) preamble, a known vector
KEEPALIVE_PREAMBLE = bytes.fromhex("12010800000008000000000000000000000000000000000000000000d8d5f599")
KEEPALIVE_PAYLOAD = struct.pack("<II", 1, 2)


def gcm(nonce, plaintext):
    enc = Cipher(algorithms.AES(KEY), modes.GCM(nonce)).encryptor()
    out = enc.update(plaintext) + enc.finalize()
    return out + enc.tag


def nonce(raw, fixed_add=0, counter_add=0):
    fixed, counter = struct.unpack("<IQ", raw)
    return struct.pack("<IQ", (fixed + fixed_add) & 0xFFFFFFFF, (counter + counter_add) & (2 ** 64 - 1))


def writer(rev1, accepting=False):
    key, rx, tx = split_connection_secret(SECRET, accepting)
    w = FrameWriter(rev1)
    w.cipher = TxCipher(key, tx, rev1)
    return w


def reader(rev1, accepting=False):
    key, rx, tx = split_connection_secret(SECRET, accepting)
    r = FrameReader(rev1)
    r.cipher = RxCipher(key, rx, rev1)
    return r


class SecretSplitTests(SynchronousTestCase):

    def test_client_and_server_directions(self):
        self.assertEqual(split_connection_secret(SECRET, accepting=False), (KEY, NONCE_A, NONCE_B))
        self.assertEqual(split_connection_secret(SECRET, accepting=True), (KEY, NONCE_B, NONCE_A))

    def test_short_secret(self):
        err = self.assertRaises(AuthError, split_connection_secret, SECRET[:39], False)
        self.assertIn("39 bytes", str(err))
        self.assertNotIn(SECRET[:16].hex(), str(err))


class LayoutTests(SynchronousTestCase):

    def test_rev1_small_control_frame_is_one_op_of_96_bytes(self):
        wire = b"".join(writer(True).assemble(Tag.KEEPALIVE2, [KEEPALIVE_PAYLOAD]))
        plaintext = KEEPALIVE_PREAMBLE + KEEPALIVE_PAYLOAD + bytes(40)
        self.assertEqual(len(wire), 96)
        # the client encrypts with nonce B
        self.assertEqual(wire, gcm(NONCE_B, plaintext))

    def test_rev1_server_encrypts_with_nonce_a(self):
        wire = b"".join(writer(True, accepting=True).assemble(Tag.KEEPALIVE2, [KEEPALIVE_PAYLOAD]))
        self.assertEqual(wire, gcm(NONCE_A, KEEPALIVE_PREAMBLE + KEEPALIVE_PAYLOAD + bytes(40)))

    def test_rev1_nonce_counter_is_the_last_eight_bytes(self):
        w = writer(True)
        w.assemble(Tag.KEEPALIVE2, [KEEPALIVE_PAYLOAD])
        second = b"".join(w.assemble(Tag.KEEPALIVE2, [KEEPALIVE_PAYLOAD]))
        self.assertEqual(second, gcm(nonce(NONCE_B, counter_add=1), KEEPALIVE_PREAMBLE + KEEPALIVE_PAYLOAD + bytes(40)))

    def test_rev0_nonce_counter_is_the_first_four_bytes(self):
        w = writer(False)
        first = b"".join(w.assemble(Tag.KEEPALIVE2, [KEEPALIVE_PAYLOAD]))
        second = b"".join(w.assemble(Tag.KEEPALIVE2, [KEEPALIVE_PAYLOAD]))
        # rev0: preamble, payload padded to 16, 16-byte epilogue, one op
        plaintext = KEEPALIVE_PREAMBLE + KEEPALIVE_PAYLOAD + bytes(8) + bytes(16)
        self.assertEqual(first, gcm(NONCE_B, plaintext))
        self.assertEqual(second, gcm(nonce(NONCE_B, fixed_add=1), plaintext))

    def test_rev1_three_operations(self):
        # seg0 of 70 bytes: 48 inline, 32 (70 padded to 80, minus 48) in op 2;
        # segs 1..3 padded, then the epilogue (0x0E + 15 zero) in op 3
        segs = [b"H" * 70, b"F" * 20, b"", b"D" * 33]
        w = writer(True)
        parts = w.assemble(Tag.MESSAGE, segs, (8, 8, 8, 4096))
        preamble = bytes.fromhex(
            "11" "04" "46000000" "0800" "14000000" "0800" "00000000" "0800" "21000000" "0010" "00" "00")
        from msgr2tx.core.crc import preamble_crc
        preamble += struct.pack("<I", preamble_crc(preamble))
        op1 = gcm(nonce(NONCE_B, counter_add=0), preamble + segs[0][:48])
        op2 = gcm(nonce(NONCE_B, counter_add=1), segs[0][48:] + bytes(10))
        op3 = gcm(nonce(NONCE_B, counter_add=2),
                  segs[1] + bytes(12) + segs[3] + bytes(15) + b"\x0e" + bytes(15))
        self.assertEqual(parts, [op1, op2, op3])

    def test_rev1_inline_only_holds_segment_zero(self):
        segs = [b"h" * 20, b"f" * 70]
        parts = writer(True).assemble(Tag.MESSAGE, segs, (8, 8))
        self.assertEqual([len(p) for p in parts], [96, 80 + 16 + 16])


class RoundTripTests(SynchronousTestCase):

    def _roundtrip(self, rev1, sizes):
        w, r = writer(rev1), reader(rev1, accepting=True)
        rbuf = ReceiveBuffer()
        for size in sizes:
            segs = [os.urandom(size), os.urandom(size // 3), b"", os.urandom(size * 2)]
            wire = b"".join(w.assemble(Tag.MESSAGE, segs, (8, 8, 8, 4096)))
            # byte by byte for small frames, in two halves for big ones
            step = 1 if size < 64 else len(wire) // 2 + 1
            frame = None
            for i in range(0, len(wire), step):
                rbuf.append(wire[i:i + step])
                got = r.next_frame(rbuf)
                if got is not None:
                    self.assertIsNone(frame)
                    frame = got
            self.assertIsNotNone(frame)
            expected = [segs[0]] if not size else [segs[0], segs[1], b"", segs[3]]
            self.assertEqual([bytes(seg) for seg in frame.segments], expected)

    def test_rev1(self):
        self._roundtrip(True, [0, 1, 15, 16, 47, 48, 49, 64, 100, 4096, 70000])

    def test_rev0(self):
        self._roundtrip(False, [0, 1, 15, 16, 47, 48, 49, 64, 100, 4096, 70000])


class TamperTests(SynchronousTestCase):

    def _tampered(self, rev1, flip_at):
        w, r = writer(rev1), reader(rev1, accepting=True)
        wire = bytearray(b"".join(w.assemble(Tag.MESSAGE, [b"h" * 41, b"front", b"", b"data" * 30],
                                              (8, 8, 8, 4096))))
        wire[flip_at] ^= 0x01
        rbuf = ReceiveBuffer()
        rbuf.append(bytes(wire))
        return r, rbuf

    def test_rev1_tampered_first_block(self):
        r, rbuf = self._tampered(True, 40)
        self.assertRaises(AuthTagMismatch, r.next_frame, rbuf)

    def test_rev1_tampered_tag(self):
        r, rbuf = self._tampered(True, 95)
        self.assertRaises(AuthTagMismatch, r.next_frame, rbuf)

    def test_rev1_tampered_later_segment(self):
        r, rbuf = self._tampered(True, 120)
        self.assertRaises(AuthTagMismatch, r.next_frame, rbuf)

    def test_rev0_tampered_body(self):
        r, rbuf = self._tampered(False, 100)
        self.assertRaises(AuthTagMismatch, r.next_frame, rbuf)

    def test_rev0_tampered_tag(self):
        r, rbuf = self._tampered(False, -1)
        self.assertRaises(AuthTagMismatch, r.next_frame, rbuf)

    def test_wrong_key(self):
        w = writer(True)
        wire = b"".join(w.assemble(Tag.KEEPALIVE2, [KEEPALIVE_PAYLOAD]))
        r = FrameReader(True)
        r.cipher = RxCipher(b"\x01" * 16, NONCE_B, True)
        rbuf = ReceiveBuffer()
        rbuf.append(wire)
        self.assertRaises(AuthTagMismatch, r.next_frame, rbuf)


class NonceGuardTests(SynchronousTestCase):

    def test_rev1_guard(self):
        seq = NonceSequence(NONCE_B, rev1=True)
        seq.advance_for_testing(2)
        seq.take()
        seq.take()
        self.assertRaises(NoncesExhausted, seq.take)

    def test_rev0_guard_wraps_at_32_bits(self):
        seq = NonceSequence(NONCE_B, rev1=False)
        seq.advance_for_testing(3)
        used = {seq.take() for _ in range(3)}
        self.assertEqual(len(used), 3)
        self.assertRaises(NoncesExhausted, seq.take)

    def test_no_nonce_is_ever_repeated_before_the_guard(self):
        seq = NonceSequence(b"\xff\xff\xff\xff" + bytes(8), rev1=False)
        seen = [seq.take() for _ in range(5)]
        self.assertEqual(len(set(seen)), 5)
        # the u32 field wrapped from 0xffffffff to 0 without touching the counter
        self.assertEqual(seen[1], bytes(12))

    def test_connection_faults_before_reuse(self):
        pair = secure_pair(True)
        pair.handshake()
        # a message with a front segment costs two GCM operations in rev1
        pair.client.writer.cipher.nonces.advance_for_testing(2)
        pair.client.send_message(GenericMessage(0x7000, b"last"))
        self.assertRaises(NoncesExhausted, pair.client.send_message, GenericMessage(0x7000, b"too many"))
        self.assertIs(pair.client.state, State.CLOSED)


def secure_pair(rev1):
    class Client(NoneClientHandler):
        allowed_modes = (ConnectionMode.SECURE, ConnectionMode.CRC)

        def handle_done(self, global_id, con_mode, payload):
            return b"k" * 16, SECRET

    class Server(NoneServerHandler):
        allowed_modes = (ConnectionMode.SECURE, ConnectionMode.CRC)

        def handle_request(self, request):
            done = super().handle_request(request)
            return AuthDone(done.global_id, b"", b"k" * 16, SECRET)

    modes = (ConnectionMode.SECURE, ConnectionMode.CRC)
    return CorePair([Client(EntityName.parse("client.admin"))], [Server()],
                    client_config=ConnectionConfig(modes=modes, revision1=rev1),
                    server_config=ConnectionConfig(entity_type=EntityType.MON, entity_num=0,
                                                   modes=modes, revision1=rev1))


class SecureHandshakeTests(SynchronousTestCase):

    def _check(self, rev1):
        pair = secure_pair(rev1)
        pair.handshake()
        (ready,) = pair.events_of("client", E.Ready)
        self.assertEqual(ready.con_mode, ConnectionMode.SECURE)
        self.assertEqual(ready.rev1, rev1)
        pair.client.send_message(GenericMessage(0x7000, b"x" * 1000, b"", b"y" * 5000))
        pair.server.send_message(GenericMessage(0x7001, b"z" * 10))
        pair.pump()
        (m,) = [e.message for e in pair.events_of("server", E.MessageReceived)]
        self.assertEqual((m.front, m.data), (b"x" * 1000, b"y" * 5000))
        (m,) = [e.message for e in pair.events_of("client", E.MessageReceived)]
        self.assertEqual(m.front, b"z" * 10)
        # nothing after AUTH_DONE travels in the clear
        after = pair.wire_c2s[pair.wire_c2s.find(b"ceph v2") + 26:]
        self.assertNotIn(b"x" * 64, bytes(after))

    def test_rev1(self):
        self._check(True)

    def test_rev0(self):
        self._check(False)
