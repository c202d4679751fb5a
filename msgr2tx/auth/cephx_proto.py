"""
cephx wire structures and crypto, with no I/O and no Twisted.

Everything here is a pure function of bytes.  Layouts follow Ceph 16.2
(Pacific): little-endian integers, bufferlists as u32 length + bytes, and the
"encrypt envelope" (u8 1, u64 magic, then the encoded struct) ciphered with
the key's cipher:

  - type 1, C{aes}: AES-128-CBC, PKCS#7 padding, the fixed IV
    C{cephsageyudagreg}; the key usage is ignored;
  - type 2, C{aes256k} (Squid 19.2.6+, Tentacle 20.2.4+): RFC 8009
    aes256-cts-hmac-sha384-192 (L{msgr2tx.auth.aes256k}) with keys derived
    per key usage, one usage per place in the protocol (C{CEPHX_KEY_USAGE_*},
    src/auth/cephx/CephxProtocol.h of 20.2.4).  The ciphertext is 40 bytes
    longer than the envelope: a 16-byte confounder and a 24-byte tag.

Secrets (keys, session keys, connection secrets, ticket blobs) never appear
in a repr, a str or an exception message: reprs print lengths and ids only.
"""

import base64
import binascii
import hashlib
import hmac
import os
import struct
import time
from typing import Dict, List, Optional, Tuple

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from msgr2tx.auth.aes256k import KEY_LEN as AES256K_KEY_LEN
from msgr2tx.auth.aes256k import Aes256kError, Aes256kKey
from msgr2tx.core.encoding import Decoder, Encoder, EntityName, EntityType, utime_t
from msgr2tx.errors import AuthRejected, DecodeError

# --- constants ------------------------------------------------------------------

CRYPTO_NONE = 0
CRYPTO_AES = 1
#: newer releases (Squid 19.2.6+, Tentacle 20.2.4+): AES256-CTS-HMAC-SHA384-192
CRYPTO_AES256KRB5 = 2

#: Ceph's names for the key types (CryptoManager::get_key_type_name)
KEY_TYPE_NAMES = {CRYPTO_NONE: "none", CRYPTO_AES: "aes", CRYPTO_AES256KRB5: "aes256k"}
#: the key types that can encrypt, weakest first
CIPHER_TYPES = (CRYPTO_AES, CRYPTO_AES256KRB5)
#: the key types Ceph calls secure (CryptoManager::get_secure_key_types)
SECURE_KEY_TYPES = frozenset({CRYPTO_AES256KRB5})

# key usages (src/auth/cephx/CephxProtocol.h, 20.2.4); only aes256k derives keys from them
#: the connection secret in the AUTH reply, under the AUTH session key
CEPHX_KEY_USAGE_AUTH_CONNECTION_SECRET = 0x03
#: CephXServiceTicket (the session key and validity), under the principal's key or the AUTH session key
CEPHX_KEY_USAGE_TICKET_SESSION_KEY = 0x04
#: an encrypted CephXTicketBlob, under the previous AUTH session key
CEPHX_KEY_USAGE_TICKET_BLOB = 0x05
#: CephXAuthorize, under the ticket's session key
CEPHX_KEY_USAGE_AUTHORIZE = 0x10
#: CephXAuthorizeChallenge, under the ticket's session key
CEPHX_KEY_USAGE_AUTHORIZE_CHALLENGE = 0x11
#: CephXAuthorizeReply, under the ticket's session key
CEPHX_KEY_USAGE_AUTHORIZE_REPLY = 0x12
#: RotatingSecrets, under the service daemon's own key
CEPHX_KEY_USAGE_ROTATING_SECRET = 0x20
#: CephXServiceTicketInfo (the ticket blob), under the service secret
CEPHX_KEY_USAGE_TICKET_INFO = 0x30


def key_type_name(kind: int) -> str:
    """C{aes}, C{aes256k}, C{none}, or C{type N} for a type Ceph does not define."""
    return KEY_TYPE_NAMES.get(kind, "type %d" % kind)


def parse_key_type(name: str) -> int:
    """C{aes} / C{aes256k} / C{none} (any case) to the type number; ValueError otherwise."""
    wanted = name.strip().lower()
    for kind, known in KEY_TYPE_NAMES.items():
        if known == wanted:
            return kind
    raise ValueError("unknown cephx key type %r (expected aes or aes256k)" % (name,))

AES_IV = b"cephsageyudagreg"
AES_KEY_LEN = 16
AES_BLOCK = 16

AUTH_ENC_MAGIC = 0xFF009CAD8826AA55

CEPHX_GET_AUTH_SESSION_KEY = 0x0100
CEPHX_GET_PRINCIPAL_SESSION_KEY = 0x0200
CEPHX_GET_ROTATING_KEY = 0x0400

#: CEPH_AUTH_UID_DEFAULT, the obsolete auid every ticket still carries
AUTH_UID_DEFAULT = 0xFFFFFFFFFFFFFFFF
#: secret_id meaning "the service's own long-term key" rather than a rotating one
SECRET_ID_GENERAL = 0xFFFFFFFFFFFFFFFF

#: what MonClient asks for: MON | OSD | MGR (plus AUTH, added by the handler)
DEFAULT_WANT_KEYS = EntityType.MON | EntityType.OSD | EntityType.MGR

#: connection secret length in secure mode (AuthConnectionMeta: 16 * 4)
SECURE_CONNECTION_SECRET_LEN = 64

#: default ticket lifetimes (auth_mon_ticket_ttl, auth_service_ticket_ttl)
AUTH_TICKET_TTL = 72 * 3600.0
SERVICE_TICKET_TTL = 3600.0

_U64 = struct.Struct("<Q")


class CephxError(AuthRejected):
    """A cephx blob did not decrypt or verify.  Never carries key material."""


class CephxDecodeError(DecodeError):
    """A cephx structure is truncated or malformed."""


class _decoding:
    """
    C{with _decoding(what):} turns a DecodeError inside a parse into a
    CephxDecodeError naming C{what}.  (One class for every parse: a class
    built per call cost about 6 us, and a handshake parses about a dozen
    cephx structures.)
    """

    __slots__ = ("what",)

    def __init__(self, what: str) -> None:
        self.what = what

    def __enter__(self) -> "_decoding":
        return self

    def __exit__(self, kind, value, tb) -> None:
        if kind is not None and issubclass(kind, DecodeError) and not issubclass(kind, CephxDecodeError):
            raise CephxDecodeError("malformed %s: %s" % (self.what, value)) from None


def random_u64(nonzero: bool = False) -> int:
    while True:
        v = _U64.unpack(os.urandom(8))[0]
        if v or not nonzero:
            return v


# --- keys -------------------------------------------------------------------------

class CryptoKey:
    """
    A Ceph CryptoKey: u16 type, utime_t created, u16 length, secret bytes.
    Type 1 (C{aes}, a 16-byte secret) and type 2 (C{aes256k}, a 32-byte
    secret) encrypt; a key of another type can be carried (read from a
    keyring, written back unchanged) but not used: L{encrypt} and
    L{decrypt} raise L{CephxError} naming its type.  The secret is
    reachable as L{secret_bytes}; repr and str never show it.
    """

    __slots__ = ("type", "created", "_secret", "_aes256k", "_cbc")

    def __init__(self, secret: bytes, type: int = CRYPTO_AES, created: Optional[utime_t] = None) -> None:
        secret = bytes(secret)
        if type == CRYPTO_AES and len(secret) < AES_KEY_LEN:
            raise CephxError("AES key of %d bytes is shorter than %d" % (len(secret), AES_KEY_LEN))
        if type == CRYPTO_AES256KRB5 and len(secret) < AES256K_KEY_LEN:
            raise CephxError("aes256k key of %d bytes is shorter than %d" % (len(secret), AES256K_KEY_LEN))
        self.type = type
        self.created = created if created is not None else utime_t()
        self._secret = secret
        self._aes256k: Optional[Aes256kKey] = None
        #: the AES-128-CBC cipher (fixed IV) once used: each encrypt and
        #: decrypt takes a fresh context from it, without building it again
        self._cbc: Optional[Cipher] = None

    @classmethod
    def generate(cls, now: Optional[float] = None, type: int = CRYPTO_AES) -> "CryptoKey":
        """A new random key of C{type} (16 bytes for aes, 32 for aes256k)."""
        if type == CRYPTO_AES:
            size = AES_KEY_LEN
        elif type == CRYPTO_AES256KRB5:
            size = AES256K_KEY_LEN
        else:
            raise CephxError("cannot generate a key of type %s" % key_type_name(type))
        return cls(os.urandom(size), type, utime_t.from_float(time.time() if now is None else now))

    @property
    def secret_bytes(self) -> bytes:
        return self._secret

    @property
    def type_name(self) -> str:
        """C{aes}, C{aes256k}, ... (Ceph's names)."""
        return key_type_name(self.type)

    @property
    def usable(self) -> bool:
        """Whether this key can encrypt (its type is aes or aes256k)."""
        return self.type in CIPHER_TYPES

    def __len__(self) -> int:
        return len(self._secret)

    def __repr__(self) -> str:
        return "<CryptoKey type=%s created=%d <%d secret bytes>>" % (
            KEY_TYPE_NAMES.get(self.type, self.type), self.created.sec, len(self._secret))

    __str__ = __repr__

    def __eq__(self, other) -> bool:
        if not isinstance(other, CryptoKey):
            return NotImplemented
        return self.type == other.type and hmac.compare_digest(self._secret, other._secret)

    def __hash__(self) -> int:
        return hash((self.type, len(self._secret)))

    def __reduce__(self):
        raise TypeError("CryptoKey objects are not picklable")

    # encoding

    def encode(self, enc: Encoder) -> None:
        enc.u16(self.type)
        self.created.encode(enc)
        enc.u16(len(self._secret)).raw(self._secret)

    def to_bytes(self) -> bytes:
        enc = Encoder()
        self.encode(enc)
        return enc.getvalue()

    @classmethod
    def decode(cls, dec: Decoder, allow_unknown: bool = False) -> "CryptoKey":
        """
        Read a CryptoKey.  A type other than none/aes/aes256k is a
        L{CephxError} unless C{allow_unknown} (a keyring keeps such entries
        readable and unusable).  A secret too short for its type is a
        L{CephxError} as in Ceph's C{validate_secret}.
        """
        with _decoding("CryptoKey"):
            kind = dec.u16()
            created = utime_t.decode(dec)
            secret = dec.raw(dec.u16())
        if kind == CRYPTO_NONE and not secret:
            return cls(b"", CRYPTO_NONE, created)
        if kind not in CIPHER_TYPES and not allow_unknown:
            raise CephxError("unsupported cephx key type %d" % kind)
        return cls(secret, kind, created)

    @classmethod
    def from_bytes(cls, data: bytes, allow_unknown: bool = False) -> "CryptoKey":
        dec = Decoder(data)
        key = cls.decode(dec, allow_unknown)
        if dec.remaining():
            raise CephxDecodeError("%d trailing bytes after CryptoKey" % dec.remaining())
        return key

    def to_base64(self) -> str:
        return base64.b64encode(self.to_bytes()).decode("ascii")

    @classmethod
    def from_base64(cls, text: str, allow_unknown: bool = False) -> "CryptoKey":
        try:
            raw = base64.b64decode(text.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise CephxDecodeError("key is not valid base64") from None
        return cls.from_bytes(raw, allow_unknown)

    # crypto

    def _cipher(self) -> Cipher:
        cbc = self._cbc
        if cbc is None:
            cbc = self._cbc = Cipher(algorithms.AES(self._secret[:AES_KEY_LEN]), modes.CBC(AES_IV))
        return cbc

    def _krb5(self) -> Aes256kKey:
        if self._aes256k is None:
            self._aes256k = Aes256kKey(self._secret)
        return self._aes256k

    def _unusable(self) -> CephxError:
        return CephxError("a key of type %s cannot encrypt (msgr2tx supports aes and aes256k)"
                          % key_type_name(self.type))

    def encrypt(self, plaintext: bytes, usage: int = 0) -> bytes:
        """
        aes: AES-128-CBC with PKCS#7 padding (always 1..16 bytes) and the
        fixed IV, C{usage} ignored.  aes256k: RFC 8009 with the keys of
        C{usage} and a random confounder (40 bytes longer than C{plaintext}).
        """
        if self.type == CRYPTO_AES256KRB5:
            return self._krb5().encrypt(usage, plaintext)
        if self.type != CRYPTO_AES:
            raise self._unusable()
        pad = AES_BLOCK - len(plaintext) % AES_BLOCK
        enc = self._cipher().encryptor()
        return enc.update(bytes(plaintext) + bytes([pad]) * pad) + enc.finalize()

    def decrypt(self, ciphertext: bytes, usage: int = 0) -> bytes:
        """The inverse of L{encrypt}; L{CephxError} ("decryption failed") on any failure."""
        if self.type == CRYPTO_AES256KRB5:
            try:
                return self._krb5().decrypt(usage, ciphertext)
            except Aes256kError:
                raise CephxError("decryption failed") from None
        if self.type != CRYPTO_AES:
            raise self._unusable()
        if len(ciphertext) < AES_BLOCK or len(ciphertext) % AES_BLOCK:
            raise CephxError("ciphertext of %d bytes is not a whole number of AES blocks" % len(ciphertext))
        dec = self._cipher().decryptor()
        out = dec.update(bytes(ciphertext)) + dec.finalize()
        pad = out[-1]
        # one message for every failure: no padding oracle
        if not 1 <= pad <= AES_BLOCK or out[-pad:] != bytes([pad]) * pad:
            raise CephxError("decryption failed")
        return out[:-pad]

    def hmac_sha256(self, data: bytes) -> bytes:
        """HMAC-SHA-256 keyed with the raw secret (CryptoKeyHandler::hmac_sha256)."""
        return hmac.new(self._secret, bytes(data), hashlib.sha256).digest()


# --- the encrypt envelope ------------------------------------------------------------

def encrypt_enc_bl(key: CryptoKey, encoded: bytes, usage: int = 0) -> bytes:
    """C{encode_encrypt_enc_bl}: raw ciphertext of u8 1, magic, C{encoded}, for key usage C{usage}."""
    return key.encrypt(b"\x01" + _U64.pack(AUTH_ENC_MAGIC) + bytes(encoded), usage)


def encrypt_bl(key: CryptoKey, encoded: bytes, usage: int = 0) -> bytes:
    """C{encode_encrypt}: the ciphertext as a bufferlist (u32 length + bytes)."""
    ct = encrypt_enc_bl(key, encoded, usage)
    return struct.pack("<I", len(ct)) + ct


def decrypt_enc_bl(key: CryptoKey, ciphertext: bytes, what: str = "cephx blob", usage: int = 0) -> bytes:
    """C{decode_decrypt_enc_bl}: decrypt, check the envelope, return the struct bytes."""
    try:
        plain = key.decrypt(ciphertext, usage)
    except CephxError:
        raise CephxError("%s did not decrypt" % what) from None
    if len(plain) < 9 or _U64.unpack_from(plain, 1)[0] != AUTH_ENC_MAGIC:
        raise CephxError("%s did not decrypt" % what)
    return plain[9:]


def decrypt_bl(key: CryptoKey, dec: Decoder, what: str = "cephx blob", usage: int = 0) -> bytes:
    """C{decode_decrypt}: read a bufferlist from C{dec} and decrypt it."""
    with _decoding(what):
        ct = dec.blob()
    return decrypt_enc_bl(key, ct, what, usage)


def calc_client_server_challenge(key: CryptoKey, server_challenge: int, client_challenge: int) -> int:
    """
    The proof a client sends: the XOR of the little-endian u64 words of a
    blob made from CephXChallengeBlob (u64 server, u64 client challenge).
    For an aes key the blob is C{encode_encrypt(CephXChallengeBlob)}, its
    u32 length prefix included; for aes256k (whose ciphertexts are
    randomised) it is the 32-byte HMAC-SHA-256 of the encoded blob keyed
    with the secret (cephx_calc_client_server_challenge, 20.2.4).  Whole
    8-byte words only.
    """
    challenge_blob = _U64.pack(server_challenge) + _U64.pack(client_challenge)
    if key.type == CRYPTO_AES:
        blob = encrypt_bl(key, challenge_blob)
    elif key.type == CRYPTO_AES256KRB5:
        blob = key.hmac_sha256(challenge_blob)
    else:
        raise key._unusable()
    k = 0
    for pos in range(0, len(blob) - 7, 8):
        k ^= _U64.unpack_from(blob, pos)[0]
    return k


def proofs_equal(a: int, b: int) -> bool:
    return hmac.compare_digest(_U64.pack(a), _U64.pack(b))


# --- structures ---------------------------------------------------------------------

def _check_v(dec: Decoder, what: str, minimum: int = 1) -> int:
    v = dec.u8()
    if v < minimum:
        raise CephxDecodeError("%s struct_v %d" % (what, v))
    return v


def encode_server_challenge(server_challenge: int) -> bytes:
    return Encoder().u8(1).u64(server_challenge).getvalue()


def decode_server_challenge(payload: bytes) -> int:
    with _decoding("CephXServerChallenge"):
        dec = Decoder(payload)
        _check_v(dec, "CephXServerChallenge")
        return dec.u64()


class TicketBlob:
    """CephXTicketBlob: u8 1, u64 secret_id, bufferlist blob (opaque to clients)."""

    __slots__ = ("secret_id", "blob")

    def __init__(self, secret_id: int = 0, blob: bytes = b"") -> None:
        self.secret_id = secret_id
        self.blob = bytes(blob)

    def __repr__(self) -> str:
        return "<TicketBlob secret_id=%d <%d bytes>>" % (self.secret_id, len(self.blob))

    __str__ = __repr__

    def encode(self, enc: Encoder) -> None:
        enc.u8(1).u64(self.secret_id).blob(self.blob)

    def to_bytes(self) -> bytes:
        enc = Encoder()
        self.encode(enc)
        return enc.getvalue()

    @classmethod
    def decode(cls, dec: Decoder) -> "TicketBlob":
        with _decoding("CephXTicketBlob"):
            _check_v(dec, "CephXTicketBlob")
            return cls(dec.u64(), dec.blob())


class Authenticate:
    """CephXAuthenticate (v3): the client's answer to the server challenge."""

    __slots__ = ("client_challenge", "key", "old_ticket", "other_keys", "struct_v")

    def __init__(self, client_challenge: int, key: int, old_ticket: Optional[TicketBlob] = None,
                 other_keys: int = 0, struct_v: int = 3) -> None:
        self.client_challenge = client_challenge
        self.key = key
        self.old_ticket = old_ticket or TicketBlob()
        self.other_keys = other_keys
        self.struct_v = struct_v

    def __repr__(self) -> str:
        return "<CephXAuthenticate v%d old_ticket=%r other_keys=0x%x>" % (
            self.struct_v, self.old_ticket, self.other_keys)

    def encode(self, enc: Encoder) -> None:
        enc.u8(3).u64(self.client_challenge).u64(self.key)
        self.old_ticket.encode(enc)
        enc.u32(self.other_keys)

    @classmethod
    def decode(cls, dec: Decoder) -> "Authenticate":
        with _decoding("CephXAuthenticate"):
            v = _check_v(dec, "CephXAuthenticate")
            cc = dec.u64()
            key = dec.u64()
            old = TicketBlob.decode(dec)
            other = dec.u32() if v >= 2 else 0
        return cls(cc, key, old, other, v)


def encode_get_auth_session_key(req: Authenticate) -> bytes:
    enc = Encoder().u16(CEPHX_GET_AUTH_SESSION_KEY)
    req.encode(enc)
    return enc.getvalue()


class AuthCapsInfo:
    __slots__ = ("allow_all", "caps")

    def __init__(self, allow_all: bool = False, caps: bytes = b"") -> None:
        self.allow_all = allow_all
        self.caps = bytes(caps)

    def encode(self, enc: Encoder) -> None:
        enc.u8(1).u8(1 if self.allow_all else 0).blob(self.caps)

    @classmethod
    def decode(cls, dec: Decoder) -> "AuthCapsInfo":
        _check_v(dec, "AuthCapsInfo")
        return cls(dec.u8() != 0, dec.blob())

    @classmethod
    def from_string(cls, caps: Optional[str]) -> "AuthCapsInfo":
        """The caps bufferlist holds an encoded std::string (KeyServer)."""
        if not caps:
            return cls()
        return cls(False, Encoder().string(caps).getvalue())

    def as_string(self) -> str:
        if not self.caps:
            return ""
        try:
            return Decoder(self.caps).string()
        except DecodeError:
            return ""


class AuthTicket:
    """AuthTicket (v2): who, which global_id, when, with which caps."""

    __slots__ = ("name", "global_id", "created", "expires", "caps", "flags")

    def __init__(self, name: EntityName, global_id: int, created: utime_t = utime_t(),
                 expires: utime_t = utime_t(), caps: Optional[AuthCapsInfo] = None, flags: int = 0) -> None:
        self.name = name
        self.global_id = global_id
        self.created = created
        self.expires = expires
        self.caps = caps or AuthCapsInfo()
        self.flags = flags

    @classmethod
    def new(cls, name: EntityName, global_id: int, ttl: float, now: Optional[float] = None,
            caps: Optional[AuthCapsInfo] = None) -> "AuthTicket":
        now = time.time() if now is None else now
        return cls(name, global_id, utime_t.from_float(now), utime_t.from_float(now + ttl), caps)

    def __repr__(self) -> str:
        return "<AuthTicket %s global_id=%d expires=%d>" % (self.name, self.global_id, self.expires.sec)

    def encode(self, enc: Encoder) -> None:
        enc.u8(2)
        self.name.encode(enc)
        enc.u64(self.global_id).u64(AUTH_UID_DEFAULT)
        self.created.encode(enc)
        self.expires.encode(enc)
        self.caps.encode(enc)
        enc.u32(self.flags)

    @classmethod
    def decode(cls, dec: Decoder) -> "AuthTicket":
        v = _check_v(dec, "AuthTicket")
        name = EntityName.decode(dec)
        global_id = dec.u64()
        if v >= 2:
            dec.u64()  # auid
        created = utime_t.decode(dec)
        expires = utime_t.decode(dec)
        caps = AuthCapsInfo.decode(dec)
        flags = dec.u32()
        return cls(name, global_id, created, expires, caps, flags)


class ServiceTicketInfo:
    """CephXServiceTicketInfo: what a ticket blob holds, under the service secret."""

    __slots__ = ("ticket", "session_key")

    def __init__(self, ticket: AuthTicket, session_key: CryptoKey) -> None:
        self.ticket = ticket
        self.session_key = session_key

    def __repr__(self) -> str:
        return "<CephXServiceTicketInfo %r session_key=%r>" % (self.ticket, self.session_key)

    def to_bytes(self) -> bytes:
        enc = Encoder().u8(1)
        self.ticket.encode(enc)
        self.session_key.encode(enc)
        return enc.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "ServiceTicketInfo":
        with _decoding("CephXServiceTicketInfo"):
            dec = Decoder(data)
            _check_v(dec, "CephXServiceTicketInfo")
            ticket = AuthTicket.decode(dec)
            key = CryptoKey.decode(dec)
        return cls(ticket, key)


class SessionAuthInfo:
    """CephXSessionAuthInfo: everything the authority needs to issue one ticket."""

    __slots__ = ("service_id", "secret_id", "ticket", "session_key", "service_secret", "validity")

    def __init__(self, service_id: int, secret_id: int, ticket: AuthTicket, session_key: CryptoKey,
                 service_secret: CryptoKey, validity: float) -> None:
        self.service_id = service_id
        self.secret_id = secret_id
        self.ticket = ticket
        self.session_key = session_key
        self.service_secret = service_secret
        self.validity = validity

    def __repr__(self) -> str:
        return "<CephXSessionAuthInfo %s secret_id=%d %r>" % (
            EntityType.name(self.service_id), self.secret_id, self.ticket)

    def ticket_blob(self) -> TicketBlob:
        info = ServiceTicketInfo(self.ticket, self.session_key)
        return TicketBlob(self.secret_id, encrypt_enc_bl(self.service_secret, info.to_bytes(),
                                                          CEPHX_KEY_USAGE_TICKET_INFO))


def build_service_ticket_reply(principal_secret: CryptoKey, infos: List[SessionAuthInfo],
                               ticket_enc_key: Optional[CryptoKey] = None) -> bytes:
    """
    The service ticket reply: u8 1, u32 count, then per ticket u32 service_id,
    u8 1, encrypt(CephXServiceTicket) under C{principal_secret}, u8 ticket_enc,
    the CephXTicketBlob as a bufferlist (encrypted under C{ticket_enc_key} if given).
    """
    enc = Encoder().u8(1).u32(len(infos))
    for info in infos:
        enc.u32(info.service_id).u8(1)
        msg_a = Encoder().u8(1)
        info.session_key.encode(msg_a)
        utime_t.from_float(info.validity).encode(msg_a)
        enc.raw(encrypt_bl(principal_secret, msg_a.getvalue(), CEPHX_KEY_USAGE_TICKET_SESSION_KEY))
        blob_bl = info.ticket_blob().to_bytes()
        if ticket_enc_key is not None:
            enc.u8(1).raw(encrypt_bl(ticket_enc_key, Encoder().blob(blob_bl).getvalue(), CEPHX_KEY_USAGE_TICKET_BLOB))
        else:
            enc.u8(0).blob(blob_bl)
    return enc.getvalue()


class ServiceTicket:
    """One ticket a client holds: session key, opaque blob, expiry."""

    __slots__ = ("service_id", "session_key", "blob", "validity", "expires", "renew_after")

    def __init__(self, service_id: int, session_key: CryptoKey, blob: TicketBlob, validity: float,
                 now: Optional[float] = None) -> None:
        now = time.time() if now is None else now
        self.service_id = service_id
        self.session_key = session_key
        self.blob = blob
        self.validity = validity
        if validity > 0:
            self.expires = now + validity
            self.renew_after = self.expires - validity / 4.0
        else:
            self.expires = self.renew_after = 0.0

    def __repr__(self) -> str:
        return "<ServiceTicket %s secret_id=%d validity=%gs>" % (
            EntityType.name(self.service_id), self.blob.secret_id, self.validity)

    def have_key(self, now: Optional[float] = None) -> bool:
        now = time.time() if now is None else now
        return not self.expires or now < self.expires

    def need_key(self, now: Optional[float] = None) -> bool:
        now = time.time() if now is None else now
        return bool(self.expires) and now >= self.renew_after


def parse_service_ticket_reply(principal_secret: CryptoKey, dec: Decoder,
                               old_session_keys: Optional[Dict[int, CryptoKey]] = None,
                               now: Optional[float] = None) -> List[ServiceTicket]:
    """Decrypt every ticket of a service ticket reply (client side)."""
    old_session_keys = old_session_keys or {}
    out = []
    with _decoding("service ticket reply"):
        _check_v(dec, "service ticket reply")
        count = dec.count(5)
        for _ in range(count):
            service_id = dec.u32()
            _check_v(dec, "service ticket")
            plain = decrypt_bl(principal_secret, dec, "CephXServiceTicket", CEPHX_KEY_USAGE_TICKET_SESSION_KEY)
            with _decoding("CephXServiceTicket"):
                d = Decoder(plain)
                _check_v(d, "CephXServiceTicket")
                session_key = CryptoKey.decode(d)
                validity = utime_t.decode(d)
            if not session_key.usable:
                raise CephxError("service ticket for %s has no usable session key" % EntityType.name(service_id))
            ticket_enc = dec.u8()
            if ticket_enc:
                old = old_session_keys.get(service_id)
                if old is None:
                    raise CephxError("encrypted %s ticket but no previous session key" % EntityType.name(service_id))
                inner = Decoder(decrypt_bl(old, dec, "encrypted ticket", CEPHX_KEY_USAGE_TICKET_BLOB))
                blob_bl = inner.blob()
            else:
                blob_bl = dec.blob()
            blob = TicketBlob.decode(Decoder(blob_bl))
            out.append(ServiceTicket(service_id, session_key, blob, validity.to_float(), now))
    return out


# --- rotating service secrets ---------------------------------------------------------

class RotatingSecrets:
    """
    The secrets a monitor seals one service's tickets with, by secret_id:
    RotatingSecrets (u8 1, map<u64, ExpiringCryptoKey>, u64 max_ver), each
    ExpiringCryptoKey being u8 1, CryptoKey, utime_t expiration.  A service
    (OSD, MDS, MGR) fetches them with CEPHX_GET_ROTATING_KEY to open the
    tickets clients present in their authorizers.
    """

    __slots__ = ("secrets", "max_ver")

    #: how many secrets a monitor keeps per service: previous, current, next
    KEEP = 3

    def __init__(self, secrets: Optional[Dict[int, Tuple[CryptoKey, float]]] = None, max_ver: int = 0) -> None:
        #: secret_id -> (key, expiration as a timestamp)
        self.secrets: Dict[int, Tuple[CryptoKey, float]] = dict(secrets or {})
        self.max_ver = max_ver

    def __repr__(self) -> str:
        return "<RotatingSecrets ids=%s max_ver=%d>" % (sorted(self.secrets), self.max_ver)

    __str__ = __repr__

    def __reduce__(self):
        raise TypeError("RotatingSecrets objects are not picklable")

    def __len__(self) -> int:
        return len(self.secrets)

    def keys(self) -> Dict[int, CryptoKey]:
        return {secret_id: key for secret_id, (key, _) in self.secrets.items()}

    def expires(self) -> float:
        """When the newest secret expires (0 without secrets)."""
        if not self.secrets:
            return 0.0
        return self.secrets[max(self.secrets)][1]

    def encode(self, enc: Encoder) -> None:
        enc.u8(1).u32(len(self.secrets))
        for secret_id in sorted(self.secrets):
            key, expiration = self.secrets[secret_id]
            enc.u64(secret_id).u8(1)
            key.encode(enc)
            utime_t.from_float(expiration).encode(enc)
        enc.u64(self.max_ver)

    def to_bytes(self) -> bytes:
        enc = Encoder()
        self.encode(enc)
        return enc.getvalue()

    @classmethod
    def decode(cls, dec: Decoder) -> "RotatingSecrets":
        with _decoding("RotatingSecrets"):
            _check_v(dec, "RotatingSecrets")
            secrets = {}
            for _ in range(dec.count(8 + 1 + 2 + 8 + 2)):
                secret_id = dec.u64()
                _check_v(dec, "ExpiringCryptoKey")
                key = CryptoKey.decode(dec)
                secrets[secret_id] = (key, utime_t.decode(dec).to_float())
            return cls(secrets, dec.u64())


def encode_rotating_request() -> bytes:
    """The C{auth_payload} of an MAuth asking for our service's rotating secrets."""
    return Encoder().u16(CEPHX_GET_ROTATING_KEY).getvalue()


def build_rotating_reply(entity_key: CryptoKey, secrets: RotatingSecrets) -> bytes:
    """The MAuthReply C{result_bl}: header, then the secrets sealed under the entity's own key."""
    return (Encoder().u16(CEPHX_GET_ROTATING_KEY).i32(0).getvalue()
            + encrypt_bl(entity_key, secrets.to_bytes(), CEPHX_KEY_USAGE_ROTATING_SECRET))


def parse_rotating_reply(entity_key: CryptoKey, dec: Decoder) -> RotatingSecrets:
    """Open the sealed RotatingSecrets of a reply (the header already read)."""
    plain = decrypt_bl(entity_key, dec, "rotating secrets", CEPHX_KEY_USAGE_ROTATING_SECRET)
    inner = Decoder(plain)
    secrets = RotatingSecrets.decode(inner)
    if inner.remaining():
        raise CephxDecodeError("%d trailing bytes after RotatingSecrets" % inner.remaining())
    return secrets


# --- authorizers ----------------------------------------------------------------------

def encode_authorize(nonce: int, have_challenge: bool = False, server_challenge_plus_one: int = 0) -> bytes:
    """CephXAuthorize v2."""
    return (Encoder().u8(2).u64(nonce).bool(have_challenge)
            .u64(server_challenge_plus_one & 0xFFFFFFFFFFFFFFFF).getvalue())


def decode_authorize(data: bytes) -> Tuple[int, bool, int]:
    with _decoding("CephXAuthorize"):
        dec = Decoder(data)
        v = _check_v(dec, "CephXAuthorize")
        nonce = dec.u64()
        if v >= 2:
            return nonce, dec.bool(), dec.u64()
        return nonce, False, 0


def encode_authorize_reply(nonce_plus_one: int, connection_secret: bytes = b"") -> bytes:
    enc = Encoder().u8(2 if connection_secret else 1).u64(nonce_plus_one & 0xFFFFFFFFFFFFFFFF)
    if connection_secret:
        enc.blob(connection_secret)
    return enc.getvalue()


def decode_authorize_reply(data: bytes) -> Tuple[int, bytes]:
    with _decoding("CephXAuthorizeReply"):
        dec = Decoder(data)
        v = _check_v(dec, "CephXAuthorizeReply")
        nonce_plus_one = dec.u64()
        secret = dec.blob() if v >= 2 else b""
    return nonce_plus_one, secret


class Authorizer:
    """
    A CephXAuthorizer: u8 1, u64 global_id, u32 service_id, CephXTicketBlob,
    then encrypt(CephXAuthorize) under the ticket's session key.
    """

    __slots__ = ("service_id", "global_id", "session_key", "nonce", "base", "payload")

    def __init__(self, ticket: ServiceTicket, global_id: int, nonce: Optional[int] = None) -> None:
        self.service_id = ticket.service_id
        self.global_id = global_id
        self.session_key = ticket.session_key
        self.nonce = random_u64() if nonce is None else nonce
        enc = Encoder().u8(1).u64(global_id).u32(ticket.service_id)
        ticket.blob.encode(enc)
        self.base = enc.getvalue()
        self.payload = self.base + encrypt_bl(self.session_key, encode_authorize(self.nonce), CEPHX_KEY_USAGE_AUTHORIZE)

    def __repr__(self) -> str:
        return "<Authorizer %s global_id=%d>" % (EntityType.name(self.service_id), self.global_id)

    def add_challenge(self, challenge: bytes) -> bytes:
        """Answer an encrypted CephXAuthorizeChallenge; returns the new payload."""
        plain = decrypt_enc_bl(self.session_key, challenge, "authorizer challenge", CEPHX_KEY_USAGE_AUTHORIZE_CHALLENGE)
        with _decoding("CephXAuthorizeChallenge"):
            dec = Decoder(plain)
            _check_v(dec, "CephXAuthorizeChallenge")
            server_challenge = dec.u64()
        self.payload = self.base + encrypt_bl(
            self.session_key, encode_authorize(self.nonce, True, server_challenge + 1), CEPHX_KEY_USAGE_AUTHORIZE)
        return self.payload

    def verify_reply(self, payload: bytes) -> bytes:
        """Check CephXAuthorizeReply (nonce + 1); return the connection secret."""
        plain = decrypt_bl(self.session_key, Decoder(payload), "authorizer reply", CEPHX_KEY_USAGE_AUTHORIZE_REPLY)
        nonce_plus_one, secret = decode_authorize_reply(plain)
        if not proofs_equal(nonce_plus_one, (self.nonce + 1) & 0xFFFFFFFFFFFFFFFF):
            raise CephxError("authorizer reply for %s does not answer our nonce" % EntityType.name(self.service_id))
        return secret


def decode_authorizer(dec: Decoder) -> Tuple[int, int, TicketBlob]:
    """The plain part of an authorizer: (global_id, service_id, ticket blob)."""
    with _decoding("authorizer"):
        v = dec.u8()
        if not 1 <= v <= 9:
            raise CephxDecodeError("authorizer version %d" % v)
        global_id = dec.u64()
        service_id = dec.u32()
    return global_id, service_id, TicketBlob.decode(dec)


def encode_authorize_challenge(server_challenge: int) -> bytes:
    return Encoder().u8(1).u64(server_challenge).getvalue()
