"""
cephx's C{aes256k} cipher (Ceph key type 2, CEPH_CRYPTO_AES256KRB5): the
Kerberos enctype aes256-cts-hmac-sha384-192 of RFC 8009, as Ceph 19.2.6+ and
20.2.4+ use it.  Pure functions of bytes, no I/O, no Twisted.

Built on C{cryptography}'s primitives:

  - key derivation is RFC 8009's KDF-HMAC-SHA2 (section 3), which is NIST
    SP 800-108 counter mode with HMAC-SHA-384: C{KBKDFHMAC} with a 4-byte
    counter before the fixed input C{label | 0x00 | context | k (4 bytes)};
  - per key usage (a u32), C{Ke = KDF(base, usage | 0xAA, 256)} and
    C{Ki = KDF(base, usage | 0x55, 192)} (C{Kc}, label 0x99, is only needed
    for RFC 8009's checksum vectors);
  - encryption is AES-256 in CBC mode with ciphertext stealing (the "CS3"
    variant: the last two blocks always swapped), IV all zero, over
    C{confounder (16 random bytes) | plaintext};
  - the integrity tag is the first 24 bytes of C{HMAC-SHA-384(Ki, IV | C)}.

A ciphertext is therefore C{C | H}: 16 + len(plaintext) + 24 bytes.  This
follows Ceph's C{CryptoAES256KRB5KeyHandler} (src/auth/Crypto.cc, 20.2.4),
which derives Ke and Ki from the whole secret exactly as above and checks
the tag before it deciphers anything.

Keys are never part of a repr or an error message: every failure to decrypt
raises the same L{Aes256kError} without detail, so no padding or tag oracle.
"""

import hashlib
import hmac
import os
import struct
from typing import Dict, Optional, Tuple

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.kbkdf import CounterLocation, KBKDFHMAC, Mode

from msgr2tx.errors import AuthRejected

__all__ = [
    "Aes256kError", "Aes256kKey", "KEY_LEN", "BLOCK_LEN", "HASH_LEN", "CONFOUNDER_LEN",
    "kdf_hmac_sha2", "derive", "cts_encrypt", "cts_decrypt", "encrypt", "decrypt", "checksum", "prf",
]

#: bytes of an aes256k secret (Ceph AES256KRB5_KEY_LEN)
KEY_LEN = 32
#: AES block size; also the confounder's length
BLOCK_LEN = 16
CONFOUNDER_LEN = 16
#: bytes of the truncated HMAC-SHA-384 tag (192 bits)
HASH_LEN = 24
#: the smallest ciphertext: a confounder and a tag
MIN_CIPHERTEXT_LEN = CONFOUNDER_LEN + HASH_LEN

#: RFC 8009 key-derivation constants appended to the usage number
KC_CONSTANT = 0x99
KE_CONSTANT = 0xAA
KI_CONSTANT = 0x55

_ZERO_IV = bytes(BLOCK_LEN)
_USAGE = struct.Struct(">IB")


class Aes256kError(AuthRejected):
    """An aes256k ciphertext is malformed or fails its integrity check.  No key material inside."""


def kdf_hmac_sha2(key: bytes, label: bytes, bits: int, context: bytes = b"",
                  algorithm: Optional[hashes.HashAlgorithm] = None) -> bytes:
    """
    RFC 8009 section 3 C{KDF-HMAC-SHA2(key, label, [context,] k)}: the first
    C{bits} bits of C{HMAC(key, 00000001 | label | 00 | context | k)}, k a
    big-endian u32 of C{bits}.  SHA-384 unless C{algorithm} says otherwise
    (RFC 8009's 128-bit enctype uses SHA-256).  Returns C{bits // 8} bytes.
    """
    if bits <= 0 or bits % 8:
        raise ValueError("KDF output length must be a positive number of bytes")
    kdf = KBKDFHMAC(
        algorithm=algorithm or hashes.SHA384(), mode=Mode.CounterMode, length=bits // 8,
        rlen=4, llen=4, location=CounterLocation.BeforeFixed,
        label=bytes(label), context=bytes(context), fixed=None)
    return kdf.derive(bytes(key))


def derive(base: bytes, usage: int, constant: int, bits: int) -> bytes:
    """The key for C{usage} (a u32) and C{constant} (0x99 Kc, 0xAA Ke, 0x55 Ki)."""
    return kdf_hmac_sha2(base, _USAGE.pack(usage & 0xFFFFFFFF, constant), bits)


def prf(base: bytes, octets: bytes) -> bytes:
    """RFC 8009 section 5 PRF: C{KDF-HMAC-SHA2(base, "prf", octets, 384)} (48 bytes)."""
    return kdf_hmac_sha2(base, b"prf", 384, octets)


def _cbc(key: bytes, iv: bytes):
    return Cipher(algorithms.AES(key), modes.CBC(iv))


def cts_encrypt(key: bytes, plaintext: bytes, iv: bytes = _ZERO_IV) -> bytes:
    """
    AES-CBC with ciphertext stealing, CS3 (as Kerberos and OpenSSL's
    "AES-256-CBC-CTS" with CTS mode CS3): same length as C{plaintext}, which
    must be at least one block.  With more than one block the last two
    ciphertext blocks are swapped, the (then last) partial one truncated.
    """
    return _cts_encrypt(_cbc(key, iv), plaintext)


def _cts_encrypt(cbc: Cipher, plaintext: bytes) -> bytes:
    """L{cts_encrypt} with the AES-CBC cipher (key and IV) already built."""
    plaintext = bytes(plaintext)
    n = len(plaintext)
    if n < BLOCK_LEN:
        raise ValueError("CTS needs at least one block of plaintext")
    enc = cbc.encryptor()
    if n == BLOCK_LEN:
        return enc.update(plaintext) + enc.finalize()
    last = n % BLOCK_LEN or BLOCK_LEN
    c = enc.update(plaintext + bytes(BLOCK_LEN - last)) + enc.finalize()
    return c[:-2 * BLOCK_LEN] + c[-BLOCK_LEN:] + c[-2 * BLOCK_LEN:-2 * BLOCK_LEN + last]


def cts_decrypt(key: bytes, ciphertext: bytes, iv: bytes = _ZERO_IV) -> bytes:
    """The inverse of L{cts_encrypt}; ValueError for less than one block."""
    zero = _cbc(key, _ZERO_IV)
    return _cts_decrypt(zero, zero if iv == _ZERO_IV else _cbc(key, iv), ciphertext)


def _cts_decrypt(zero: Cipher, cbc: Cipher, ciphertext: bytes) -> bytes:
    """L{cts_decrypt} with the ciphers built: C{zero} with a zero IV, C{cbc} with the IV in use."""
    ciphertext = bytes(ciphertext)
    n = len(ciphertext)
    if n < BLOCK_LEN:
        raise ValueError("CTS needs at least one block of ciphertext")
    if n == BLOCK_LEN:
        dec = cbc.decryptor()
        return dec.update(ciphertext) + dec.finalize()
    last = n % BLOCK_LEN or BLOCK_LEN
    head = ciphertext[:n - BLOCK_LEN - last]
    swapped = ciphertext[n - BLOCK_LEN - last:n - last]   # the real last CBC block
    tail = ciphertext[n - last:]                           # prefix of the second-to-last CBC block
    # one block decrypted with a zero IV is the raw AES decryption:
    # E(n-1) xor the zero-padded last plaintext block
    one = zero.decryptor()
    d = one.update(swapped) + one.finalize()
    prev = tail + d[last:]
    dec = cbc.decryptor()
    return (dec.update(head + prev + swapped) + dec.finalize())[:n]


def _tag(ki: bytes, iv: bytes, data: bytes) -> bytes:
    return hmac.new(ki, iv + data, hashlib.sha384).digest()[:HASH_LEN]


def encrypt(ke: bytes, ki: bytes, plaintext: bytes, confounder: Optional[bytes] = None) -> bytes:
    """
    RFC 8009 section 5 encryption with derived keys C{ke} (32 bytes) and
    C{ki} (24 bytes): C{C | H}, 40 bytes longer than C{plaintext}.
    C{confounder} (16 bytes) is random unless given (known-answer tests).
    """
    if confounder is None:
        confounder = os.urandom(CONFOUNDER_LEN)
    elif len(confounder) != CONFOUNDER_LEN:
        raise ValueError("the confounder must be %d bytes" % CONFOUNDER_LEN)
    c = cts_encrypt(ke, bytes(confounder) + bytes(plaintext))
    return c + _tag(ki, _ZERO_IV, c)


def decrypt(ke: bytes, ki: bytes, ciphertext: bytes) -> bytes:
    """
    Check the tag, then decipher and drop the confounder.  L{Aes256kError}
    (always the same words) for a short ciphertext or a wrong tag.
    """
    return cts_decrypt(ke, _checked(ki, ciphertext))[CONFOUNDER_LEN:]


def _checked(ki: bytes, ciphertext: bytes) -> bytes:
    """The ciphertext without its tag, once the tag is right; L{Aes256kError} otherwise."""
    ciphertext = bytes(ciphertext)
    if len(ciphertext) < MIN_CIPHERTEXT_LEN:
        raise Aes256kError("aes256k decryption failed")
    c, h = ciphertext[:-HASH_LEN], ciphertext[-HASH_LEN:]
    if not hmac.compare_digest(_tag(ki, _ZERO_IV, c), h):
        raise Aes256kError("aes256k decryption failed")
    return c


def checksum(kc: bytes, data: bytes) -> bytes:
    """RFC 8009 checksum (hmac-sha384-192): the first 24 bytes of HMAC-SHA-384(Kc, data)."""
    return hmac.new(kc, bytes(data), hashlib.sha384).digest()[:HASH_LEN]


class Aes256kKey:
    """
    An aes256k secret with its derived keys, cached per key usage (as
    Ceph's key handler keeps them).  C{secret} is at least L{KEY_LEN} bytes;
    Ceph derives from the whole of it.  Never shows key material.
    """

    __slots__ = ("_secret", "_usages", "_ciphers")

    def __init__(self, secret: bytes) -> None:
        secret = bytes(secret)
        if len(secret) < KEY_LEN:
            raise Aes256kError("aes256k key of %d bytes is shorter than %d" % (len(secret), KEY_LEN))
        self._secret = secret
        self._usages: Dict[int, Tuple[bytes, bytes]] = {}
        #: usage -> (AES-256-CBC cipher of Ke with the zero IV, Ki): built
        #: once per usage, a fresh context from it for each use
        self._ciphers: Dict[int, Tuple[Cipher, bytes]] = {}

    def __repr__(self) -> str:
        return "<Aes256kKey <%d secret bytes>>" % len(self._secret)

    __str__ = __repr__

    def __reduce__(self):
        raise TypeError("Aes256kKey objects are not picklable")

    def usage_keys(self, usage: int) -> Tuple[bytes, bytes]:
        """(Ke, Ki) for C{usage}."""
        keys = self._usages.get(usage)
        if keys is None:
            keys = (derive(self._secret, usage, KE_CONSTANT, 256),
                    derive(self._secret, usage, KI_CONSTANT, 8 * HASH_LEN))
            if len(self._usages) < 64:
                self._usages[usage] = keys
        return keys

    def _cipher(self, usage: int) -> Tuple[Cipher, bytes]:
        entry = self._ciphers.get(usage)
        if entry is None:
            ke, ki = self.usage_keys(usage)
            entry = (_cbc(ke, _ZERO_IV), ki)
            if len(self._ciphers) < 64:
                self._ciphers[usage] = entry
        return entry

    def encrypt(self, usage: int, plaintext: bytes, confounder: Optional[bytes] = None) -> bytes:
        """L{encrypt} with the keys of C{usage}."""
        if confounder is None:
            confounder = os.urandom(CONFOUNDER_LEN)
        elif len(confounder) != CONFOUNDER_LEN:
            raise ValueError("the confounder must be %d bytes" % CONFOUNDER_LEN)
        cbc, ki = self._cipher(usage)
        c = _cts_encrypt(cbc, bytes(confounder) + bytes(plaintext))
        return c + _tag(ki, _ZERO_IV, c)

    def decrypt(self, usage: int, ciphertext: bytes) -> bytes:
        """L{decrypt} with the keys of C{usage}."""
        cbc, ki = self._cipher(usage)
        return _cts_decrypt(cbc, cbc, _checked(ki, ciphertext))[CONFOUNDER_LEN:]
