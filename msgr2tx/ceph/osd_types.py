"""
The structures an object request carries: op codes and flags
(C{src/include/rados.h}), one C{ceph_osd_op} with its in and out data
(C{OSDOp}, C{src/osd/osd_types.h}), object locators, C{hobject_t},
C{spg_t}, C{osd_reqid_t}, C{eversion_t} and C{request_redirect_t}
(C{src/osd/osd_types.cc}, C{src/common/hobject.cc}), and the encoders of
the op payloads librados builds (C{src/osdc/Objecter.h} C{ObjectOperation})
and decoders of what the OSD answers.

No I/O and no Twisted here.
"""

import struct
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Tuple

from msgr2tx.core.encoding import Decoder, Encoder, utime_t
from msgr2tx.core.messages import SHARE_SEGMENTS_FROM
from msgr2tx.errors import DecodeError

_new_object = object.__new__

# --- op codes (CEPH_OSD_OP_*): mode | type | number ------------------------------------------

_RD, _WR = 0x1000, 0x2000
_DATA, _ATTR, _EXEC, _PG = 0x0200, 0x0300, 0x0400, 0x0500

OP_READ = _RD | _DATA | 1
OP_STAT = _RD | _DATA | 2
OP_WRITE = _WR | _DATA | 1
OP_WRITEFULL = _WR | _DATA | 2
OP_TRUNCATE = _WR | _DATA | 3
OP_ZERO = _WR | _DATA | 4
OP_DELETE = _WR | _DATA | 5
OP_APPEND = _WR | _DATA | 6
OP_CREATE = _WR | _DATA | 13
OP_OMAPGETKEYS = _RD | _DATA | 17
OP_OMAPGETVALS = _RD | _DATA | 18
OP_OMAPGETHEADER = _RD | _DATA | 19
OP_OMAPGETVALSBYKEYS = _RD | _DATA | 20
OP_OMAPSETVALS = _WR | _DATA | 21
OP_OMAPSETHEADER = _WR | _DATA | 22
OP_OMAPCLEAR = _WR | _DATA | 23
OP_OMAPRMKEYS = _WR | _DATA | 24
OP_GETXATTR = _RD | _ATTR | 1
OP_GETXATTRS = _RD | _ATTR | 2
OP_SETXATTR = _WR | _ATTR | 1
OP_RMXATTR = _WR | _ATTR | 4
OP_CALL = _RD | _EXEC | 1
OP_PGNLS = _RD | _PG | 5

OP_NAMES = {
    OP_READ: "read", OP_STAT: "stat", OP_WRITE: "write", OP_WRITEFULL: "writefull",
    OP_TRUNCATE: "truncate", OP_ZERO: "zero", OP_DELETE: "delete", OP_APPEND: "append",
    OP_CREATE: "create", OP_OMAPGETKEYS: "omap-get-keys", OP_OMAPGETVALS: "omap-get-vals",
    OP_OMAPGETHEADER: "omap-get-header", OP_OMAPGETVALSBYKEYS: "omap-get-vals-by-keys",
    OP_OMAPSETVALS: "omap-set-vals", OP_OMAPSETHEADER: "omap-set-header", OP_OMAPCLEAR: "omap-clear",
    OP_OMAPRMKEYS: "omap-rm-keys", OP_GETXATTR: "getxattr", OP_GETXATTRS: "getxattrs",
    OP_SETXATTR: "setxattr", OP_RMXATTR: "rmxattr", OP_CALL: "call", OP_PGNLS: "pgnls",
}


def op_is_write(op: int) -> bool:
    """C{ceph_osd_op_mode_modify}: the op changes the object."""
    return bool(op & _WR)


def op_is_pg(op: int) -> bool:
    """C{ceph_osd_op_type_pg}: the op addresses a PG, not an object."""
    return (op & 0x0F00) == _PG


# --- message flags (CEPH_OSD_FLAG_*) and op flags (CEPH_OSD_OP_FLAG_*) ------------------------

FLAG_ACK = 0x0001
FLAG_ONDISK = 0x0004
FLAG_RETRY = 0x0008
FLAG_READ = 0x0010
FLAG_WRITE = 0x0020
FLAG_PGOP = 0x0400
FLAG_RWORDERED = 0x4000
FLAG_IGNORE_CACHE = 0x8000
FLAG_IGNORE_OVERLAY = 0x20000
FLAG_REDIRECTED = 0x200000
FLAG_KNOWN_REDIR = 0x400000
FLAG_FULL_TRY = 0x800000
FLAG_FULL_FORCE = 0x1000000
FLAG_RETURNVEC = 0x4000000
FLAG_SUPPORTSPOOLEIO = 0x8000000

OP_FLAG_EXCL = 0x1
OP_FLAG_FAILOK = 0x2

#: C{CEPH_NOSNAP}: the head object
NOSNAP = 0xFFFFFFFFFFFFFFFE
_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1

#: the union in C{ceph_osd_op} is 28 bytes; the whole struct 38
_UNION = 28
_OP_HEAD = struct.Struct("<HI")
_OP_SIZE = 2 + 4 + _UNION + 4
#: the C{extent} layout of the union: offset, length, truncate_size, truncate_seq (zero-padded)
_EXTENT = struct.Struct("<QQQI%dx" % (_UNION - 28))
#: a whole C{ceph_osd_op}: op, flags, the union, payload_len
OSD_OP_STRUCT = struct.Struct("<HI%dsI" % _UNION)


@dataclass
class OSDOp:
    """
    One op of a request (C{OSDOp}): C{op} (C{OP_*}), C{flags}
    (C{OP_FLAG_*}), C{args} (the 28 bytes of the C{ceph_osd_op} union, built
    by the constructors below), C{indata} (what it sends, in the data
    segment), and from the reply C{rval} and C{outdata}.
    """

    op: int
    flags: int = 0
    args: bytes = bytes(_UNION)
    indata: bytes = b""
    outdata: bytes = b""
    rval: int = 0
    #: the length the wire says this op's data has (in requests, of indata; in
    #: replies, of outdata); not part of equality (the data is)
    payload_len: int = field(default=0, compare=False)

    # ---- union layouts ----------------------------------------------------

    @classmethod
    def extent(cls, op: int, offset: int, length: int, indata: bytes = b"", truncate_size: int = 0,
               truncate_seq: int = 0, flags: int = 0) -> "OSDOp":
        """Read/write/writefull/truncate/zero: C{extent} (offset, length, truncate size and seq)."""
        o = _new_object(cls)
        o.__dict__ = {"op": op, "flags": flags, "args": _EXTENT.pack(offset, length, truncate_size, truncate_seq),
                      "indata": indata if indata.__class__ is bytes else bytes(indata), "outdata": b"", "rval": 0,
                      "payload_len": 0}
        return o

    @classmethod
    def xattr(cls, op: int, name: bytes, value: bytes = b"", flags: int = 0) -> "OSDOp":
        """getxattr/setxattr/rmxattr: C{xattr} lengths; indata is the name then the value."""
        return cls(op, flags, struct.pack("<IIBB", len(name), len(value), 0, 0).ljust(_UNION, b"\0"),
                   bytes(name) + bytes(value))

    @classmethod
    def pgls(cls, op: int, count: int, start_epoch: int, indata: bytes) -> "OSDOp":
        """pgls/pgnls: C{pgls} (the most entries wanted, the map epoch the listing started at)."""
        return cls(op, 0, struct.pack("<QI", count, start_epoch).ljust(_UNION, b"\0"), bytes(indata))

    @classmethod
    def plain(cls, op: int, indata: bytes = b"", flags: int = 0) -> "OSDOp":
        """An op whose union is unused (stat, delete, create, omap ops)."""
        return cls(op, flags, bytes(_UNION), bytes(indata))

    @classmethod
    def omap(cls, op: int, indata: bytes) -> "OSDOp":
        """An omap op: librados puts the indata length in C{extent.length} (offset 0)."""
        return cls.extent(op, 0, len(indata), indata)

    @property
    def extent_args(self) -> Tuple[int, int, int, int]:
        """(offset, length, truncate_size, truncate_seq) read from C{args}."""
        return struct.unpack_from("<QQQI", self.args)

    @property
    def xattr_args(self) -> Tuple[int, int, int, int]:
        """(name_len, value_len, cmp_op, cmp_mode) read from C{args}."""
        return struct.unpack_from("<IIBB", self.args)

    @property
    def pgls_args(self) -> Tuple[int, int]:
        """(count, start_epoch) read from C{args}."""
        return struct.unpack_from("<QI", self.args)

    @property
    def name(self) -> str:
        return OP_NAMES.get(self.op, "op-0x%04x" % self.op)

    # ---- ceph_osd_op ------------------------------------------------------

    def encode_op(self, enc: Encoder, payload_len: int) -> None:
        if len(self.args) != _UNION:
            raise ValueError("ceph_osd_op union is %d bytes, not %d" % (len(self.args), _UNION))
        enc.raw(OSD_OP_STRUCT.pack(self.op, self.flags, self.args, payload_len))

    @classmethod
    def decode_op(cls, dec: Decoder) -> "OSDOp":
        op, flags, args, payload_len = OSD_OP_STRUCT.unpack_from(dec.data, dec._need(_OP_SIZE, "ceph_osd_op"))
        return received_op(op, flags, args, payload_len)


def received_op(op: int, flags: int, args: bytes, payload_len: int) -> OSDOp:
    """
    An L{OSDOp} as a reply or request decodes it (no data yet, C{rval} 0):
    what C{OSDOp(op, flags, args, payload_len=payload_len)} gives, built
    without the dataclass constructor (per-op hot path).
    """
    o = _new_object(OSDOp)
    o.__dict__ = {"op": op, "flags": flags, "args": args, "indata": b"", "outdata": b"", "rval": 0,
                  "payload_len": payload_len}
    return o


def split_data(ops: List[OSDOp], data, what: str, share: bool = False) -> None:
    """
    C{OSDOp::split_osd_op_vector_*_data}: give each op its C{payload_len}
    bytes of the data segment, in op order.  C{what} is C{"indata"} or
    C{"outdata"}.  With C{share}, parts of 64 KiB or more
    (L{msgr2tx.core.messages.SHARE_SEGMENTS_FROM}) of a read-only
    memoryview segment are handed out as read-only views of it (no copy;
    the received frame stays alive while they do); everything else is
    C{bytes}.

    @raise DecodeError: the data segment is shorter than the ops say.
    """
    if len(ops) == 1 and ops[0].payload_len == len(data):
        # the whole segment is the one op's
        if type(data) is not bytes and not (share and isinstance(data, memoryview) and data.readonly
                                            and len(data) >= SHARE_SEGMENTS_FROM):
            data = bytes(data)
        setattr(ops[0], what, data)
        return
    view = memoryview(data)
    keep = share and view.readonly and type(data) is not bytes
    pos = 0
    for op in ops:
        n = op.payload_len
        if n:
            if pos + n > len(view):
                raise DecodeError("op data says %d bytes but the data segment has %d left"
                                  % (n, len(view) - pos))
            part = view[pos:pos + n]
            setattr(op, what, part if keep and n >= SHARE_SEGMENTS_FROM else bytes(part))
            pos += n


# --- small structures ---------------------------------------------------------------------------

def encode_pg_t(enc: Encoder, pool: int, seed: int) -> None:
    """C{pg_t}: version 1, pool, seed, the long unused "preferred" (-1)."""
    enc.u8(1).i64(pool).u32(seed).i32(-1)


def decode_pg_t(dec: Decoder) -> Tuple[int, int]:
    dec.u8()
    pool = dec.i64()
    seed = dec.u32()
    dec.i32()
    return pool, seed


def encode_spg_t(enc: Encoder, pool: int, seed: int, shard: int = -1) -> None:
    """C{spg_t}: a versioned C{pg_t} plus the shard (-1: none, replicated pools)."""
    pos = enc.start(1, 1)
    encode_pg_t(enc, pool, seed)
    enc.raw(struct.pack("<b", shard))
    enc.finish(pos)


def decode_spg_t(dec: Decoder) -> Tuple[int, int, int]:
    _, end = dec.start(1, "spg_t")
    pool, seed = decode_pg_t(dec)
    shard = struct.unpack("<b", dec.raw(1))[0]
    dec.finish(end)
    return pool, seed, shard


@dataclass(frozen=True)
class ObjectLocator:
    """C{object_locator_t}: pool, placement key, namespace, and a precomputed hash (-1: none)."""

    pool: int
    key: str = ""
    nspace: str = ""
    hash: int = -1

    def encode(self, enc: Encoder) -> None:
        enc.raw(self.wire())

    def wire(self) -> bytes:
        """The encoding (version 6), built once per locator (it is frozen)."""
        b = self.__dict__.get("_wire")
        if b is None:
            enc = Encoder()
            pos = enc.start(6, 6 if self.hash != -1 else 3)
            enc.i64(self.pool).i32(-1).string(self.key).string(self.nspace).i64(self.hash)
            enc.finish(pos)
            b = enc.getvalue()
            object.__setattr__(self, "_wire", b)
        return b

    @classmethod
    def decode(cls, dec: Decoder) -> "ObjectLocator":
        version, end = dec.start(6, "object_locator_t")
        if version < 2:
            raise DecodeError("object_locator_t version %d is too old" % version)
        pool = dec.i64()
        dec.i32()           # preferred
        key = dec.string()
        nspace = dec.string() if version >= 5 else ""
        hash_ = dec.i64() if version >= 6 else -1
        dec.finish(end)
        return cls(pool, key, nspace, hash_)


@dataclass(frozen=True)
class HObject:
    """
    C{hobject_t}: an object's full sort key.  C{MIN} starts a PG listing;
    a listing is done at C{max}.  C{hash} is the raw 32-bit name hash.
    """

    oid: str = ""
    key: str = ""
    snap: int = 0
    hash: int = 0
    max: bool = False
    nspace: str = ""
    pool: int = _INT64_MIN

    def encode(self, enc: Encoder) -> None:
        pos = enc.start(4, 3)
        enc.string(self.key).string(self.oid).u64(self.snap).u32(self.hash).u8(int(self.max))
        enc.string(self.nspace).i64(self.pool)
        enc.finish(pos)

    @classmethod
    def decode(cls, dec: Decoder) -> "HObject":
        version, end = dec.start(4, "hobject_t")
        key = dec.string() if version >= 1 else ""
        oid = dec.string()
        snap = dec.u64()
        hash_ = dec.u32()
        is_max = bool(dec.u8()) if version >= 2 else False
        nspace, pool = "", _INT64_MIN
        if version >= 4:
            nspace = dec.string()
            pool = dec.i64()
            if pool == -1 and snap == 0 and hash_ == 0 and not is_max and not oid:
                pool = _INT64_MIN
        dec.finish(end)
        return cls(oid, key, snap, hash_, is_max, nspace, pool)


HOBJECT_MIN = HObject()


@dataclass(frozen=True)
class ReqId:
    """C{osd_reqid_t}: who asked (entity type and number), the tid and the client incarnation."""

    name_type: int = 0
    name_num: int = 0
    tid: int = 0
    inc: int = 0

    def encode(self, enc: Encoder) -> None:
        pos = enc.start(2, 2)
        enc.u8(self.name_type).i64(self.name_num).u64(self.tid).i32(self.inc)
        enc.finish(pos)

    @classmethod
    def decode(cls, dec: Decoder) -> "ReqId":
        _, end = dec.start(2, "osd_reqid_t")
        r = cls(dec.u8(), dec.i64(), dec.u64(), dec.i32())
        dec.finish(end)
        return r


def encode_eversion(enc: Encoder, version: int = 0, epoch: int = 0) -> None:
    enc.u64(version).u32(epoch)


def decode_eversion(dec: Decoder) -> Tuple[int, int]:
    """C{eversion_t} -> (version, epoch)."""
    return dec.u64(), dec.u32()


@dataclass(frozen=True)
class Redirect:
    """C{request_redirect_t}: send the op again to this locator (and object name, if set)."""

    locator: ObjectLocator
    object: str = ""

    @classmethod
    def decode(cls, dec: Decoder) -> "Redirect":
        _, end = dec.start(1, "request_redirect_t")
        locator = ObjectLocator.decode(dec)
        obj = dec.string()
        skip = dec.u32()        # legacy osd_instructions
        dec.raw(skip)
        dec.finish(end)
        return cls(locator, obj)

    def encode(self, enc: Encoder) -> None:
        pos = enc.start(1, 1)
        self.locator.encode(enc)
        enc.string(self.object).u32(0)
        enc.finish(pos)


#: C{blkin_trace_info}: trace id, span id, parent span id (all zero: no trace)
TRACE_LEN = 24


# --- op payloads (what ObjectOperation puts in indata; what the OSD puts in outdata) ------------

def encode_str_bl_map(values: Dict[str, bytes]) -> bytes:
    """C{std::map<std::string, bufferlist>} in key byte order."""
    enc = Encoder()
    items = sorted(((k.encode("utf-8") if isinstance(k, str) else bytes(k)), bytes(v)) for k, v in values.items())
    enc.u32(len(items))
    for k, v in items:
        enc.blob(k).blob(v)
    return enc.getvalue()


def encode_str_set(keys: Iterable[str]) -> bytes:
    """C{std::set<std::string>} in byte order."""
    raw = sorted({k.encode("utf-8") if isinstance(k, str) else bytes(k) for k in keys})
    enc = Encoder().u32(len(raw))
    for k in raw:
        enc.blob(k)
    return enc.getvalue()


def decode_str_bl_map(dec: Decoder) -> Dict[str, bytes]:
    out: Dict[str, bytes] = {}
    for _ in range(dec.count(8)):
        k = dec.blob().decode("utf-8", "surrogateescape")
        out[k] = dec.blob()
    return out


def omap_get_vals_indata(start_after: str = "", max_return: int = 512, filter_prefix: str = "") -> bytes:
    """C{ObjectOperation::omap_get_vals}: start after this key, at most this many, with this prefix."""
    return Encoder().string(start_after).u64(max_return).string(filter_prefix).getvalue()


def decode_omap_vals(outdata: bytes) -> Tuple[Dict[str, bytes], bool]:
    """An omap-get-vals reply: (key -> value, more) (C{more}: the reply was cut at the maximum)."""
    dec = Decoder(outdata)
    values = decode_str_bl_map(dec)
    more = bool(dec.u8()) if dec.remaining() else False
    return values, more


def decode_stat(outdata: bytes) -> Tuple[int, utime_t]:
    """A stat reply: (size in bytes, mtime)."""
    dec = Decoder(outdata)
    return dec.u64(), utime_t.decode(dec)


@dataclass
class ListEntry:
    """One object of a PG listing (C{librados::ListObjectImpl}): namespace, name, locator key."""

    nspace: str
    oid: str
    locator: str = ""


@dataclass
class NlsResponse:
    """C{pg_nls_response_t}: where to go on (C{handle}) and the objects found."""

    handle: HObject
    entries: List[ListEntry] = field(default_factory=list)

    @classmethod
    def decode(cls, data: bytes) -> "NlsResponse":
        dec = Decoder(data)
        _, end = dec.start(1, "pg_nls_response_t")
        handle = HObject.decode(dec)
        entries = [ListEntry(dec.string(), dec.string(), dec.string()) for _ in range(dec.count(12))]
        dec.finish(end)
        return cls(handle, entries)


def pgnls_op(count: int, start_epoch: int, cursor: Optional[HObject] = None) -> OSDOp:
    """C{ObjectOperation::pg_nls}: list up to C{count} objects from C{cursor} on."""
    enc = Encoder()
    (cursor or HOBJECT_MIN).encode(enc)
    return OSDOp.pgls(OP_PGNLS, count, start_epoch, enc.getvalue())


__all__ = [name for name in dir() if name.isupper() and not name.startswith("_")] + [
    "OSDOp", "ObjectLocator", "HObject", "ReqId", "Redirect", "ListEntry", "NlsResponse", "split_data",
    "received_op",
    "encode_pg_t", "decode_pg_t", "encode_spg_t", "decode_spg_t", "encode_eversion", "decode_eversion",
    "encode_str_bl_map", "encode_str_set", "decode_str_bl_map", "omap_get_vals_indata", "decode_omap_vals",
    "decode_stat", "pgnls_op", "op_is_write", "op_is_pg",
]
