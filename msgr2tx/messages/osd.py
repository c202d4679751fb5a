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

import uuid
from typing import Dict, List

from msgr2tx.ceph.osd_types import (
    NOSNAP, TRACE_LEN, HObject, ObjectLocator, OSDOp, Redirect, ReqId, decode_eversion, decode_pg_t,
    decode_spg_t, encode_eversion, encode_pg_t, encode_spg_t, split_data,
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

    def encode_front(self, enc: Encoder, features: int) -> None:
        self.version = 8
        encode_spg_t(enc, self.pool, self.seed, self.shard)
        enc.u32(self.hash).u32(self.osdmap_epoch).u32(self.osd_flags)
        self.reqid.encode(enc)
        enc.raw(bytes(TRACE_LEN))
        enc.u32(self.client_inc)
        self.mtime.encode(enc)
        self.locator.encode(enc)
        enc.string(self.oid)
        enc.u16(len(self.ops))
        for op in self.ops:
            op.encode_op(enc, len(op.indata))
        enc.u64(self.snapid).u64(self.snap_seq)
        enc.u32(len(self.snaps))
        for snap in self.snaps:
            enc.u64(snap)
        enc.i32(self.retry_attempt).u64(self.features)

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
    An OSD's answer to an L{MOSDOp}, matched by the header tid.

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
        if self.version >= 4:
            split_data(self.ops, data, "outdata")

    @classmethod
    def decode(cls, front, middle, data, version: int, features: int = CEPH_FEATURES_ALL) -> "MOSDOpReply":
        """
        As L{Message.decode}, but the data segment is split into the ops'
        C{outdata} straight from the received buffer (one copy of a read's
        data, not two).
        """
        msg = cls(version=version)
        try:
            msg.decode_front(Decoder(front), features)
        except (ValueError, UnicodeDecodeError) as e:
            raise DecodeError("malformed %s: %s" % (cls.NAME, e)) from None
        msg.set_data_segment(data)
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
