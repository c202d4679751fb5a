"""
What a client and a monitor say to each other: commands and their acks,
version queries, subscriptions, the monmap and central config, encoded as
Ceph 16.2-20.2 encode them (src/messages/MMonCommand.h, MMonCommandAck.h,
MMonGetVersion*.h, MMonSubscribe*.h, MMonMap.h, MConfig.h).

No I/O and no Twisted here.
"""

import struct
import uuid
from typing import Dict, List, NamedTuple, Optional, Sequence

from msgr2tx.core.encoding import (
    Decoder, Encoder,
)
from msgr2tx.core.features import CEPH_FEATURE_SUBSCRIBE2, CEPH_FEATURES_ALL
from msgr2tx.core.messages import (
    CEPH_MSG_MON_GET_VERSION, CEPH_MSG_MON_GET_VERSION_REPLY, CEPH_MSG_MON_MAP, CEPH_MSG_MON_SUBSCRIBE,
    CEPH_MSG_MON_SUBSCRIBE_ACK, CEPH_SUBSCRIBE_ONETIME, MSG_CONFIG, MSG_MON_COMMAND, MSG_MON_COMMAND_ACK,
    Message, PaxosServiceMessage, encode_sorted_str_map, fsid_bytes, fsid_uuid, register,
)
from msgr2tx.ceph.monmap import MonMap

_new_object = object.__new__
_U32 = struct.Struct("<I")
#: PaxosServiceMessage's prefix: paxos_version u64, session_mon s16, session_mon_tid u64
_PAXOS = struct.Struct("<QhQ")
#: MMonCommandAck's front up to its status text: the paxos prefix, r (s32), len(rs) (u32)
_ACK_HEAD = struct.Struct("<QhQiI")


class _CommandBody:
    """
    What MMonCommand and MMgrCommand share: the cluster fsid (16 bytes),
    the command as a list of strings, and C{inbl} in the data segment.
    """

    fsid: bytes
    cmd: List[str]
    inbl: bytes

    def _set_command(self, fsid, cmd: Sequence[str], inbl) -> None:
        self.fsid = fsid_bytes(fsid)
        self.cmd = list(cmd)
        self.inbl = bytes(inbl)

    @property
    def fsid_uuid(self) -> uuid.UUID:
        return fsid_uuid(self.fsid)

    def _encode_command(self, enc: Encoder) -> None:
        enc.raw(self.fsid).string_list(self.cmd)

    def _decode_command(self, dec: Decoder) -> None:
        self.fsid = dec.raw(16)
        self.cmd = dec.string_list()

    def data_segment(self) -> bytes:
        return self.inbl

    def set_data_segment(self, data: bytes) -> None:
        self.inbl = data


@register
class MMonCommand(_CommandBody, PaxosServiceMessage):
    """
    A command for the monitors: C{cmd} is a list of strings, normally one
    JSON object such as C{'{"prefix": "status"}'}; C{inbl} is the command's
    input, carried in the data segment.

    C{fsid} must be the cluster's fsid: a monitor answers a command whose
    fsid differs from its own with r=-EPERM (-1) and "wrong fsid".  A client learns the fsid from the monmap
    (L{MMonMap}, then L{MonMap.fsid}), so it cannot send commands before the
    first monmap has arrived.  The reply (L{MMonCommandAck}) carries the
    same C{tid}, which is how a client matches the two.
    """

    TYPE = MSG_MON_COMMAND
    NAME = "mon_command"
    FIELDS = ("fsid", "cmd", "inbl")

    def __init__(self, fsid=bytes(16), cmd: Sequence[str] = (), inbl=b"", **header) -> None:
        super().__init__(**header)
        self._set_command(fsid, cmd, inbl)

    @classmethod
    def build(cls, fsid: bytes, cmd: str, inbl: bytes, tid: int) -> "MMonCommand":
        """
        C{MMonCommand(fsid, [cmd], inbl, tid=tid)} for a client's command
        loop, without the keyword-argument calls: C{fsid} as L{MonMap.fsid}
        holds it (16 bytes, or anything L{fsid_bytes} takes), C{cmd} one
        JSON text, C{inbl} bytes.
        """
        if type(fsid) is not bytes or len(fsid) != 16:
            fsid = fsid_bytes(fsid)
        msg = _new_object(cls)
        msg.__dict__ = {
            "seq": 0, "tid": tid, "priority": cls.PRIORITY, "version": cls.HEAD_VERSION,
            "compat_version": cls.COMPAT_VERSION, "flags": 0, "data_off": 0, "ack_seq": 0, "src": None,
            "paxos_version": 0, "session_mon": -1, "session_mon_tid": 0,
            "fsid": fsid, "cmd": [cmd], "inbl": inbl,
        }
        return msg

    def encode(self, features: int = CEPH_FEATURES_ALL):
        # the same bytes as encode_front through an Encoder, in one join
        parts = [_PAXOS.pack(self.paxos_version, self.session_mon, self.session_mon_tid), self.fsid,
                 _U32.pack(len(self.cmd))]
        for c in self.cmd:
            b = c.encode("utf-8") if isinstance(c, str) else bytes(c)
            parts.append(_U32.pack(len(b)))
            parts.append(b)
        return b"".join(parts), b"", bytes(self.inbl)

    def encode_front(self, enc: Encoder, features: int) -> None:
        self.paxos_encode(enc)
        self._encode_command(enc)

    def decode_front(self, dec: Decoder, features: int) -> None:
        self.paxos_decode(dec)
        self._decode_command(dec)


@register
class MMonCommandAck(PaxosServiceMessage):
    """
    A monitor's answer to L{MMonCommand}: C{r} is 0 or a negative errno,
    C{rs} the status text, C{cmd} echoes the command, and C{outbl} (the
    data segment) holds the output.
    """

    TYPE = MSG_MON_COMMAND_ACK
    NAME = "mon_command_ack"
    FIELDS = ("r", "rs", "cmd", "outbl")

    def __init__(self, r: int = 0, rs: str = "", cmd: Sequence[str] = (), outbl=b"",
                 **header) -> None:
        super().__init__(**header)
        self.r = r
        self.rs = rs
        self.cmd = list(cmd)
        self.outbl = bytes(outbl)

    def encode_front(self, enc: Encoder, features: int) -> None:
        self.paxos_encode(enc)
        enc.i32(self.r).string(self.rs).string_list(self.cmd)

    def decode_front(self, dec: Decoder, features: int) -> None:
        self.paxos_decode(dec)
        self.r = dec.i32()
        self.rs = dec.string()
        self.cmd = dec.string_list()

    @classmethod
    def decode(cls, front, middle, data, version: int, features: int = CEPH_FEATURES_ALL) -> "MMonCommandAck":
        # every reply to a command comes this way: one pass of struct
        # unpacks instead of a Decoder; a front that does not parse goes
        # the general way, which raises the DecodeError naming what is wrong
        try:
            paxos_version, session_mon, session_mon_tid, r, n = _ACK_HEAD.unpack_from(front, 0)
            size = len(front)
            pos = _ACK_HEAD.size + n
            if pos > size:
                raise ValueError
            rs = bytes(front[_ACK_HEAD.size:pos]).decode("utf-8", "replace")
            (count,) = _U32.unpack_from(front, pos)
            pos += 4
            cmd = []
            for _ in range(count):
                (n,) = _U32.unpack_from(front, pos)
                pos += 4
                if pos + n > size:
                    raise ValueError
                cmd.append(bytes(front[pos:pos + n]).decode("utf-8", "replace"))
                pos += n
        except (struct.error, ValueError):
            return super().decode(front, middle, data, version, features)  # type: ignore[return-value]
        msg = _new_object(cls)
        msg.__dict__ = {
            "seq": 0, "tid": 0, "priority": cls.PRIORITY, "version": version,
            "compat_version": cls.COMPAT_VERSION, "flags": 0, "data_off": 0, "ack_seq": 0, "src": None,
            "paxos_version": paxos_version, "session_mon": session_mon, "session_mon_tid": session_mon_tid,
            "r": r, "rs": rs, "cmd": cmd, "outbl": bytes(data),
        }
        return msg

    def data_segment(self) -> bytes:
        return self.outbl

    def set_data_segment(self, data: bytes) -> None:
        self.outbl = data


@register
class MMonGetVersion(Message):
    """
    Ask for the newest version of a map (C{what}: "osdmap", "mdsmap",
    "monmap", ...).  The reply is matched by C{handle}, not by tid.
    """

    TYPE = CEPH_MSG_MON_GET_VERSION
    NAME = "mon_get_version"
    FIELDS = ("handle", "what")

    def __init__(self, handle: int = 0, what: str = "", **header) -> None:
        super().__init__(**header)
        self.handle = handle
        self.what = what

    def encode_front(self, enc: Encoder, features: int) -> None:
        enc.u64(self.handle).string(self.what)

    def decode_front(self, dec: Decoder, features: int) -> None:
        self.handle = dec.u64()
        self.what = dec.string()


@register
class MMonGetVersionReply(Message):
    """
    The answer to L{MMonGetVersion}.  Ceph calls the newest version field
    C{version}; here it is C{map_version}, since C{version} is the header's.
    C{oldest_version} is only on the wire from header version 2.
    """

    TYPE = CEPH_MSG_MON_GET_VERSION_REPLY
    HEAD_VERSION = 2
    NAME = "mon_get_version_reply"
    FIELDS = ("handle", "map_version", "oldest_version")

    def __init__(self, handle: int = 0, map_version: int = 0, oldest_version: int = 0,
                 **header) -> None:
        super().__init__(**header)
        self.handle = handle
        self.map_version = map_version
        self.oldest_version = oldest_version

    def encode_front(self, enc: Encoder, features: int) -> None:
        enc.u64(self.handle).u64(self.map_version).u64(self.oldest_version)

    def decode_front(self, dec: Decoder, features: int) -> None:
        self.handle = dec.u64()
        self.map_version = dec.u64()
        if self.version >= 2:
            self.oldest_version = dec.u64()


class SubscribeItem(NamedTuple):
    """ceph_mon_subscribe_item: first version wanted, and flags (ONETIME)."""

    start: int = 0
    flags: int = 0


@register
class MMonSubscribe(Message):
    """
    Subscribe to maps: C{what} maps a name ("monmap", "config", "osdmap",
    "mgrmap", ...) to a L{SubscribeItem}.  From header version 3 the
    client's short hostname follows; the monitor uses it for C{config}
    subscriptions (per-host config masks).

    Encoding for a peer without SUBSCRIBE2 falls back to Ceph's version 0
    layout and sets C{self.version} to 0, as Ceph does.
    """

    TYPE = CEPH_MSG_MON_SUBSCRIBE
    HEAD_VERSION = 3
    COMPAT_VERSION = 1
    NAME = "mon_subscribe"
    FIELDS = ("what", "hostname")

    def __init__(self, what: Optional[Dict[str, SubscribeItem]] = None, hostname: str = "",
                 **header) -> None:
        super().__init__(**header)
        self.what: Dict[str, SubscribeItem] = {
            k: SubscribeItem(*v) for k, v in (what or {}).items()
        }
        self.hostname = hostname

    def sub_want(self, what: str, start: int = 0, flags: int = 0) -> None:
        self.what[what] = SubscribeItem(start, flags)

    def encode_front(self, enc: Encoder, features: int) -> None:
        if not features & CEPH_FEATURE_SUBSCRIBE2:
            # ceph_mon_subscribe_item_old: unused u64, have u64, onetime u8
            self.version = 0

            def old_item(e: Encoder, item: SubscribeItem) -> None:
                e.u64(0).u64(item.start - 1 if item.start else 0)
                e.u8(1 if item.flags & CEPH_SUBSCRIBE_ONETIME else 0)

            encode_sorted_str_map(enc, self.what, old_item)
            return
        self.version = self.HEAD_VERSION
        encode_sorted_str_map(enc, self.what, lambda e, item: e.u64(item.start).u8(item.flags))
        enc.string(self.hostname)

    def decode_front(self, dec: Decoder, features: int) -> None:
        what: Dict[str, SubscribeItem] = {}
        if self.version < 2:
            for _ in range(dec.count(4 + 17)):
                name = dec.string()
                dec.u64()
                have = dec.u64()
                onetime = dec.u8()
                what[name] = SubscribeItem(have + 1 if have else 0,
                                           CEPH_SUBSCRIBE_ONETIME if onetime else 0)
            self.what = what
            return
        for _ in range(dec.count(4 + 9)):
            name = dec.string()
            what[name] = SubscribeItem(dec.u64(), dec.u8())
        self.what = what
        if self.version >= 3:
            self.hostname = dec.string()


@register
class MMonSubscribeAck(Message):
    """The monitor's ack: renew interval in seconds, and the cluster fsid."""

    TYPE = CEPH_MSG_MON_SUBSCRIBE_ACK
    NAME = "mon_subscribe_ack"
    FIELDS = ("interval", "fsid")

    def __init__(self, interval: int = 0, fsid=bytes(16), **header) -> None:
        super().__init__(**header)
        self.interval = interval
        self.fsid = fsid_bytes(fsid)

    @property
    def fsid_uuid(self) -> uuid.UUID:
        return fsid_uuid(self.fsid)

    def encode_front(self, enc: Encoder, features: int) -> None:
        enc.u32(self.interval).raw(self.fsid)

    def decode_front(self, dec: Decoder, features: int) -> None:
        self.interval = dec.u32()
        self.fsid = dec.raw(16)


@register
class MMonMap(Message):
    """
    A monmap, as an opaque blob (C{monmapbl}); L{monmap} parses it.  The
    monitor encodes it for the features of our connection.
    """

    TYPE = CEPH_MSG_MON_MAP
    NAME = "mon_map"
    FIELDS = ("monmapbl",)

    def __init__(self, monmapbl=b"", **header) -> None:
        super().__init__(**header)
        self.monmapbl = bytes(monmapbl)

    @classmethod
    def from_monmap(cls, monmap: "MonMap", **header) -> "MMonMap":
        return cls(monmap.encode(), **header)

    def monmap(self) -> "MonMap":
        """Parse C{monmapbl}; raises L{DecodeError} if it is malformed."""
        return MonMap.decode(self.monmapbl)

    def encode_front(self, enc: Encoder, features: int) -> None:
        enc.blob(self.monmapbl)

    def decode_front(self, dec: Decoder, features: int) -> None:
        self.monmapbl = dec.blob()


@register
class MConfig(Message):
    """Configuration the monitor pushes to a client: name -> value."""

    TYPE = MSG_CONFIG
    HEAD_VERSION = 1
    COMPAT_VERSION = 1
    NAME = "config"
    FIELDS = ("config",)

    def __init__(self, config: Optional[Dict[str, str]] = None, **header) -> None:
        super().__init__(**header)
        self.config: Dict[str, str] = dict(config or {})

    def encode_front(self, enc: Encoder, features: int) -> None:
        encode_sorted_str_map(enc, self.config, lambda e, v: e.string(v))

    def decode_front(self, dec: Decoder, features: int) -> None:
        self.config = dec.map(Decoder.string, Decoder.string, 8)

    def _repr_fields(self) -> List[str]:
        return ["config=<%d keys>" % len(self.config)]
