"""
OSD messages.

L{MOSDMap} (C{CEPH_MSG_OSD_MAP}, 41) as C{src/messages/MOSDMap.h} encodes
it in Ceph 16.2 to 20.2: the cluster fsid, incremental and full OSDMaps by
epoch (each an encoded blob for L{msgr2tx.ceph.osdmap}), and the sender's
oldest and newest epochs.

L{MOSDOp} (42), L{MOSDOpReply} (43) and L{MOSDBackoff} (61): object
requests, their replies and an OSD's request to hold requests for a while,
as C{src/messages/MOSDOp.h}, C{MOSDOpReply.h} and C{MOSDBackoff.h} encode
them.  A request goes out in the version 8 encoding, which OSDs from 16.2
(whose newest it is) to 20.2 (which still decodes it) accept; replies
decode in versions 2 to 8 (16.2 to 20.2 send 8).
"""

import struct
import uuid
from typing import Dict, List, Tuple

from msgr2tx.ceph.osd_types import (
    NOSNAP, OSD_OP_STRUCT, TRACE_LEN, HObject, ObjectLocator, OSDOp, Redirect, ReqId, decode_eversion,
    decode_pg_t, decode_spg_t, encode_eversion, encode_pg_t, encode_spg_t, received_op, split_data,
)
from msgr2tx.core.encoding import Decoder, Encoder, utime_t
from msgr2tx.core.features import CEPH_FEATURES_ALL
from msgr2tx.core.messages import Message, fsid_bytes, register
from msgr2tx.errors import DecodeError

CEPH_MSG_OSD_MAP = 41
CEPH_MSG_OSD_OP = 42
CEPH_MSG_OSD_OPREPLY = 43
CEPH_MSG_OSD_BACKOFF = 61

#: Ceph's C{osd_client_op_priority}: the priority librados gives requests
OSD_CLIENT_OP_PRIORITY = 63

_new_object = object.__new__
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_I32 = struct.Struct("<i")
_OP_SIZE = OSD_OP_STRUCT.size
_OSD_OP_UNION = OSD_OP_STRUCT.size - 10
#: MOSDOp v8 up to the locator: spg_t (version 1, compat 1, 18 bytes: pg_t
#: version 1, pool, seed, preferred -1; the shard), hash, osdmap_epoch,
#: flags, osd_reqid_t (version 2, compat 2, 21 bytes), the blkin trace (24
#: zero bytes), client_inc, mtime
_OSDOP_HEAD = struct.Struct("<BBIBqIibIII" "BBIBqQi" "24x" "III")
_OSDOP_SNAPC = struct.Struct("<QQI")
_OSDOP_TAIL = struct.Struct("<iQ")
#: the osd_reqid_t of a request of incarnation 0 (frozen: shared)
_REQID_0 = ReqId()
#: the op count, one ceph_osd_op, snapid, snap_seq, no snaps, retry_attempt, features
_OSDOP_ONE = struct.Struct("<H" + OSD_OP_STRUCT.format.lstrip("<") + "QQIiQ")
#: MOSDOpReply after the oid: pg_t, flags, result, bad_replay_version,
#: osdmap_epoch, the op count
_REPLY_HEAD = struct.Struct("<BqIiqiQIII")
#: a one-op MOSDOpReply's op, retry_attempt and rval
_REPLY_ONE_OP = struct.Struct("<" + OSD_OP_STRUCT.format.lstrip("<") + "ii")
#: MOSDOpReply after the ops (v7 on): retry_attempt ... then rvals, then this
_REPLY_TAIL = struct.Struct("<QIQB")


def _blob_map(dec: Decoder) -> Dict[int, bytes]:
    return {dec.u32(): dec.blob() for _ in range(dec.count(8))}


@register
class MOSDMap(Message):
    """
    OSDMaps from a monitor or an OSD.

    C{incremental_maps} and C{maps} map an epoch to its encoded
    incremental or full map (bytes); C{oldest_map} is the oldest epoch the
    sender keeps (Ceph's C{cluster_osdmap_trim_lower_bound}), C{newest_map}
    its newest.
    """

    TYPE = CEPH_MSG_OSD_MAP
    HEAD_VERSION = 4
    COMPAT_VERSION = 3
    NAME = "osd_map"
    FIELDS = ("fsid", "incremental_maps", "maps", "oldest_map", "newest_map")

    def __init__(self, fsid=bytes(16), incremental_maps=None, maps=None, oldest_map: int = 0,
                 newest_map: int = 0, **header) -> None:
        super().__init__(**header)
        #: the cluster fsid, 16 bytes (a uuid.UUID or its text is accepted)
        self.fsid = fsid_bytes(fsid)
        self.incremental_maps: Dict[int, bytes] = dict(incremental_maps or {})
        self.maps: Dict[int, bytes] = dict(maps or {})
        self.oldest_map = oldest_map
        self.newest_map = newest_map

    @property
    def fsid_uuid(self) -> uuid.UUID:
        return uuid.UUID(bytes=self.fsid)

    @property
    def first(self) -> int:
        """The lowest epoch carried (full or incremental), or 0."""
        epochs = list(self.maps) + list(self.incremental_maps)
        return min(epochs) if epochs else 0

    @property
    def last(self) -> int:
        """The highest epoch carried, or 0."""
        epochs = list(self.maps) + list(self.incremental_maps)
        return max(epochs) if epochs else 0

    def encode_front(self, enc: Encoder, features: int) -> None:
        enc.raw(self.fsid)
        for blobs in (self.incremental_maps, self.maps):
            enc.u32(len(blobs))
            for epoch in sorted(blobs):
                enc.u32(epoch).blob(blobs[epoch])
        enc.u32(self.oldest_map).u32(self.newest_map)
        enc.u32(0)      # gap_removed_snaps, empty since octopus

    def decode_front(self, dec: Decoder, features: int) -> None:
        self.fsid = dec.raw(16)
        self.incremental_maps = _blob_map(dec)
        self.maps = _blob_map(dec)
        if self.version >= 2:
            self.oldest_map = dec.u32()
            self.newest_map = dec.u32()

    def _repr_fields(self):
        return ["fsid=%s" % self.fsid_uuid, "incremental=%s" % sorted(self.incremental_maps),
                "full=%s" % sorted(self.maps), "oldest=%d" % self.oldest_map, "newest=%d" % self.newest_map]


@register
class MOSDOp(Message):
    """
    An object request (version 8 encoding).

    C{pool}, C{seed} and C{shard} name the target PG (C{spg_t}, the folded
    seed); C{hash} is the object's raw 32-bit name hash; C{osdmap_epoch} the
    sender's map; C{osd_flags} are C{FLAG_*} (Ceph's C{flags}; the name
    C{flags} is the message header's); C{reqid} a L{ReqId} (all zero but
    C{inc}: the OSD takes the sender and the header tid); C{client_inc} the
    client incarnation; C{mtime} a L{utime_t} (for writes);
    C{locator} an L{ObjectLocator}; C{oid} the object name (str); C{ops} a
    list of L{OSDOp} whose C{indata} travel, concatenated, in the data
    segment; C{snapid} (C{NOSNAP}: the head), C{snap_seq} and C{snaps} the
    snap context; C{retry_attempt} counts resends (0 first); C{features}
    the client's feature bits.  The header tid is the request's tid.
    """

    TYPE = CEPH_MSG_OSD_OP
    HEAD_VERSION = 8
    COMPAT_VERSION = 3
    PRIORITY = OSD_CLIENT_OP_PRIORITY
    NAME = "osd_op"
    FIELDS = ("pool", "seed", "shard", "hash", "osdmap_epoch", "osd_flags", "reqid", "client_inc", "mtime",
              "locator", "oid", "ops", "snapid", "snap_seq", "snaps", "retry_attempt", "features")

    def __init__(self, pool: int = 0, seed: int = 0, hash: int = 0, osdmap_epoch: int = 0, osd_flags: int = 0,
                 oid: str = "", locator=None, ops=None, reqid=None, client_inc: int = 0, mtime=None,
                 snapid: int = NOSNAP, snap_seq: int = 0, snaps=(), retry_attempt: int = 0,
                 features: int = 0, shard: int = -1, **header) -> None:
        super().__init__(**header)
        self.pool = pool
        self.seed = seed
        self.shard = shard
        self.hash = hash
        self.osdmap_epoch = osdmap_epoch
        self.osd_flags = osd_flags
        self.reqid = reqid if reqid is not None else ReqId(inc=client_inc)
        self.client_inc = client_inc
        self.mtime = mtime if mtime is not None else utime_t(0, 0)
        self.locator = locator if locator is not None else ObjectLocator(pool)
        self.oid = oid
        self.ops: List[OSDOp] = list(ops or [])
        self.snapid = snapid
        self.snap_seq = snap_seq
        self.snaps = list(snaps)
        self.retry_attempt = retry_attempt
        self.features = features

    @classmethod
    def request(cls, pool: int, seed: int, hash: int, osdmap_epoch: int, osd_flags: int, oid: str, locator,
                ops: List[OSDOp], client_inc: int, mtime, retry_attempt: int, features: int, shard: int,
                tid: int) -> "MOSDOp":
        """
        What C{MOSDOp(pool=..., ..., tid=tid)} gives with the defaults for
        the rest (head snap, empty snap context, priority 63), built without
        the keyword-argument constructors (the Objecter's per-request path).
        C{ops} is kept, not copied.
        """
        msg = _new_object(cls)
        msg.__dict__ = {
            "seq": 0, "tid": tid, "priority": OSD_CLIENT_OP_PRIORITY, "version": 8, "compat_version": 3,
            "flags": 0, "data_off": 0, "ack_seq": 0, "src": None,
            "pool": pool, "seed": seed, "shard": shard, "hash": hash, "osdmap_epoch": osdmap_epoch,
            "osd_flags": osd_flags, "reqid": _REQID_0 if client_inc == 0 else ReqId(inc=client_inc),
            "client_inc": client_inc, "mtime": mtime,
            "locator": locator, "oid": oid, "ops": ops, "snapid": NOSNAP, "snap_seq": 0, "snaps": [],
            "retry_attempt": retry_attempt, "features": features}
        return msg

    def front(self) -> bytes:
        """The front segment (version 8), packed with a few fixed structs."""
        self.version = 8
        r = self.reqid
        oid = self.oid.encode("utf-8")
        ops = self.ops
        head = _OSDOP_HEAD.pack(1, 1, 18, 1, self.pool, self.seed, -1, self.shard, self.hash, self.osdmap_epoch,
                                self.osd_flags, 2, 2, 21, r.name_type, r.name_num, r.tid, r.inc,
                                self.client_inc, self.mtime.sec, self.mtime.nsec)
        snaps = self.snaps
        if len(ops) == 1 and not snaps:
            # the usual request: one op, no snap context, in one pack after the name
            op = ops[0]
            if len(op.args) == _OSD_OP_UNION:
                return b"".join((head, self.locator.wire(), _U32.pack(len(oid)), oid, _OSDOP_ONE.pack(
                    1, op.op, op.flags, op.args, len(op.indata), self.snapid, self.snap_seq, 0,
                    self.retry_attempt, self.features)))
        parts = [head, self.locator.wire(), _U32.pack(len(oid)), oid, _U16.pack(len(ops))]
        for op in ops:
            if len(op.args) != _OSD_OP_UNION:
                raise ValueError("ceph_osd_op union is %d bytes, not %d" % (len(op.args), _OSD_OP_UNION))
            parts.append(OSD_OP_STRUCT.pack(op.op, op.flags, op.args, len(op.indata)))
        parts.append(_OSDOP_SNAPC.pack(self.snapid, self.snap_seq, len(snaps)))
        for snap in snaps:
            parts.append(_U64.pack(snap))
        parts.append(_OSDOP_TAIL.pack(self.retry_attempt, self.features))
        return b"".join(parts)

    def encode_front(self, enc: Encoder, features: int) -> None:
        enc.raw(self.front())

    def encode(self, features: int = CEPH_FEATURES_ALL) -> Tuple[bytes, bytes, bytes]:
        # (Message.encode without the Encoder round trip)
        ops = self.ops
        data = ops[0].indata if len(ops) == 1 else self.data_segment()
        return self.front(), b"", data if data.__class__ is bytes else bytes(data)

    def data_segment(self) -> bytes:
        return b"".join(op.indata for op in self.ops)

    def decode_front(self, dec: Decoder, features: int) -> None:
        if self.version not in (8, 9):
            raise DecodeError("osd_op version %d: only versions 8 and 9 are decoded" % self.version)
        self.pool, self.seed, self.shard = decode_spg_t(dec)
        self.hash = dec.u32()
        self.osdmap_epoch = dec.u32()
        self.osd_flags = dec.u32()
        self.reqid = ReqId.decode(dec)
        dec.raw(TRACE_LEN)
        if self.version >= 9:
            _, end = dec.start(255, "otel trace")     # jspan_context: skipped whole
            dec.finish(end)
        self.client_inc = dec.u32()
        self.mtime = utime_t.decode(dec)
        self.locator = ObjectLocator.decode(dec)
        self.oid = dec.string()
        self.ops = [OSDOp.decode_op(dec) for _ in range(dec.u16())]
        self.snapid = dec.u64()
        self.snap_seq = dec.u64()
        self.snaps = [dec.u64() for _ in range(dec.count(8))]
        self.retry_attempt = dec.i32()
        self.features = dec.u64()

    def set_data_segment(self, data: bytes) -> None:
        split_data(self.ops, data, "indata")

    def _repr_fields(self) -> List[str]:
        return ["%d.%x" % (self.pool, self.seed), repr(self.oid), "[%s]" % ",".join(o.name for o in self.ops),
                "e%d" % self.osdmap_epoch, "flags=0x%x" % self.osd_flags, "attempt=%d" % self.retry_attempt]


@register
class MOSDOpReply(Message):
    """
    An OSD's answer to an L{MOSDOp}, matched by the header tid.  An op's
    C{outdata} of 64 KiB or more that arrived as a read-only view of the
    received frame stays such a view (L{split_data} with C{share}); smaller
    ones are C{bytes}.

    C{oid}; C{pool} and C{seed} (the PG, C{pg_t}); C{osd_flags} (Ceph's C{flags}); C{result} (0
    or a negative errno); C{osdmap_epoch} (the OSD's map); C{ops} (the
    request's ops with C{rval} and C{outdata}); C{retry_attempt} (which
    send this answers, -1: unknown); C{replay_version} and
    C{user_version} (the object's version after the op); C{redirect} (a
    L{Redirect}, or None).
    """

    TYPE = CEPH_MSG_OSD_OPREPLY
    HEAD_VERSION = 8
    COMPAT_VERSION = 2
    NAME = "osd_op_reply"
    FIELDS = ("oid", "pool", "seed", "osd_flags", "result", "osdmap_epoch", "ops", "retry_attempt",
              "replay_version", "user_version", "redirect")

    def __init__(self, oid: str = "", pool: int = 0, seed: int = 0, osd_flags: int = 0, result: int = 0,
                 osdmap_epoch: int = 0, ops=None, retry_attempt: int = -1, replay_version=(0, 0),
                 user_version: int = 0, redirect=None, bad_replay_version=(0, 0), **header) -> None:
        super().__init__(**header)
        self.oid = oid
        self.pool = pool
        self.seed = seed
        self.osd_flags = osd_flags
        self.result = result
        self.osdmap_epoch = osdmap_epoch
        self.ops: List[OSDOp] = list(ops or [])
        self.retry_attempt = retry_attempt
        self.replay_version = tuple(replay_version)
        self.bad_replay_version = tuple(bad_replay_version)
        self.user_version = user_version
        self.redirect = redirect

    def decode_front(self, dec: Decoder, features: int) -> None:
        if self.version < 2:
            raise DecodeError("osd_op_reply version %d predates 64-bit pg ids" % self.version)
        self.oid = dec.string()
        self.pool, self.seed = decode_pg_t(dec)
        self.osd_flags = dec.i64()
        self.result = dec.i32()
        self.bad_replay_version = decode_eversion(dec)
        self.osdmap_epoch = dec.u32()
        self.ops = [OSDOp.decode_op(dec) for _ in range(dec.count(38))]
        self.retry_attempt = dec.i32() if self.version >= 3 else -1
        if self.version >= 4:
            for op in self.ops:
                op.rval = dec.i32()
        if self.version >= 5:
            self.replay_version = decode_eversion(dec)
            self.user_version = dec.u64()
        else:
            self.replay_version = self.bad_replay_version
            self.user_version = self.replay_version[0]
        self.redirect = None
        if self.version == 6:
            redirect = Redirect.decode(dec)
            if redirect.locator.pool != -1 or redirect.object or redirect.locator.key or redirect.locator.nspace:
                self.redirect = redirect
        elif self.version >= 7:
            if dec.u8():
                self.redirect = Redirect.decode(dec)
        if self.version >= 8:
            dec.raw(TRACE_LEN)

    def set_data_segment(self, data: bytes) -> None:
        # a large read's data stays a read-only view of the received frame
        # (IoCtx.read makes the bytes; IoCtx.read_view hands the view out)
        if self.version >= 4:
            split_data(self.ops, data, "outdata", share=True)

    @classmethod
    def decode(cls, front, middle, data, version: int, features: int = CEPH_FEATURES_ALL) -> "MOSDOpReply":
        """
        As L{Message.decode}, but the data segment is split into the ops'
        C{outdata} straight from the received buffer (one copy of a read's
        data, not two).
        """
        if version >= 7:
            msg = cls._decode_plain(front, version)
            if msg is not None:
                msg.set_data_segment(data)
                return msg
        msg = cls(version=version)
        try:
            msg.decode_front(Decoder(front), features)
        except (ValueError, UnicodeDecodeError) as e:
            raise DecodeError("malformed %s: %s" % (cls.NAME, e)) from None
        msg.set_data_segment(data)
        return msg

    @classmethod
    def _decode_plain(cls, front, version: int):
        """
        The common reply (version 7 or later, no redirect) in a few struct
        unpacks; None for anything else (a redirect, a front too short for
        what it says), which L{decode_front} then decodes or refuses.
        """
        size = len(front)
        if size < 4:
            return None
        (n,) = _U32.unpack_from(front, 0)
        pos = 4 + n
        if pos + _REPLY_HEAD.size > size:
            return None
        oid = str(front[4:pos], "utf-8", "replace")
        _, pool, seed, _, osd_flags, result, bad_v, bad_e, epoch, nops = _REPLY_HEAD.unpack_from(front, pos)
        pos += _REPLY_HEAD.size
        end_ops = pos + nops * _OP_SIZE
        tail = end_ops + 4 + 4 * nops
        if tail + _REPLY_TAIL.size + (TRACE_LEN if version >= 8 else 0) > size:
            return None
        if nops == 1:
            code, flags, args, payload_len, retry_attempt, rval = _REPLY_ONE_OP.unpack_from(front, pos)
            op = _new_object(OSDOp)
            op.__dict__ = {"op": code, "flags": flags, "args": args, "indata": b"", "outdata": b"", "rval": rval,
                           "payload_len": payload_len}
            ops = [op]
        else:
            unpack_op = OSD_OP_STRUCT.unpack_from
            ops = [received_op(*unpack_op(front, p)) for p in range(pos, end_ops, _OP_SIZE)]
            (retry_attempt,) = _I32.unpack_from(front, end_ops)
            if nops:
                for op, rval in zip(ops, struct.unpack_from("<%di" % nops, front, end_ops + 4)):
                    op.rval = rval
        replay_v, replay_e, user_version, redirected = _REPLY_TAIL.unpack_from(front, tail)
        if redirected:
            return None
        msg = _new_object(cls)
        msg.__dict__ = {
            "seq": 0, "tid": 0, "priority": cls.PRIORITY, "version": version, "compat_version": cls.COMPAT_VERSION,
            "flags": 0, "data_off": 0, "ack_seq": 0, "src": None,
            "oid": oid, "pool": pool, "seed": seed, "osd_flags": osd_flags, "result": result,
            "osdmap_epoch": epoch, "ops": ops, "retry_attempt": retry_attempt,
            "replay_version": (replay_v, replay_e), "bad_replay_version": (bad_v, bad_e),
            "user_version": user_version, "redirect": None}
        return msg

    def encode_front(self, enc: Encoder, features: int) -> None:
        # what an OSD sends (version 8), for tests and test servers
        self.version = 8
        enc.string(self.oid)
        encode_pg_t(enc, self.pool, self.seed)
        enc.i64(self.osd_flags).i32(self.result)
        encode_eversion(enc, *self.bad_replay_version)
        enc.u32(self.osdmap_epoch).u32(len(self.ops))
        for op in self.ops:
            op.encode_op(enc, len(op.outdata))
        enc.i32(self.retry_attempt)
        for op in self.ops:
            enc.i32(op.rval)
        encode_eversion(enc, *self.replay_version)
        enc.u64(self.user_version)
        enc.u8(1 if self.redirect is not None else 0)
        if self.redirect is not None:
            self.redirect.encode(enc)
        enc.raw(bytes(TRACE_LEN))

    def data_segment(self) -> bytes:
        return b"".join(op.outdata for op in self.ops)

    def _repr_fields(self) -> List[str]:
        return [repr(self.oid), "[%s]" % ",".join("%s=%d" % (o.name, o.rval) for o in self.ops),
                "r=%d" % self.result, "e%d" % self.osdmap_epoch, "attempt=%d" % self.retry_attempt]


#: MOSDBackoff ops (C{CEPH_OSD_BACKOFF_OP_*})
BACKOFF_BLOCK = 1
BACKOFF_ACK_BLOCK = 2
BACKOFF_UNBLOCK = 3


@register
class MOSDBackoff(Message):
    """
    An OSD asks us to hold requests for objects C{begin} to C{end} (two
    L{HObject}s) of PG C{pool}.C{seed} (C{op} BLOCK, which we answer with
    ACK_BLOCK) until it sends UNBLOCK with the same C{id}.
    """

    TYPE = CEPH_MSG_OSD_BACKOFF
    HEAD_VERSION = 1
    COMPAT_VERSION = 1
    PRIORITY = OSD_CLIENT_OP_PRIORITY
    NAME = "osd_backoff"
    FIELDS = ("pool", "seed", "shard", "map_epoch", "op", "id", "begin", "end")

    def __init__(self, pool: int = 0, seed: int = 0, shard: int = -1, map_epoch: int = 0, op: int = 0,
                 id: int = 0, begin=None, end=None, **header) -> None:
        super().__init__(**header)
        self.pool = pool
        self.seed = seed
        self.shard = shard
        self.map_epoch = map_epoch
        self.op = op
        self.id = id
        self.begin = begin if begin is not None else HObject()
        self.end = end if end is not None else HObject()

    def encode_front(self, enc: Encoder, features: int) -> None:
        encode_spg_t(enc, self.pool, self.seed, self.shard)
        enc.u32(self.map_epoch).u8(self.op).u64(self.id)
        self.begin.encode(enc)
        self.end.encode(enc)

    def decode_front(self, dec: Decoder, features: int) -> None:
        self.pool, self.seed, self.shard = decode_spg_t(dec)
        self.map_epoch = dec.u32()
        self.op = dec.u8()
        self.id = dec.u64()
        self.begin = HObject.decode(dec)
        self.end = HObject.decode(dec)


__all__ = ["MOSDMap", "MOSDOp", "MOSDOpReply", "MOSDBackoff", "CEPH_MSG_OSD_MAP", "CEPH_MSG_OSD_OP",
           "CEPH_MSG_OSD_OPREPLY", "CEPH_MSG_OSD_BACKOFF", "OSD_CLIENT_OP_PRIORITY", "BACKOFF_BLOCK",
           "BACKOFF_ACK_BLOCK", "BACKOFF_UNBLOCK"]
