"""
Ceph's wire encoding: little-endian integers, length-prefixed blobs and
strings, lists and maps, versioned struct headers, and the entity and time
types that msgr2 frames carry.

L{Encoder} appends to a bytearray; L{Decoder} reads from any bytes-like object
at an offset and raises L{DecodeError} when the input runs short.
"""

import ipaddress
import struct
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence, Tuple

from msgr2tx.errors import DecodeError

_U8 = struct.Struct("<B")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_I16 = struct.Struct("<h")
_I32 = struct.Struct("<i")
_I64 = struct.Struct("<q")
_STRUCT_HEADER = struct.Struct("<BBI")

# Linux address family numbers: what Ceph puts on the wire whatever the host.
AF_UNSPEC = 0
AF_INET = 2
AF_INET6 = 10


class Encoder:
    """Append Ceph-encoded values to a bytearray."""

    __slots__ = ("buf",)

    def __init__(self) -> None:
        self.buf = bytearray()

    def getvalue(self) -> bytes:
        return bytes(self.buf)

    def u8(self, v: int) -> "Encoder":
        self.buf += _U8.pack(v)
        return self

    def bool(self, v: bool) -> "Encoder":
        self.buf += b"\x01" if v else b"\x00"
        return self

    def u16(self, v: int) -> "Encoder":
        self.buf += _U16.pack(v)
        return self

    def u32(self, v: int) -> "Encoder":
        self.buf += _U32.pack(v)
        return self

    def u64(self, v: int) -> "Encoder":
        self.buf += _U64.pack(v)
        return self

    def i16(self, v: int) -> "Encoder":
        self.buf += _I16.pack(v)
        return self

    def i32(self, v: int) -> "Encoder":
        self.buf += _I32.pack(v)
        return self

    def i64(self, v: int) -> "Encoder":
        self.buf += _I64.pack(v)
        return self

    def raw(self, b) -> "Encoder":
        self.buf += b
        return self

    def blob(self, b) -> "Encoder":
        """A bufferlist: u32 length, then the bytes."""
        self.buf += _U32.pack(len(b))
        self.buf += b
        return self

    def string(self, s) -> "Encoder":
        """A std::string: u32 length, then UTF-8 bytes."""
        if isinstance(s, str):
            s = s.encode("utf-8")
        return self.blob(s)

    def u32_list(self, values: Sequence[int]) -> "Encoder":
        self.buf += _U32.pack(len(values))
        for v in values:
            self.buf += _U32.pack(v)
        return self

    def string_list(self, values: Sequence) -> "Encoder":
        self.buf += _U32.pack(len(values))
        for v in values:
            self.string(v)
        return self

    def list(self, values: Sequence, item: Callable[["Encoder", object], object]) -> "Encoder":
        self.buf += _U32.pack(len(values))
        for v in values:
            item(self, v)
        return self

    def map(self, mapping, key, value) -> "Encoder":
        self.buf += _U32.pack(len(mapping))
        for k, v in mapping.items():
            key(self, k)
            value(self, v)
        return self

    def start(self, version: int, compat: int) -> int:
        """
        Begin a versioned struct (ENCODE_START): returns a token for L{finish},
        which fills in the length.
        """
        pos = len(self.buf)
        self.buf += _STRUCT_HEADER.pack(version, compat, 0)
        return pos

    def finish(self, pos: int) -> "Encoder":
        _U32.pack_into(self.buf, pos + 2, len(self.buf) - pos - 6)
        return self


class Decoder:
    """Read Ceph-encoded values from a bytes-like object."""

    __slots__ = ("data", "offset", "end")

    def __init__(self, data, offset: int = 0, end: Optional[int] = None) -> None:
        self.data = data
        self.offset = offset
        self.end = len(data) if end is None else end

    def remaining(self) -> int:
        return self.end - self.offset

    def _need(self, n: int, what: str) -> int:
        pos = self.offset
        if n < 0 or pos + n > self.end:
            raise DecodeError(
                "truncated %s: need %d bytes at offset %d, %d left"
                % (what, n, pos, self.end - pos)
            )
        self.offset = pos + n
        return pos

    def u8(self) -> int:
        return _U8.unpack_from(self.data, self._need(1, "u8"))[0]

    def bool(self) -> bool:
        return self.u8() != 0

    def u16(self) -> int:
        return _U16.unpack_from(self.data, self._need(2, "u16"))[0]

    def u32(self) -> int:
        return _U32.unpack_from(self.data, self._need(4, "u32"))[0]

    def u64(self) -> int:
        return _U64.unpack_from(self.data, self._need(8, "u64"))[0]

    def i16(self) -> int:
        return _I16.unpack_from(self.data, self._need(2, "i16"))[0]

    def i32(self) -> int:
        return _I32.unpack_from(self.data, self._need(4, "i32"))[0]

    def i64(self) -> int:
        return _I64.unpack_from(self.data, self._need(8, "i64"))[0]

    def raw(self, n: int) -> bytes:
        pos = self._need(n, "bytes")
        return bytes(self.data[pos:pos + n])

    def blob(self) -> bytes:
        return self.raw(self.u32())

    def string(self) -> str:
        return self.blob().decode("utf-8", "replace")

    def count(self, min_item_size: int = 1) -> int:
        """A u32 element count, checked against what is left to read."""
        n = self.u32()
        if n * min_item_size > self.end - self.offset:
            raise DecodeError("list of %d items cannot fit in %d bytes" % (n, self.end - self.offset))
        return n

    def u32_list(self) -> List[int]:
        return [self.u32() for _ in range(self.count(4))]

    def string_list(self) -> List[str]:
        return [self.string() for _ in range(self.count(4))]

    def list(self, item: Callable[["Decoder"], object], min_item_size: int = 1) -> list:
        return [item(self) for _ in range(self.count(min_item_size))]

    def map(self, key, value, min_item_size: int = 2) -> dict:
        return {key(self): value(self) for _ in range(self.count(min_item_size))}

    def start(self, max_compat: int = 255, what: str = "struct") -> Tuple[int, int]:
        """
        Enter a versioned struct (DECODE_START).  Returns (version, end); pass
        end to L{finish}, which skips fields newer than we understand.
        """
        version, compat, length = _STRUCT_HEADER.unpack_from(self.data, self._need(6, what + " header"))
        if compat > max_compat:
            raise DecodeError("%s compat version %d is newer than %d" % (what, compat, max_compat))
        end = self.offset + length
        if end > self.end:
            raise DecodeError("%s of %d bytes overruns its container" % (what, length))
        return version, end

    def finish(self, end: int) -> None:
        if self.offset > end:
            raise DecodeError("struct decoded past its declared length")
        self.offset = end

    def expect_end(self, what: str = "payload") -> None:
        if self.offset != self.end:
            raise DecodeError("%d unexpected trailing bytes in %s" % (self.end - self.offset, what))


# --- entity and time types -------------------------------------------------

class EntityType:
    """CEPH_ENTITY_TYPE_* values."""

    MON = 0x01
    MDS = 0x02
    OSD = 0x04
    CLIENT = 0x08
    MGR = 0x10
    AUTH = 0x20
    ANY = 0xFF

    names = {MON: "mon", MDS: "mds", OSD: "osd", CLIENT: "client", MGR: "mgr", AUTH: "auth"}
    by_name = {v: k for k, v in names.items()}

    @classmethod
    def name(cls, value: int) -> str:
        return cls.names.get(value, "type%d" % value)

    @classmethod
    def parse(cls, name: str) -> int:
        try:
            return cls.by_name[name]
        except KeyError:
            raise ValueError("unknown entity type %r" % (name,)) from None


@dataclass(frozen=True)
class EntityName:
    """An auth entity name such as C{client.admin} (u32 type + string id)."""

    type: int
    id: str

    @classmethod
    def parse(cls, text: str) -> "EntityName":
        kind, dot, ident = text.partition(".")
        if not dot:
            raise ValueError("entity name %r is not TYPE.ID" % (text,))
        return cls(EntityType.parse(kind), ident)

    def __str__(self) -> str:
        return "%s.%s" % (EntityType.name(self.type), self.id)

    def encode(self, enc: Encoder) -> None:
        enc.u32(self.type).string(self.id)

    @classmethod
    def decode(cls, dec: Decoder) -> "EntityName":
        return cls(dec.u32(), dec.string())


@dataclass(frozen=True)
class entity_name_t:
    """A messenger entity: u8 type + i64 number (C{client.4123})."""

    type: int
    num: int

    def __str__(self) -> str:
        return "%s.%d" % (EntityType.name(self.type), self.num)

    def encode(self, enc: Encoder) -> None:
        enc.u8(self.type).i64(self.num)

    @classmethod
    def decode(cls, dec: Decoder) -> "entity_name_t":
        return cls(dec.u8(), dec.i64())


@dataclass(frozen=True)
class utime_t:
    """Seconds and nanoseconds, each u32."""

    sec: int = 0
    nsec: int = 0

    @classmethod
    def from_float(cls, t: float) -> "utime_t":
        sec = int(t)
        return cls(sec & 0xFFFFFFFF, int((t - sec) * 1e9) % 1000000000)

    def to_float(self) -> float:
        return self.sec + self.nsec / 1e9

    def encode(self, enc: Encoder) -> None:
        enc.u32(self.sec).u32(self.nsec)

    @classmethod
    def decode(cls, dec: Decoder) -> "utime_t":
        return cls(dec.u32(), dec.u32())


class AddrType:
    NONE = 0
    LEGACY = 1
    MSGR2 = 2
    ANY = 3
    CIDR = 4

    prefixes = {LEGACY: "v1", MSGR2: "v2", ANY: "any", NONE: "none", CIDR: "cidr"}


_SOCKADDR_STORAGE = 128
_SOCKADDR_LEN = {AF_INET: 16, AF_INET6: 28}


@dataclass(frozen=True)
class entity_addr_t:
    """
    A messenger address: type (v1/v2/any), nonce and a socket address.  The
    host is an C{ipaddress} object or None for a blank address.
    """

    type: int = AddrType.NONE
    nonce: int = 0
    host: Optional[object] = None
    port: int = 0
    flowinfo: int = 0
    scope_id: int = 0

    @classmethod
    def parse(cls, text: str, default_type: int = AddrType.MSGR2, default_port: int = 3300) -> "entity_addr_t":
        """
        Parse Ceph's text form: C{v2:127.0.0.1:3300/0}, C{v2:[::1]:3300},
        C{127.0.0.1} or C{127.0.0.1:6789}.
        """
        rest = text.strip()
        addr_type = default_type
        for t, prefix in AddrType.prefixes.items():
            if rest.startswith(prefix + ":"):
                addr_type = t
                rest = rest[len(prefix) + 1:]
                break
        nonce = 0
        if "/" in rest:
            rest, _, nonce_text = rest.rpartition("/")
            nonce = int(nonce_text)
        port = default_port
        if rest.startswith("["):
            host_text, _, after = rest[1:].partition("]")
            if after.startswith(":"):
                port = int(after[1:])
        elif rest.count(":") == 1:
            host_text, _, port_text = rest.partition(":")
            port = int(port_text)
        else:
            host_text = rest
        host = ipaddress.ip_address(host_text)
        if not 0 <= port <= 65535:
            raise ValueError("port %d out of range" % port)
        return cls(addr_type, nonce, host, port)

    @property
    def family(self) -> int:
        if self.host is None:
            return AF_UNSPEC
        return AF_INET6 if self.host.version == 6 else AF_INET

    def with_port(self, port: int) -> "entity_addr_t":
        return entity_addr_t(self.type, self.nonce, self.host, port, self.flowinfo, self.scope_id)

    def with_type(self, addr_type: int) -> "entity_addr_t":
        return entity_addr_t(addr_type, self.nonce, self.host, self.port, self.flowinfo, self.scope_id)

    def is_blank_ip(self) -> bool:
        return self.host is None or self.host.is_unspecified

    def __str__(self) -> str:
        prefix = AddrType.prefixes.get(self.type, "type%d" % self.type)
        if self.host is None:
            return "%s:-/%d" % (prefix, self.nonce)
        if self.host.version == 6:
            return "%s:[%s]:%d/%d" % (prefix, self.host, self.port, self.nonce)
        return "%s:%s:%d/%d" % (prefix, self.host, self.port, self.nonce)

    def _sockaddr(self) -> bytes:
        family = self.family
        if family == AF_INET:
            return (_U16.pack(AF_INET) + struct.pack(">H", self.port)
                    + self.host.packed + bytes(8))
        if family == AF_INET6:
            return (_U16.pack(AF_INET6) + struct.pack(">HI", self.port, self.flowinfo)
                    + self.host.packed + _U32.pack(self.scope_id))
        return bytes(28)

    def encode(self, enc: Encoder) -> None:
        """The MSG_ADDR2 form (marker 1 + versioned struct)."""
        enc.u8(1)
        pos = enc.start(1, 1)
        sockaddr = self._sockaddr()
        enc.u32(self.type).u32(self.nonce).u32(len(sockaddr)).raw(sockaddr)
        enc.finish(pos)

    @classmethod
    def _from_sockaddr(cls, addr_type: int, nonce: int, sa: bytes, family: int) -> "entity_addr_t":
        if family == AF_INET:
            if len(sa) < 8:
                raise DecodeError("IPv4 sockaddr of %d bytes" % len(sa))
            port = struct.unpack_from(">H", sa, 2)[0]
            return cls(addr_type, nonce, ipaddress.IPv4Address(sa[4:8]), port)
        if family == AF_INET6:
            if len(sa) < 28:
                raise DecodeError("IPv6 sockaddr of %d bytes" % len(sa))
            port, flowinfo = struct.unpack_from(">HI", sa, 2)
            scope_id = _U32.unpack_from(sa, 24)[0]
            return cls(addr_type, nonce, ipaddress.IPv6Address(sa[8:24]), port, flowinfo, scope_id)
        if family == AF_UNSPEC:
            return cls(addr_type, nonce)
        raise DecodeError("unknown address family %d" % family)

    @classmethod
    def decode(cls, dec: Decoder) -> "entity_addr_t":
        marker = dec.u8()
        if marker == 0:
            # legacy: u8 0 already read as part of a u32 zero
            dec.raw(3)
            nonce = dec.u32()
            sa = dec.raw(_SOCKADDR_STORAGE)
            family = struct.unpack_from(">H", sa, 0)[0]
            addr_type = AddrType.NONE if family == AF_UNSPEC else AddrType.LEGACY
            return cls._from_sockaddr(addr_type, nonce, sa, family)
        if marker != 1:
            raise DecodeError("entity_addr_t marker %d" % marker)
        _, end = dec.start(1, "entity_addr_t")
        addr_type = dec.u32()
        nonce = dec.u32()
        sa_len = dec.u32()
        sa = dec.raw(sa_len)
        family = AF_UNSPEC
        if sa_len:
            if sa_len < 2:
                raise DecodeError("sockaddr of %d bytes is shorter than its family" % sa_len)
            family = _U16.unpack_from(sa, 0)[0]
            if sa_len > _SOCKADDR_LEN.get(family, 28):
                raise DecodeError("sockaddr of %d bytes is too long for family %d" % (sa_len, family))
        dec.finish(end)
        return cls._from_sockaddr(addr_type, nonce, sa, family)


@dataclass(frozen=True)
class entity_addrvec_t:
    """A list of addresses (marker 2, u32 count, entity_addr_t each)."""

    addrs: Tuple[entity_addr_t, ...] = field(default_factory=tuple)

    @classmethod
    def parse(cls, text: str) -> "entity_addrvec_t":
        """C{[v2:1.2.3.4:3300,v1:1.2.3.4:6789]} or a single address."""
        text = text.strip()
        if text.startswith("[") and not text.startswith("[:") and "]" in text and text.endswith("]") \
                and (text[1:3] in ("v1", "v2", "an") or "," in text):
            parts = [p for p in text[1:-1].split(",") if p]
        else:
            parts = [text]
        return cls(tuple(entity_addr_t.parse(p) for p in parts))

    def __str__(self) -> str:
        if len(self.addrs) == 1:
            return str(self.addrs[0])
        return "[" + ",".join(str(a) for a in self.addrs) + "]"

    def msgr2_addr(self) -> Optional[entity_addr_t]:
        for a in self.addrs:
            if a.type in (AddrType.MSGR2, AddrType.ANY):
                return a
        return None

    def encode(self, enc: Encoder) -> None:
        enc.u8(2).u32(len(self.addrs))
        for a in self.addrs:
            a.encode(enc)

    @classmethod
    def decode(cls, dec: Decoder) -> "entity_addrvec_t":
        marker = dec.data[dec.offset] if dec.offset < dec.end else None
        if marker is None:
            raise DecodeError("truncated entity_addrvec_t")
        if marker in (0, 1):
            return cls((entity_addr_t.decode(dec),))
        if marker != 2:
            raise DecodeError("entity_addrvec_t marker %d" % marker)
        dec.u8()
        return cls(tuple(dec.list(entity_addr_t.decode, 10)))


def encode_uuid(enc: Encoder, uuid_bytes: bytes) -> None:
    if len(uuid_bytes) != 16:
        raise ValueError("a uuid is 16 bytes")
    enc.raw(uuid_bytes)


def addr_from_socket(host: str, port: int, addr_type: int = AddrType.MSGR2, nonce: int = 0) -> entity_addr_t:
    """Build an address from what a transport's getHost/getPeer reports."""
    if "%" in host:
        host = host.split("%", 1)[0]
    return entity_addr_t(addr_type, nonce, ipaddress.ip_address(host), port)


__all__ = [
    "Encoder", "Decoder", "EntityType", "EntityName", "entity_name_t", "utime_t",
    "AddrType", "entity_addr_t", "entity_addrvec_t", "encode_uuid", "addr_from_socket",
    "AF_INET", "AF_INET6", "AF_UNSPEC",
]
