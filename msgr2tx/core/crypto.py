"""
Secure mode: AES-128-GCM over msgr2 frames.

The connection secret from the auth method holds a 16-byte key and two
12-byte nonces (A at bytes 16..27, B at 28..39).  The connecting side
decrypts with A and encrypts with B; the accepting side the other way round.

A nonce is a little-endian u32 "fixed" field then a u64 "counter".  Each
GCM operation uses the current nonce and then advances it: msgr2.0 adds one
to the first four bytes (wrapping at 2**32), msgr2.1 to the last eight.
Before a nonce could be used a second time the cipher raises
L{NoncesExhausted}, so a busy connection is torn down instead of reusing a
nonce (the flaw behind CVE-2020-1759).
"""

import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from msgr2tx.errors import AuthError, AuthTagMismatch, NoncesExhausted

KEY_SIZE = 16
NONCE_SIZE = 12
TAG_SIZE = 16
MIN_SECRET_SIZE = KEY_SIZE + 2 * NONCE_SIZE

_NONCE = struct.Struct("<IQ")
_U32_MASK = 0xFFFFFFFF
_U64_MASK = 0xFFFFFFFFFFFFFFFF


class NonceSequence:
    """
    The nonces of one direction, with the no-reuse guard: C{left} counts the
    GCM operations before the first nonce would come round again (2**64 in
    msgr2.1, 2**32 in msgr2.0).
    """

    __slots__ = ("fixed", "counter", "rev1", "left", "_initial")

    def __init__(self, raw: bytes, rev1: bool) -> None:
        self.fixed, self.counter = _NONCE.unpack(raw)
        self.rev1 = rev1
        self._initial = (self.fixed, self.counter)
        self.left = _U64_MASK + 1 if rev1 else _U32_MASK + 1

    def __repr__(self) -> str:
        return "<NonceSequence rev%d>" % (1 if self.rev1 else 0)

    def current(self) -> bytes:
        return _NONCE.pack(self.fixed, self.counter)

    def take(self) -> bytes:
        """The nonce for the next GCM operation; raises L{NoncesExhausted} before one would repeat."""
        left = self.left
        if left <= 0:
            raise NoncesExhausted(_EXHAUSTED)
        self.left = left - 1
        if self.rev1:
            counter = self.counter
            self.counter = (counter + 1) & _U64_MASK
            return _NONCE.pack(self.fixed, counter)
        fixed = self.fixed
        self.fixed = (fixed + 1) & _U32_MASK
        return _NONCE.pack(fixed, self.counter)

    def advance_for_testing(self, operations_left: int) -> None:
        """Move the counter so that only C{operations_left} operations remain."""
        if self.rev1:
            self.counter = (self._initial[1] - operations_left) & _U64_MASK
        else:
            self.fixed = (self._initial[0] - operations_left) & _U32_MASK
        self.left = operations_left


_EXHAUSTED = "AES-GCM nonce space exhausted: the connection must be re-keyed"


def split_connection_secret(secret: bytes, accepting: bool):
    """
    Returns (key, rx_nonce, tx_nonce) for our side.  Raises L{AuthError}
    when the secret is too short for secure mode.
    """
    if len(secret) < MIN_SECRET_SIZE:
        raise AuthError("connection secret of %d bytes is too short for secure mode (need %d)"
                        % (len(secret), MIN_SECRET_SIZE))
    key = bytes(secret[:KEY_SIZE])
    nonce_a = bytes(secret[KEY_SIZE:KEY_SIZE + NONCE_SIZE])
    nonce_b = bytes(secret[KEY_SIZE + NONCE_SIZE:MIN_SECRET_SIZE])
    if accepting:
        return key, nonce_b, nonce_a
    return key, nonce_a, nonce_b


class TxCipher:
    """Encrypts one GCM operation at a time (ciphertext || tag)."""

    __slots__ = ("_aead", "_algorithm", "nonces")

    def __init__(self, key: bytes, nonce: bytes, rev1: bool) -> None:
        self._aead = AESGCM(key)
        self._algorithm = algorithms.AES(key)
        self.nonces = NonceSequence(nonce, rev1)

    def __repr__(self) -> str:
        return "<TxCipher AES-128-GCM>"

    def encrypt_into(self, pieces, out: memoryview) -> int:
        """
        One GCM operation over the concatenation of C{pieces} (bytes-like),
        written to the start of C{out} as ciphertext || tag without joining
        the pieces first; returns the bytes written (their total plus
        L{TAG_SIZE}).  C{out} must hold at least that plus 15 bytes (older
        cryptography releases want a block of room past each piece).  For
        large frames, where writing into a reused buffer spares the
        allocation (and first touch) of two fresh buffers of the frame's
        size that L{encrypt} of a joined plaintext costs.  Same bytes and
        nonce sequence as L{encrypt}.
        """
        nonce = self.nonces.take()  # once per large frame part: no need to inline it
        encryptor = Cipher(self._algorithm, modes.GCM(nonce)).encryptor()
        pos = 0
        update_into = encryptor.update_into
        for piece in pieces:
            if len(piece):
                pos += update_into(piece, out[pos:])
        encryptor.finalize()
        out[pos:pos + TAG_SIZE] = encryptor.tag
        return pos + TAG_SIZE

    def encrypt(self, plaintext) -> bytes:
        seq = self.nonces
        if seq.rev1 and seq.left > 0:
            # NonceSequence.take inlined (msgr2.1): this runs for every frame part
            seq.left -= 1
            counter = seq.counter
            seq.counter = (counter + 1) & _U64_MASK
            nonce = _NONCE.pack(seq.fixed, counter)
        else:
            nonce = seq.take()
        return self._aead.encrypt(nonce, plaintext, None)

    def encrypt_pair(self, first, rest) -> list:
        """
        Two GCM operations in a row (C{first}, then C{rest}), each with its
        own nonce and tag: a msgr2.1 frame's first block and the rest of it
        (L{encrypt} twice, in one call); returns the two ciphertexts, each
        followed by its 16-byte tag.  Raises L{NoncesExhausted} as
        L{encrypt} does.
        """
        seq = self.nonces
        if seq.rev1 and seq.left > 1:
            seq.left -= 2
            counter = seq.counter
            seq.counter = (counter + 2) & _U64_MASK
            fixed = seq.fixed
            encrypt = self._aead.encrypt
            return [encrypt(_NONCE.pack(fixed, counter), first, None),
                    encrypt(_NONCE.pack(fixed, (counter + 1) & _U64_MASK), rest, None)]
        return [self.encrypt(first), self.encrypt(rest)]


class RxCipher:
    """Decrypts and verifies one GCM operation at a time."""

    __slots__ = ("_aead", "_key", "_algorithm", "nonces")

    def __init__(self, key: bytes, nonce: bytes, rev1: bool) -> None:
        self._aead = AESGCM(key)
        self._key = key
        self._algorithm = algorithms.AES(key)
        self.nonces = NonceSequence(nonce, rev1)

    def __repr__(self) -> str:
        return "<RxCipher AES-128-GCM>"

    def decrypt(self, data) -> bytes:
        """Verify and decrypt ciphertext || tag; raises L{AuthTagMismatch}."""
        seq = self.nonces
        if seq.rev1 and seq.left > 0:
            # NonceSequence.take inlined (msgr2.1), as in TxCipher.encrypt
            seq.left -= 1
            counter = seq.counter
            seq.counter = (counter + 1) & _U64_MASK
            nonce = _NONCE.pack(seq.fixed, counter)
        else:
            nonce = seq.take()
        try:
            return self._aead.decrypt(nonce, data, None)
        except InvalidTag:
            raise AuthTagMismatch("AES-GCM tag of a %d-byte frame part did not verify" % len(data)) from None

    def decrypt_in_place(self, data: memoryview) -> memoryview:
        """
        Like L{decrypt}, but the plaintext overwrites the ciphertext in
        C{data} (a writable memoryview of ciphertext || tag); returns the
        view of C{data} that holds it.  For large frame parts, where this
        is faster than L{decrypt} (no new output buffer): one streaming
        GCM decryptor per call.  Raises L{AuthTagMismatch}; C{data} then
        holds unverified bytes and must be discarded.
        """
        return self.decrypt_split(data, len(data) - TAG_SIZE, 0)[0]

    def decrypt_split(self, data: memoryview, at: int, length: int):
        """
        Like L{decrypt_in_place}, but the C{length} plaintext bytes at
        offset C{at} come out as a new C{bytes} object instead of in
        place: returns (the view of C{data} that holds the rest of the
        plaintext, that object).  For a large frame part whose last segment
        is large: the segment then reaches the application as that object,
        where decrypting in place costs one more copy of it for an
        application that wants C{bytes} (GCM's counter mode decrypts any
        run of bytes in order, so the one operation is only cut in three).
        Raises L{AuthTagMismatch}; nothing decrypted may then be used.
        """
        nonce = self.nonces.take()  # once per large frame part: no need to inline it
        n = len(data) - TAG_SIZE
        body = data[:n]
        try:
            decryptor = Cipher(self._algorithm, modes.GCM(nonce, bytes(data[n:]))).decryptor()
            head = body[:at]
            tail = body[at + length:]
            segment = b""
            try:
                decryptor.update_into(head, head)
                if length:
                    segment = decryptor.update(body[at:at + length])
                if len(tail):
                    decryptor.update_into(tail, tail)
            except ValueError:
                # an older cryptography wants room for one more block: one-shot
                plain = self._aead.decrypt(nonce, data, None)
                body[:] = plain
                return body, plain[at:at + length]
            decryptor.finalize()
        except InvalidTag:
            raise AuthTagMismatch("AES-GCM tag of a %d-byte frame part did not verify" % len(data)) from None
        return body, segment

    def peek_keystream_decrypt(self, data) -> bytes:
        """
        Decrypt the first bytes of the next operation without verifying or
        consuming its nonce: msgr2.0 needs the preamble's lengths before
        the whole frame (and its tag) has arrived.  GCM encrypts with the
        counter block nonce || 2 upwards, so this is plain AES-CTR.
        """
        counter_block = self.nonces.current() + b"\x00\x00\x00\x02"
        decryptor = Cipher(algorithms.AES(self._key), modes.CTR(counter_block)).decryptor()
        return decryptor.update(bytes(data)) + decryptor.finalize()


__all__ = ["TxCipher", "RxCipher", "NonceSequence", "split_connection_secret",
           "MIN_SECRET_SIZE", "TAG_SIZE"]
