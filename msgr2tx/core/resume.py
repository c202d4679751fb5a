"""
msgr2tx's fast reconnect (session resume): the payloads, proofs and keys.

Between two msgr2tx peers that both advertise
L{Msgr2Feature.MSGR2TX_FAST_RECONNECT} in their banners, a client that holds
a lossless session with the server (both cookies, and the session key and
ticket expiry of the auth exchange that set it up) reconnects with an
AUTH_REQUEST of the private method L{AuthMethod.MSGR2TX_RESUME} instead of a
new cephx exchange.  Its payload, the L{ResumeRequest}, proves possession
of the session key with an HMAC-SHA256 over the cookies, the new
connection's global_seq (which must exceed the last one the server saw, so a
captured request cannot be replayed) and a fresh client random, and may
carry the session's first messages sealed under a key derived from the
session key and that random.  The server answers AUTH_DONE with a
L{ResumeReply} (its own random and proof, and the highest message seq it
has) or, refusing, AUTH_BAD_METHOD with a negative errno that names the
reason; the client then goes on with its ordinary auth method on the same
connection.  Both sides derive the new connection's secrets from the session
key and both randoms with HKDF-SHA256 (RFC 5869), then exchange
AUTH_SIGNATURE as usual.  docs/protocol.md, "Fast reconnect", is the
proposal with byte layouts and the reasoning; this module is its code and
does no I/O.

Nothing here comes from Ceph, which has no such exchange; the frames around
it (AUTH_REQUEST, AUTH_DONE, AUTH_BAD_METHOD, AUTH_SIGNATURE) and the
connection secret layout (L{msgr2tx.core.crypto.split_connection_secret})
are Ceph's.
"""

import errno
import hashlib
import hmac
import struct
from typing import List, NamedTuple, Sequence, Tuple, Type

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from msgr2tx.core.constants import SECURE_CONNECTION_SECRET_LEN
from msgr2tx.core.frames import HEADER2_SIZE
from msgr2tx.errors import (
    ResumeExpired, ResumeNotNegotiated, ResumeRefused, ResumeReplayed, ResumeStale, ResumeTampered,
    ResumeUnknownSession,
)

#: the payload layout version this module writes and reads
RESUME_VERSION = 1
#: bytes of each side's random
RANDOM_SIZE = 32
#: bytes of an HMAC-SHA256 proof
PROOF_SIZE = 32
#: the most plaintext bytes of early messages a request may carry
EARLY_DATA_LIMIT = 64 << 10
#: AES-256-GCM for the early data: key and tag sizes
EARLY_KEY_SIZE = 32
EARLY_TAG_SIZE = 16
#: the early data key is used once (a fresh client random each time), so a
#: fixed nonce is safe
_EARLY_NONCE = bytes(12)

# u8 version, u64 client_cookie, u64 server_cookie, u64 global_seq,
# u64 connect_seq, u64 msg_seq, 32 bytes client_random, u32 early count
_REQUEST_HEAD = struct.Struct("<BQQQQQ32sI")
# u8 version, 32 bytes server_random, u64 msg_seq
_REPLY_HEAD = struct.Struct("<B32sQ")
_U32 = struct.Struct("<I")

_LABEL_PROOF_KEY = b"msgr2tx fast reconnect v1 proof key"
_LABEL_REQUEST = b"msgr2tx fast reconnect v1 request\0"
_LABEL_REPLY = b"msgr2tx fast reconnect v1 reply\0"
_LABEL_EARLY = b"msgr2tx fast reconnect v1 early data\0"
_LABEL_CONNECTION = b"msgr2tx fast reconnect v1 connection\0"


class ResumeRequest(NamedTuple):
    """
    The AUTH_REQUEST payload of L{AuthMethod.MSGR2TX_RESUME}.

    @ivar client_cookie: the session's client cookie (u64).
    @ivar server_cookie: the session's server cookie, from SERVER_IDENT (u64).
    @ivar global_seq: this connection's global_seq (u64), above every one
        the server has seen from this session.
    @ivar connect_seq: the session's connect_seq for this attempt (u64).
    @ivar msg_seq: the highest message seq the client has received (u64),
        as in SESSION_RECONNECT: the server replays what follows.
    @ivar client_random: 32 fresh random bytes.
    @ivar early_count: how many messages C{early_data} seals.
    @ivar early_data: the sealed early messages (AES-256-GCM ciphertext and
        tag; empty: none).
    @ivar proof: HMAC-SHA256 over all of the above and the modes asked for.
    """

    client_cookie: int
    server_cookie: int
    global_seq: int
    connect_seq: int
    msg_seq: int
    client_random: bytes
    early_count: int
    early_data: bytes
    proof: bytes

    def __repr__(self) -> str:
        return "ResumeRequest(global_seq=%d, connect_seq=%d, msg_seq=%d, early=%d messages, <secrets>)" % (
            self.global_seq, self.connect_seq, self.msg_seq, self.early_count)

    def head(self) -> bytes:
        return _REQUEST_HEAD.pack(RESUME_VERSION, self.client_cookie, self.server_cookie, self.global_seq,
                                  self.connect_seq, self.msg_seq, self.client_random, self.early_count)

    def encode(self) -> bytes:
        """The payload bytes: the fixed head, u32 length + early data, the 32-byte proof."""
        return self.head() + _U32.pack(len(self.early_data)) + self.early_data + self.proof

    @classmethod
    def decode(cls, payload: bytes) -> "ResumeRequest":
        """Raises L{ResumeTampered} for a payload that is not a version 1 request."""
        n = _REQUEST_HEAD.size
        if len(payload) < n + 4 + PROOF_SIZE:
            raise ResumeTampered("fast reconnect request of %d bytes is too short" % len(payload))
        version, ccookie, scookie, gseq, cseq, mseq, crandom, count = _REQUEST_HEAD.unpack_from(payload)
        if version != RESUME_VERSION:
            raise ResumeTampered("fast reconnect request version %d (we know %d)" % (version, RESUME_VERSION))
        (early_len,) = _U32.unpack_from(payload, n)
        if early_len > EARLY_DATA_LIMIT + EARLY_TAG_SIZE or len(payload) != n + 4 + early_len + PROOF_SIZE:
            raise ResumeTampered("fast reconnect request: early data length %d does not fit the payload"
                                 % early_len)
        early = bytes(payload[n + 4:n + 4 + early_len])
        proof = bytes(payload[n + 4 + early_len:])
        return cls(ccookie, scookie, gseq, cseq, mseq, bytes(crandom), count, early, proof)


class ResumeReply(NamedTuple):
    """
    The AUTH_DONE payload that accepts a fast reconnect.

    @ivar server_random: 32 fresh random bytes.
    @ivar msg_seq: the highest message seq the server has received, early
        messages included (u64): the client replays what follows.
    @ivar proof: HMAC-SHA256 over the client's proof, these fields, the
        connection mode and the global_id of AUTH_DONE.
    """

    server_random: bytes
    msg_seq: int
    proof: bytes

    def __repr__(self) -> str:
        return "ResumeReply(msg_seq=%d, <secrets>)" % self.msg_seq

    def encode(self) -> bytes:
        return _REPLY_HEAD.pack(RESUME_VERSION, self.server_random, self.msg_seq) + self.proof

    @classmethod
    def decode(cls, payload: bytes) -> "ResumeReply":
        if len(payload) != _REPLY_HEAD.size + PROOF_SIZE:
            raise ResumeTampered("fast reconnect reply of %d bytes, expected %d"
                                 % (len(payload), _REPLY_HEAD.size + PROOF_SIZE))
        version, srandom, mseq = _REPLY_HEAD.unpack_from(payload)
        if version != RESUME_VERSION:
            raise ResumeTampered("fast reconnect reply version %d (we know %d)" % (version, RESUME_VERSION))
        return cls(bytes(srandom), mseq, bytes(payload[_REPLY_HEAD.size:]))


class ConnectionKeys(NamedTuple):
    """What a resumed connection uses instead of the auth method's output."""

    #: signs the pre-auth transcript (AUTH_SIGNATURE), 32 bytes
    signature_key: bytes
    #: the secure mode connection secret (key and both nonces), 64 bytes
    connection_secret: bytes

    def __repr__(self) -> str:
        return "ConnectionKeys(<secrets>)"


def _hkdf(session_key: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt or None, info=info).derive(session_key)


def _binding(client_cookie: int, server_cookie: int, global_seq: int) -> bytes:
    return struct.pack("<QQQ", client_cookie, server_cookie, global_seq)


def proof_key(session_key: bytes) -> bytes:
    """The 32-byte HMAC key of both proofs: HKDF-SHA256 of the session key (no salt)."""
    return _hkdf(session_key, b"", _LABEL_PROOF_KEY, 32)


def request_proof(session_key: bytes, request: ResumeRequest, modes: Sequence[int]) -> bytes:
    """
    HMAC-SHA256 under L{proof_key} over a label, the request's head (version,
    cookies, global_seq, connect_seq, msg_seq, client random, early count),
    the sealed early data and the connection modes of the AUTH_REQUEST.
    """
    mac = hmac.new(proof_key(session_key), _LABEL_REQUEST, hashlib.sha256)
    mac.update(request.head())
    mac.update(_U32.pack(len(request.early_data)) + request.early_data)
    mac.update(_U32.pack(len(modes)) + b"".join(_U32.pack(m) for m in modes))
    return mac.digest()


def reply_proof(session_key: bytes, request: ResumeRequest, server_random: bytes, msg_seq: int,
                con_mode: int, global_id: int) -> bytes:
    """HMAC-SHA256 under L{proof_key} over a label, the client's proof, the reply's fields and AUTH_DONE's."""
    mac = hmac.new(proof_key(session_key), _LABEL_REPLY, hashlib.sha256)
    mac.update(request.proof + server_random + struct.pack("<QIQ", msg_seq, con_mode, global_id))
    return mac.digest()


def proofs_match(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


def early_key(session_key: bytes, client_random: bytes, client_cookie: int, server_cookie: int,
              global_seq: int) -> bytes:
    """The AES-256-GCM key of the early data: known before the server's random is."""
    return _hkdf(session_key, client_random, _LABEL_EARLY + _binding(client_cookie, server_cookie, global_seq),
                 EARLY_KEY_SIZE)


def connection_keys(session_key: bytes, request: ResumeRequest, server_random: bytes) -> ConnectionKeys:
    """
    The resumed connection's signature key and connection secret: HKDF-SHA256
    with the session key as input, both randoms as salt, and the cookies and
    global_seq in the info, so every connection gets its own keys and
    nonce sequences.
    """
    out = _hkdf(session_key, request.client_random + server_random,
                _LABEL_CONNECTION + _binding(request.client_cookie, request.server_cookie, request.global_seq),
                32 + SECURE_CONNECTION_SECRET_LEN)
    return ConnectionKeys(out[:32], out[32:])


def seal_early(key: bytes, head: bytes, plaintext: bytes) -> bytes:
    """AES-256-GCM of the early messages, the request's head as associated data."""
    if not plaintext:
        return b""
    return AESGCM(key).encrypt(_EARLY_NONCE, plaintext, head)


def open_early(key: bytes, head: bytes, sealed: bytes) -> bytes:
    """The early messages' plaintext; raises L{ResumeTampered} if the tag does not verify."""
    if not sealed:
        return b""
    try:
        return AESGCM(key).decrypt(_EARLY_NONCE, sealed, head)
    except InvalidTag:
        raise ResumeTampered("fast reconnect early data does not verify") from None


def encode_early(messages: Sequence[Tuple[bytes, bytes, bytes, bytes]]) -> bytes:
    """(header2, front, middle, data) of each message, each segment after its u32 length."""
    out = bytearray()
    for header, front, middle, data in messages:
        if len(header) != HEADER2_SIZE:
            raise ValueError("ceph_msg_header2 is %d bytes" % HEADER2_SIZE)
        out += header
        for segment in (front, middle, data):
            out += _U32.pack(len(segment))
            out += segment
    return bytes(out)


def early_size(front: bytes, middle: bytes, data: bytes) -> int:
    """Plaintext bytes one message takes in the early data."""
    return HEADER2_SIZE + 12 + len(front) + len(middle) + len(data)


def decode_early(plaintext: bytes, count: int) -> List[Tuple[bytes, bytes, bytes, bytes]]:
    """The inverse of L{encode_early}; raises L{ResumeTampered} unless it holds exactly C{count} messages."""
    out = []
    pos = 0
    view = memoryview(plaintext)
    try:
        for _ in range(count):
            if pos + HEADER2_SIZE > len(view):
                raise ValueError
            header = bytes(view[pos:pos + HEADER2_SIZE])
            pos += HEADER2_SIZE
            segments = []
            for _ in range(3):
                (n,) = _U32.unpack_from(view, pos)
                pos += 4
                if pos + n > len(view):
                    raise ValueError
                segments.append(bytes(view[pos:pos + n]))
                pos += n
            out.append((header, segments[0], segments[1], segments[2]))
    except (ValueError, struct.error):
        raise ResumeTampered("fast reconnect early data does not hold %d messages" % count) from None
    if pos != len(view):
        raise ResumeTampered("fast reconnect early data has %d bytes after its %d messages" % (len(view) - pos, count))
    return out


#: the refusals by the negative errno that AUTH_BAD_METHOD carries
REFUSALS: Tuple[Tuple[int, Type[ResumeRefused]], ...] = (
    (-errno.EOPNOTSUPP, ResumeNotNegotiated),
    (-errno.ENOENT, ResumeUnknownSession),
    (-errno.EBADMSG, ResumeTampered),
    (-errno.EALREADY, ResumeReplayed),
    (-errno.ESTALE, ResumeStale),
    (-errno.EKEYEXPIRED, ResumeExpired),
)


def refusal_result(error: ResumeRefused) -> int:
    """The negative errno a server sends in AUTH_BAD_METHOD for C{error}."""
    for result, cls in REFUSALS:
        if type(error) is cls:
            return result
    return -errno.EACCES


def refusal_from_result(result: int, server_says: str = "") -> ResumeRefused:
    """
    The client's view of an AUTH_BAD_METHOD answering its fast reconnect:
    the typed error the errno names (a Ceph server, which does not know the
    method, answers -EOPNOTSUPP: L{ResumeNotNegotiated}).
    """
    for code, cls in REFUSALS:
        if code == result:
            return cls("server refused the fast reconnect (%s, result %d)%s"
                       % (cls.__name__, result, server_says))
    return ResumeRefused("server refused the fast reconnect (result %d)%s" % (result, server_says))
