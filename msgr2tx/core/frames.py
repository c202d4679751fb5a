"""
Every msgr2 control frame as a typed value.

Each class has C{TAG}, C{encode() -> bytes} (the single payload segment) and
C{decode(payload) -> instance}.  L{MessageFrame} is the exception: it has four
segments (ceph_msg_header2, front, middle, data).  L{decode_frame} dispatches
on the tag.  Decoders reject a payload shorter than its fields with
L{DecodeError} and ignore bytes after the last field they know, as Ceph's
ControlFrame decoder does (src/msg/async/frames_v2.h): a newer peer may
append fields.  Versioned structs inside (entity_addr_t) skip the unknown
tail of a newer version whose compat version we know.

Control payloads are encoded with Ceph's "frame assumed" features
(MSG_ADDR2 | SERVER_NAUTILUS): addresses always use the MSG_ADDR2 form.
"""

import struct
from dataclasses import dataclass
from typing import ClassVar, Dict, Tuple, Type

from msgr2tx.core.constants import SEGMENT_ALIGN_DEFAULT, SEGMENT_ALIGN_PAGE, Tag
from msgr2tx.core.encoding import (
    Decoder, Encoder, entity_addr_t, entity_addrvec_t, utime_t,
)
from msgr2tx.errors import DecodeError, UnexpectedFrame

_secret_fields = frozenset({"payload", "signature"})


class ControlFrame:
    TAG: ClassVar[Tag]

    def encode(self) -> bytes:
        enc = Encoder()
        self._encode(enc)
        return bytes(enc.buf)

    def _encode(self, enc: Encoder) -> None:
        raise NotImplementedError

    @classmethod
    def decode(cls, payload) -> "ControlFrame":
        """
        The frame in C{payload}; bytes after its known fields are ignored.
        Raises L{DecodeError} when the payload is shorter than its fields.
        """
        return cls._decode(Decoder(payload))

    @classmethod
    def _decode(cls, dec: Decoder) -> "ControlFrame":
        raise NotImplementedError

    def segments(self):
        return (self.encode(),)


class _OneU64(ControlFrame):
    """A control frame whose payload is one u64 (its only field)."""

    def _encode(self, enc):
        enc.u64(getattr(self, next(iter(self.__dataclass_fields__))))

    @classmethod
    def _decode(cls, dec):
        return cls(dec.u64())


class _OneTimestamp(ControlFrame):
    """KEEPALIVE2 and its ACK: one utime_t."""

    def _encode(self, enc):
        self.timestamp.encode(enc)

    @classmethod
    def _decode(cls, dec):
        return cls(utime_t.decode(dec))



def _redacted_repr(self) -> str:
    """A repr that shows auth payloads and signatures only by length."""
    parts = []
    for name in self.__dataclass_fields__:
        value = getattr(self, name)
        if name in _secret_fields:
            parts.append("%s=<%d bytes>" % (name, len(value)))
        else:
            parts.append("%s=%r" % (name, value))
    return "%s(%s)" % (type(self).__name__, ", ".join(parts))


@dataclass(frozen=True)
class Hello(ControlFrame):
    TAG = Tag.HELLO
    entity_type: int
    peer_addr: entity_addr_t

    def _encode(self, enc):
        enc.u8(self.entity_type)
        self.peer_addr.encode(enc)

    @classmethod
    def _decode(cls, dec):
        return cls(dec.u8(), entity_addr_t.decode(dec))


@dataclass(frozen=True, repr=False)
class AuthRequest(ControlFrame):
    TAG = Tag.AUTH_REQUEST
    method: int
    preferred_modes: Tuple[int, ...]
    payload: bytes = b""
    __repr__ = _redacted_repr

    def _encode(self, enc):
        enc.u32(self.method).u32_list(self.preferred_modes).blob(self.payload)

    @classmethod
    def _decode(cls, dec):
        return cls(dec.u32(), tuple(dec.u32_list()), dec.blob())


@dataclass(frozen=True)
class AuthBadMethod(ControlFrame):
    TAG = Tag.AUTH_BAD_METHOD
    method: int
    result: int
    allowed_methods: Tuple[int, ...]
    allowed_modes: Tuple[int, ...]

    def _encode(self, enc):
        enc.u32(self.method).i32(self.result)
        enc.u32_list(self.allowed_methods).u32_list(self.allowed_modes)

    @classmethod
    def _decode(cls, dec):
        return cls(dec.u32(), dec.i32(), tuple(dec.u32_list()), tuple(dec.u32_list()))


class _OnePayload(ControlFrame):
    """AUTH_REPLY_MORE and AUTH_REQUEST_MORE: one auth payload blob."""

    def _encode(self, enc):
        enc.blob(self.payload)

    @classmethod
    def _decode(cls, dec):
        return cls(dec.blob())


@dataclass(frozen=True, repr=False)
class AuthReplyMore(_OnePayload):
    TAG = Tag.AUTH_REPLY_MORE
    payload: bytes
    __repr__ = _redacted_repr


@dataclass(frozen=True, repr=False)
class AuthRequestMore(_OnePayload):
    TAG = Tag.AUTH_REQUEST_MORE
    payload: bytes
    __repr__ = _redacted_repr


@dataclass(frozen=True, repr=False)
class AuthDone(ControlFrame):
    TAG = Tag.AUTH_DONE
    global_id: int
    con_mode: int
    payload: bytes = b""
    __repr__ = _redacted_repr

    def _encode(self, enc):
        enc.u64(self.global_id).u32(self.con_mode).blob(self.payload)

    @classmethod
    def _decode(cls, dec):
        return cls(dec.u64(), dec.u32(), dec.blob())


@dataclass(frozen=True, repr=False)
class AuthSignature(ControlFrame):
    TAG = Tag.AUTH_SIGNATURE
    signature: bytes
    __repr__ = _redacted_repr

    def _encode(self, enc):
        if len(self.signature) != 32:
            raise ValueError("AUTH_SIGNATURE carries 32 bytes")
        enc.raw(self.signature)

    @classmethod
    def _decode(cls, dec):
        return cls(dec.raw(32))


def _encode_ident_tail(enc: Encoder, ident) -> None:
    """What CLIENT_IDENT and SERVER_IDENT share after their addresses."""
    enc.i64(ident.gid).u64(ident.global_seq)
    enc.u64(ident.supported_features).u64(ident.required_features)
    enc.u64(ident.flags).u64(ident.cookie)


def _decode_ident_tail(dec: Decoder):
    return dec.i64(), dec.u64(), dec.u64(), dec.u64(), dec.u64(), dec.u64()


@dataclass(frozen=True)
class ClientIdent(ControlFrame):
    TAG = Tag.CLIENT_IDENT
    addrs: entity_addrvec_t
    target_addr: entity_addr_t
    gid: int
    global_seq: int
    supported_features: int
    required_features: int
    flags: int
    cookie: int

    def _encode(self, enc):
        self.addrs.encode(enc)
        self.target_addr.encode(enc)
        _encode_ident_tail(enc, self)

    @classmethod
    def _decode(cls, dec):
        return cls(entity_addrvec_t.decode(dec), entity_addr_t.decode(dec), *_decode_ident_tail(dec))


@dataclass(frozen=True)
class ServerIdent(ControlFrame):
    TAG = Tag.SERVER_IDENT
    addrs: entity_addrvec_t
    gid: int
    global_seq: int
    supported_features: int
    required_features: int
    flags: int
    cookie: int

    def _encode(self, enc):
        self.addrs.encode(enc)
        _encode_ident_tail(enc, self)

    @classmethod
    def _decode(cls, dec):
        return cls(entity_addrvec_t.decode(dec), *_decode_ident_tail(dec))


@dataclass(frozen=True)
class IdentMissingFeatures(_OneU64):
    TAG = Tag.IDENT_MISSING_FEATURES
    features: int


@dataclass(frozen=True)
class SessionReconnect(ControlFrame):
    TAG = Tag.SESSION_RECONNECT
    addrs: entity_addrvec_t
    client_cookie: int
    server_cookie: int
    global_seq: int
    connect_seq: int
    msg_seq: int

    def _encode(self, enc):
        self.addrs.encode(enc)
        enc.u64(self.client_cookie).u64(self.server_cookie)
        enc.u64(self.global_seq).u64(self.connect_seq).u64(self.msg_seq)

    @classmethod
    def _decode(cls, dec):
        return cls(entity_addrvec_t.decode(dec), dec.u64(), dec.u64(),
                   dec.u64(), dec.u64(), dec.u64())


@dataclass(frozen=True)
class SessionReset(ControlFrame):
    TAG = Tag.SESSION_RESET
    full: bool

    def _encode(self, enc):
        enc.bool(self.full)

    @classmethod
    def _decode(cls, dec):
        return cls(dec.bool())


@dataclass(frozen=True)
class SessionRetry(_OneU64):
    TAG = Tag.SESSION_RETRY
    connect_seq: int


@dataclass(frozen=True)
class SessionRetryGlobal(_OneU64):
    TAG = Tag.SESSION_RETRY_GLOBAL
    global_seq: int


@dataclass(frozen=True)
class SessionReconnectOk(_OneU64):
    TAG = Tag.SESSION_RECONNECT_OK
    msg_seq: int


@dataclass(frozen=True)
class Wait(ControlFrame):
    TAG = Tag.WAIT

    def _encode(self, enc):
        pass

    @classmethod
    def _decode(cls, dec):
        return cls()


@dataclass(frozen=True)
class Keepalive2(_OneTimestamp):
    TAG = Tag.KEEPALIVE2
    timestamp: utime_t


@dataclass(frozen=True)
class Keepalive2Ack(_OneTimestamp):
    TAG = Tag.KEEPALIVE2_ACK
    timestamp: utime_t


@dataclass(frozen=True)
class Ack(_OneU64):
    TAG = Tag.ACK
    seq: int


@dataclass(frozen=True)
class CompressionRequest(ControlFrame):
    TAG = Tag.COMPRESSION_REQUEST
    is_compress: bool
    preferred_methods: Tuple[int, ...] = ()

    def _encode(self, enc):
        enc.bool(self.is_compress).u32_list(self.preferred_methods)

    @classmethod
    def _decode(cls, dec):
        return cls(dec.bool(), tuple(dec.u32_list()))


@dataclass(frozen=True)
class CompressionDone(ControlFrame):
    TAG = Tag.COMPRESSION_DONE
    is_compress: bool
    method: int

    def _encode(self, enc):
        enc.bool(self.is_compress).u32(self.method)

    @classmethod
    def _decode(cls, dec):
        return cls(dec.bool(), dec.u32())


# --- MESSAGE ----------------------------------------------------------------

_HEADER2 = struct.Struct("<QQHHHIHQBHH")
HEADER2_SIZE = _HEADER2.size  # 41

MESSAGE_ALIGNS = (SEGMENT_ALIGN_DEFAULT, SEGMENT_ALIGN_DEFAULT, SEGMENT_ALIGN_DEFAULT, SEGMENT_ALIGN_PAGE)


@dataclass
class MessageHeader2:
    """ceph_msg_header2: the first segment of a MESSAGE frame."""

    seq: int = 0
    tid: int = 0
    type: int = 0
    priority: int = 127
    version: int = 1
    data_pre_padding_len: int = 0
    data_off: int = 0
    ack_seq: int = 0
    flags: int = 0
    compat_version: int = 1
    reserved: int = 0

    def encode(self) -> bytes:
        return _HEADER2.pack(self.seq, self.tid, self.type, self.priority, self.version,
                             self.data_pre_padding_len, self.data_off, self.ack_seq,
                             self.flags, self.compat_version, self.reserved)

    @classmethod
    def decode(cls, data) -> "MessageHeader2":
        if len(data) != HEADER2_SIZE:
            raise DecodeError("ceph_msg_header2 is %d bytes, not %d" % (HEADER2_SIZE, len(data)))
        return cls(*_HEADER2.unpack(data))


@dataclass
class MessageFrame:
    """A MESSAGE frame: header plus front, middle and data segments."""

    TAG: ClassVar[Tag] = Tag.MESSAGE
    header: MessageHeader2
    front: bytes = b""
    middle: bytes = b""
    data: bytes = b""

    def segments(self):
        return (self.header.encode(), self.front, self.middle, self.data)

    @classmethod
    def from_segments(cls, segments) -> "MessageFrame":
        header = MessageHeader2.decode(segments[0])
        rest = list(segments[1:]) + [b""] * (4 - len(segments))
        return cls(header, rest[0], rest[1], rest[2])

    def __repr__(self) -> str:
        return "MessageFrame(type=%d, seq=%d, front=%d, middle=%d, data=%d)" % (
            self.header.type, self.header.seq, len(self.front), len(self.middle), len(self.data))


CONTROL_FRAMES: Dict[int, Type[ControlFrame]] = {
    cls.TAG: cls for cls in (
        Hello, AuthRequest, AuthBadMethod, AuthReplyMore, AuthRequestMore,
        AuthDone, AuthSignature, ClientIdent, ServerIdent, IdentMissingFeatures,
        SessionReconnect, SessionReset, SessionRetry, SessionRetryGlobal,
        SessionReconnectOk, Wait, Keepalive2, Keepalive2Ack, Ack,
        CompressionRequest, CompressionDone,
    )
}


def decode_frame(tag: int, segments):
    """Decode a received frame's segments into its typed value."""
    if tag == Tag.MESSAGE:
        return MessageFrame.from_segments(segments)
    cls = CONTROL_FRAMES.get(tag)
    if cls is None:
        raise UnexpectedFrame("no control frame has tag %d" % tag)
    if len(segments) != 1:
        raise DecodeError("%s frame has %d segments, expected 1" % (cls.TAG.name, len(segments)))
    return cls.decode(segments[0])


__all__ = [c.__name__ for c in CONTROL_FRAMES.values()] + [
    "ControlFrame", "MessageHeader2", "MessageFrame", "decode_frame", "HEADER2_SIZE", "MESSAGE_ALIGNS",
]
