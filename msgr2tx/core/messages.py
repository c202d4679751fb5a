"""
Ceph messages: the payloads a MESSAGE frame carries between a client and a
monitor, encoded the way Ceph Pacific (16.2) encodes them.

A message has three segments after its header: C{front} (the payload proper),
C{middle} (unused by the messages here) and C{data} (bulk bytes, such as a
command's input or output).  L{Message.encode} returns all three;
L{Message.decode} and L{decode_message} read them back.  The header fields
(C{seq}, C{tid}, C{priority}, C{version}, C{compat_version}, ...) live on the
message object; the frame layer copies them to and from the msgr2 message
header.  C{version} is the header's encoding version, which several messages
consult while decoding their front.

Types not registered here decode to L{GenericMessage}, which keeps the raw
segments and re-encodes them unchanged.

No I/O and no Twisted here.
"""

import uuid
from dataclasses import dataclass, field
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple, Type

from msgr2tx.core.encoding import (
    Decoder, Encoder, entity_addr_t, entity_addrvec_t, entity_name_t, utime_t,
)
from msgr2tx.core.features import CEPH_FEATURE_SUBSCRIBE2, CEPH_FEATURES_ALL
from msgr2tx.errors import DecodeError

# --- message priorities ------------------------------------------------------

CEPH_MSG_PRIO_LOW = 64
CEPH_MSG_PRIO_DEFAULT = 127
CEPH_MSG_PRIO_HIGH = 196
CEPH_MSG_PRIO_HIGHEST = 255

# --- message type numbers ----------------------------------------------------

# ceph_fs.h: client-facing types
CEPH_MSG_SHUTDOWN = 1
CEPH_MSG_PING = 2
CEPH_MSG_MON_MAP = 4
CEPH_MSG_MON_GET_MAP = 5
CEPH_MSG_MON_GET_OSDMAP = 6
CEPH_MSG_MON_METADATA = 7
CEPH_MSG_STATFS = 13
CEPH_MSG_STATFS_REPLY = 14
CEPH_MSG_MON_SUBSCRIBE = 15
CEPH_MSG_MON_SUBSCRIBE_ACK = 16
CEPH_MSG_AUTH = 17
CEPH_MSG_AUTH_REPLY = 18
CEPH_MSG_MON_GET_VERSION = 19
CEPH_MSG_MON_GET_VERSION_REPLY = 20
CEPH_MSG_MDS_MAP = 21
CEPH_MSG_OSD_MAP = 41
CEPH_MSG_OSD_OP = 42
CEPH_MSG_OSD_OPREPLY = 43
CEPH_MSG_FS_MAP = 45
CEPH_MSG_POOLOP_REPLY = 48
CEPH_MSG_POOLOP = 49
CEPH_MSG_FS_MAP_USER = 103

# msg/Message.h: daemon-side types a client may still see
MSG_MON_COMMAND = 50
MSG_MON_COMMAND_ACK = 51
MSG_LOG = 52
MSG_LOGACK = 53
MSG_CONFIG = 62
MSG_GET_CONFIG = 63
MSG_COMMAND = 97
MSG_COMMAND_REPLY = 98
MSG_MGR_OPEN = 0x700
MSG_MGR_CONFIGURE = 0x701
MSG_MGR_REPORT = 0x702
MSG_MGR_BEACON = 0x703
MSG_MGR_MAP = 0x704
MSG_SERVICE_MAP = 0x707
MSG_MGR_COMMAND = 0x709
MSG_MGR_COMMAND_REPLY = 0x70A
MSG_MGR_CLOSE = 0x708

#: type number -> Ceph's short name, for logs
MESSAGE_TYPE_NAMES: Dict[int, str] = {
    CEPH_MSG_SHUTDOWN: "shutdown",
    CEPH_MSG_PING: "ping",
    CEPH_MSG_MON_MAP: "mon_map",
    CEPH_MSG_MON_GET_MAP: "mon_get_map",
    CEPH_MSG_MON_GET_OSDMAP: "mon_get_osdmap",
    CEPH_MSG_MON_METADATA: "mon_metadata",
    CEPH_MSG_STATFS: "statfs",
    CEPH_MSG_STATFS_REPLY: "statfs_reply",
    CEPH_MSG_MON_SUBSCRIBE: "mon_subscribe",
    CEPH_MSG_MON_SUBSCRIBE_ACK: "mon_subscribe_ack",
    CEPH_MSG_AUTH: "auth",
    CEPH_MSG_AUTH_REPLY: "auth_reply",
    CEPH_MSG_MON_GET_VERSION: "mon_get_version",
    CEPH_MSG_MON_GET_VERSION_REPLY: "mon_get_version_reply",
    CEPH_MSG_MDS_MAP: "mds_map",
    CEPH_MSG_OSD_MAP: "osd_map",
    CEPH_MSG_OSD_OP: "osd_op",
    CEPH_MSG_OSD_OPREPLY: "osd_op_reply",
    CEPH_MSG_FS_MAP: "fs_map",
    CEPH_MSG_POOLOP_REPLY: "poolop_reply",
    CEPH_MSG_POOLOP: "poolop",
    CEPH_MSG_FS_MAP_USER: "fs_map_user",
    MSG_MON_COMMAND: "mon_command",
    MSG_MON_COMMAND_ACK: "mon_command_ack",
    MSG_LOG: "log",
    MSG_LOGACK: "log_ack",
    MSG_CONFIG: "config",
    MSG_GET_CONFIG: "get_config",
    MSG_COMMAND: "command",
    MSG_COMMAND_REPLY: "command_reply",
    MSG_MGR_OPEN: "mgropen",
    MSG_MGR_CONFIGURE: "mgrconfigure",
    MSG_MGR_REPORT: "mgrreport",
    MSG_MGR_CLOSE: "mgrclose",
    MSG_MGR_BEACON: "mgrbeacon",
    MSG_MGR_MAP: "mgrmap",
    MSG_SERVICE_MAP: "service_map",
    MSG_MGR_COMMAND: "mgr_command",
    MSG_MGR_COMMAND_REPLY: "mgr_command_reply",
}

# ceph_mon_subscribe_item flags
CEPH_SUBSCRIBE_ONETIME = 1

# auth protocols (ceph_fs.h)
CEPH_AUTH_UNKNOWN = 0
CEPH_AUTH_NONE = 1
CEPH_AUTH_CEPHX = 2

_REPR_LIMIT = 120


# --- small helpers -----------------------------------------------------------

def fsid_bytes(value) -> bytes:
    """
    Normalise an fsid given as 16 bytes, a L{uuid.UUID} or its text form to
    the 16 bytes Ceph puts on the wire (the UUID's bytes in text order).
    """
    if isinstance(value, uuid.UUID):
        return value.bytes
    if isinstance(value, str):
        return uuid.UUID(value).bytes
    value = bytes(value)
    if len(value) != 16:
        raise ValueError("an fsid is 16 bytes, not %d" % len(value))
    return value


def fsid_uuid(value: bytes) -> uuid.UUID:
    return uuid.UUID(bytes=bytes(value))


def _short(value) -> str:
    """repr() of a value, cut short so that logs never carry whole payloads."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "<%d bytes>" % len(value)
    text = repr(value)
    if len(text) > _REPR_LIMIT:
        text = text[:_REPR_LIMIT - 3] + "..."
    return text


def _encode_sorted_str_map(enc: Encoder, mapping: Dict[str, object],
                           value: Callable[[Encoder, object], object]) -> None:
    """A std::map<std::string, T>: Ceph writes it in byte order of the keys."""
    items = sorted(mapping.items(), key=lambda kv: kv[0].encode("utf-8"))
    enc.u32(len(items))
    for k, v in items:
        enc.string(k)
        value(enc, v)


def _string_set(enc: Encoder, values) -> None:
    enc.string_list(sorted(values, key=lambda s: s.encode("utf-8")))


# --- the base class and the registry ----------------------------------------

class Message:
    """
    One Ceph message.

    Class attributes: C{TYPE} (the wire type number), C{HEAD_VERSION} and
    C{COMPAT_VERSION} (what Pacific puts in the header), C{PRIORITY} and
    C{NAME} (Ceph's short type name).  C{FIELDS} lists the payload attributes
    that equality and repr look at.

    Header fields are plain attributes: C{seq}, C{tid}, C{priority},
    C{version}, C{compat_version}, C{flags}, C{data_off}, C{ack_seq}, and
    C{src} (the sender's L{entity_name_t}, filled in by the receiver).
    """

    TYPE = 0
    HEAD_VERSION = 1
    COMPAT_VERSION = 0
    PRIORITY = CEPH_MSG_PRIO_DEFAULT
    NAME = "message"
    FIELDS: Tuple[str, ...] = ()

    def __init__(self, *, seq: int = 0, tid: int = 0, priority: Optional[int] = None,
                 version: Optional[int] = None, compat_version: Optional[int] = None,
                 flags: int = 0, data_off: int = 0, ack_seq: int = 0,
                 src: Optional[entity_name_t] = None) -> None:
        self.seq = seq
        self.tid = tid
        self.priority = self.PRIORITY if priority is None else priority
        self.version = self.HEAD_VERSION if version is None else version
        self.compat_version = self.COMPAT_VERSION if compat_version is None else compat_version
        self.flags = flags
        self.data_off = data_off
        self.ack_seq = ack_seq
        self.src = src

    # subclasses override these three
    def encode_front(self, enc: Encoder, features: int) -> None:
        """Write the front segment.  May adjust C{self.version}."""

    def decode_front(self, dec: Decoder, features: int) -> None:
        """Read the front segment; C{self.version} is the header version."""

    def data_segment(self) -> bytes:
        return b""

    def set_data_segment(self, data: bytes) -> None:
        """Take the data segment; most messages have none and ignore it."""

    def encode(self, features: int = CEPH_FEATURES_ALL) -> Tuple[bytes, bytes, bytes]:
        """Return (front, middle, data) as Ceph encodes them for C{features}."""
        enc = Encoder()
        self.encode_front(enc, features)
        return enc.getvalue(), b"", bytes(self.data_segment())

    @classmethod
    def decode(cls, front, middle, data, version: int, features: int = CEPH_FEATURES_ALL) -> "Message":
        """
        Build a message from its segments.  C{version} is the header's
        version.  Raises L{DecodeError} for truncated or malformed input.
        Bytes after the fields we know are ignored, as Ceph ignores them.
        """
        msg = cls(version=version)
        try:
            msg.decode_front(Decoder(front), features)
        except DecodeError:
            raise
        except (ValueError, UnicodeDecodeError) as e:
            raise DecodeError("malformed %s: %s" % (cls.NAME, e)) from None
        msg.set_data_segment(bytes(data))
        return msg

    def _payload(self) -> tuple:
        return tuple(getattr(self, name) for name in self.FIELDS)

    def __eq__(self, other) -> bool:
        if not isinstance(other, Message):
            return NotImplemented
        return (self.TYPE == other.TYPE and type(self) is type(other)
                and self._payload() == other._payload())

    def __ne__(self, other) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    __hash__ = None  # mutable

    def _repr_fields(self) -> List[str]:
        out = []
        for name in self.FIELDS:
            value = getattr(self, name)
            if name == "fsid" and len(value) == 16:
                out.append("fsid=%s" % (fsid_uuid(value),))
            else:
                out.append("%s=%s" % (name, _short(value)))
        return out

    def __repr__(self) -> str:
        parts = ["seq=%d" % self.seq, "tid=%d" % self.tid, "v=%d" % self.version]
        if self.src is not None:
            parts.append("src=%s" % (self.src,))
        parts.extend(self._repr_fields())
        return "%s(%s)" % (type(self).__name__, ", ".join(parts))


MESSAGE_TYPES: Dict[int, Type[Message]] = {}


def register(cls: Type[Message]) -> Type[Message]:
    """Class decorator: make L{decode_message} use C{cls} for C{cls.TYPE}."""
    if cls.TYPE in MESSAGE_TYPES and MESSAGE_TYPES[cls.TYPE] is not cls:
        raise ValueError("message type %d already registered to %s"
                         % (cls.TYPE, MESSAGE_TYPES[cls.TYPE].__name__))
    MESSAGE_TYPES[cls.TYPE] = cls
    return cls


#: segments at least this large are kept as the read-only views they came
#: in (no copy); smaller ones become bytes
SHARE_SEGMENTS_FROM = 64 << 10


def _keep(segment):
    if type(segment) is bytes:
        return segment
    if isinstance(segment, memoryview) and segment.readonly and len(segment) >= SHARE_SEGMENTS_FROM:
        return segment
    return bytes(segment)


class GenericMessage(Message):
    """
    A message of a type we do not decode: its segments are kept as they came
    and written back unchanged.  Large segments (64 KiB and more) that
    arrived as read-only memoryviews stay views of the received frame, so a
    4 MiB data segment is not copied again; all segments are bytes-like.
    """

    NAME = "generic"
    FIELDS = ("front", "middle", "data")

    def __init__(self, type: int = 0, front=b"", middle=b"", data=b"", **header) -> None:
        if header:
            super().__init__(**header)
        else:
            # the common case (an application sending a payload), without
            # the keyword-argument call of Message.__init__: same attributes
            self.seq = self.tid = self.flags = self.data_off = self.ack_seq = 0
            self.priority = self.PRIORITY
            self.version = self.HEAD_VERSION
            self.compat_version = self.COMPAT_VERSION
            self.src = None
        self.TYPE = type  # (the argument; the builtin is shadowed here)
        self.front = front if front.__class__ is bytes else _keep(front)
        self.middle = middle if middle.__class__ is bytes else _keep(middle)
        self.data = data if data.__class__ is bytes else _keep(data)

    def encode(self, features: int = CEPH_FEATURES_ALL) -> Tuple[bytes, bytes, bytes]:
        return self.front, self.middle, self.data

    @classmethod
    def decode(cls, front, middle, data, version: int, features: int = CEPH_FEATURES_ALL,
               msg_type: int = 0) -> "GenericMessage":
        return cls(msg_type, front, middle, data, version=version)

    def __repr__(self) -> str:
        name = MESSAGE_TYPE_NAMES.get(self.TYPE, "type%d" % self.TYPE)
        return "GenericMessage(%s, seq=%d, tid=%d, v=%d, front=<%d bytes>, middle=<%d bytes>, data=<%d bytes>)" % (
            name, self.seq, self.tid, self.version, len(self.front), len(self.middle), len(self.data))


def received_generic(msg_type: int, front, middle, data, seq: int, tid: int, priority: int, version: int,
                     compat_version: int, flags: int, data_off: int, ack_seq: int, src) -> GenericMessage:
    """
    The L{GenericMessage} of a received message of an unregistered type,
    with every header field set: what L{decode_message} and setting the
    header attributes one by one give, built in one step (the READY fast
    path, L{msgr2tx.core.connection.Msgr2Connection}).  Segments are kept
    as L{GenericMessage} keeps them.
    """
    msg = _new_object(GenericMessage)
    msg.__dict__ = {"seq": seq, "tid": tid, "priority": priority, "version": version,
                    "compat_version": compat_version, "flags": flags, "data_off": data_off,
                    "ack_seq": ack_seq, "src": src, "TYPE": msg_type,
                    "front": front if type(front) is bytes else _keep(front),
                    "middle": middle if type(middle) is bytes else _keep(middle),
                    "data": data if type(data) is bytes else _keep(data)}
    return msg


_new_object = object.__new__


def decode_message(msg_type: int, front, middle, data, version: int,
                   features: int = CEPH_FEATURES_ALL,
                   compat_version: Optional[int] = None) -> Message:
    """
    Decode the segments of a message of type C{msg_type}.  Unknown types come
    back as a L{GenericMessage}.

    When C{compat_version} (from the header) is given and is newer than the
    encoding we implement, this raises L{DecodeError}, as Ceph refuses such a
    message rather than misread it.
    """
    cls = MESSAGE_TYPES.get(msg_type)
    if cls is None:
        msg = GenericMessage.decode(front, middle, data, version, features, msg_type=msg_type)
    else:
        if compat_version is not None and cls.HEAD_VERSION and cls.HEAD_VERSION < compat_version:
            raise DecodeError("%s: compat_version %d is newer than our version %d"
                              % (cls.NAME, compat_version, cls.HEAD_VERSION))
        msg = cls.decode(front, middle, data, version, features)
    if compat_version is not None:
        msg.compat_version = compat_version
    return msg


# --- PaxosServiceMessage -----------------------------------------------------

class PaxosServiceMessage(Message):
    """
    Messages routed to a monitor's paxos services start with a common
    prefix: the sender's known version of the service's map (u64), then two
    deprecated fields Ceph still writes: session_mon (s16, always -1) and
    session_mon_tid (u64, always 0).
    """

    def __init__(self, *, paxos_version: int = 0, session_mon: int = -1,
                 session_mon_tid: int = 0, **header) -> None:
        super().__init__(**header)
        self.paxos_version = paxos_version
        self.session_mon = session_mon
        self.session_mon_tid = session_mon_tid

    def paxos_encode(self, enc: Encoder) -> None:
        enc.u64(self.paxos_version).i16(self.session_mon).u64(self.session_mon_tid)

    def paxos_decode(self, dec: Decoder) -> None:
        self.paxos_version = dec.u64()
        self.session_mon = dec.i16()
        self.session_mon_tid = dec.u64()


# --- the messages --------------------------------------------------------------

@register
class MPing(Message):
    """A ping; its front is empty."""

    TYPE = CEPH_MSG_PING
    NAME = "ping"


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

            _encode_sorted_str_map(enc, self.what, old_item)
            return
        self.version = self.HEAD_VERSION
        _encode_sorted_str_map(enc, self.what, lambda e, item: e.u64(item.start).u8(item.flags))
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
        _encode_sorted_str_map(enc, self.config, lambda e, v: e.string(v))

    def decode_front(self, dec: Decoder, features: int) -> None:
        self.config = dec.map(Decoder.string, Decoder.string, 8)

    def _repr_fields(self) -> List[str]:
        return ["config=<%d keys>" % len(self.config)]


@register
class MAuth(PaxosServiceMessage):
    """
    An authentication request (the msgr1-era path; msgr2 authenticates in
    AUTH frames, but the monitor still accepts MAuth for ticket renewal).
    C{auth_payload} is protocol-specific; with C{protocol} 0 it lists the
    protocols the client supports.  C{monmap_epoch} may be absent on the
    wire, which reads as 0.
    """

    TYPE = CEPH_MSG_AUTH
    NAME = "auth"
    FIELDS = ("protocol", "auth_payload", "monmap_epoch")

    def __init__(self, protocol: int = 0, auth_payload=b"", monmap_epoch: int = 0,
                 **header) -> None:
        super().__init__(**header)
        self.protocol = protocol
        self.auth_payload = bytes(auth_payload)
        self.monmap_epoch = monmap_epoch

    def encode_front(self, enc: Encoder, features: int) -> None:
        self.paxos_encode(enc)
        enc.u32(self.protocol).blob(self.auth_payload).u32(self.monmap_epoch)

    def decode_front(self, dec: Decoder, features: int) -> None:
        self.paxos_decode(dec)
        self.protocol = dec.u32()
        self.auth_payload = dec.blob()
        self.monmap_epoch = dec.u32() if dec.remaining() else 0


@register
class MAuthReply(Message):
    """
    The monitor's answer to L{MAuth}: protocol, result (0 or -errno), the
    global id assigned to the client, a protocol-specific blob and a
    message.  Note the wire order: C{result_bl} comes before C{result_msg}.
    Not a PaxosServiceMessage.
    """

    TYPE = CEPH_MSG_AUTH_REPLY
    NAME = "auth_reply"
    FIELDS = ("protocol", "result", "global_id", "result_bl", "result_msg")

    def __init__(self, protocol: int = 0, result: int = 0, global_id: int = 0,
                 result_bl=b"", result_msg: str = "", **header) -> None:
        super().__init__(**header)
        self.protocol = protocol
        self.result = result
        self.global_id = global_id
        self.result_bl = bytes(result_bl)
        self.result_msg = result_msg

    def encode_front(self, enc: Encoder, features: int) -> None:
        enc.u32(self.protocol).i32(self.result).u64(self.global_id)
        enc.blob(self.result_bl).string(self.result_msg)

    def decode_front(self, dec: Decoder, features: int) -> None:
        self.protocol = dec.u32()
        self.result = dec.i32()
        self.global_id = dec.u64()
        self.result_bl = dec.blob()
        self.result_msg = dec.string()


# --- the manager's messages -------------------------------------------------------

@register
class MMgrBeacon(PaxosServiceMessage):
    """
    What a manager daemon tells the monitors every couple of seconds: its
    C{gid} (the global_id its monitor session got), the addresses it serves
    on, whether it is C{available} (only once the mgrmap names it active),
    its name and the cluster fsid.  The first beacon of a new manager makes
    it the active one when there is none; a monitor drops beacons from
    entities without C{mon 'allow profile mgr'}.

    We write version 9 (compat 8): no list of the manager's own RADOS
    clients, which Pacific and Reef both accept.  Module lists, command
    descriptions and services are written empty.
    """

    TYPE = MSG_MGR_BEACON
    HEAD_VERSION = 9
    COMPAT_VERSION = 8
    PRIORITY = CEPH_MSG_PRIO_HIGH
    NAME = "mgrbeacon"
    FIELDS = ("gid", "server_addrs", "available", "name", "fsid", "metadata", "services", "mgr_features")

    def __init__(self, gid: int = 0, server_addrs: Optional[entity_addrvec_t] = None, available: bool = False,
                 name: str = "", fsid=bytes(16), metadata: Optional[Dict[str, str]] = None,
                 services: Optional[Dict[str, str]] = None, mgr_features: int = 0, **header) -> None:
        super().__init__(**header)
        self.gid = gid
        self.server_addrs = server_addrs if server_addrs is not None else entity_addrvec_t()
        self.available = bool(available)
        self.name = name
        self.fsid = fsid_bytes(fsid)
        self.metadata: Dict[str, str] = dict(metadata or {})
        self.services: Dict[str, str] = dict(services or {})
        self.mgr_features = mgr_features

    def encode_front(self, enc: Encoder, features: int) -> None:
        self.version = self.HEAD_VERSION
        self.paxos_encode(enc)
        self.server_addrs.encode(enc)
        enc.u64(self.gid).bool(self.available).string(self.name).raw(self.fsid)
        enc.u32(0)  # module names (the old list)
        enc.u32(0)  # command descriptions
        _encode_sorted_str_map(enc, self.metadata, lambda e, v: e.string(v))
        _encode_sorted_str_map(enc, self.services, lambda e, v: e.string(v))
        enc.u32(0)  # ModuleInfo list
        enc.u64(self.mgr_features)

    def decode_front(self, dec: Decoder, features: int) -> None:
        if self.version < 8:
            raise DecodeError("mgrbeacon version %d is older than 8" % self.version)
        self.paxos_decode(dec)
        self.server_addrs = entity_addrvec_t.decode(dec)
        self.gid = dec.u64()
        self.available = dec.bool()
        self.name = dec.string()
        self.fsid = dec.raw(16)
        dec.string_list()  # module names
        self._skip_command_descs(dec)
        self.metadata = dec.map(Decoder.string, Decoder.string, 8)
        self.services = dec.map(Decoder.string, Decoder.string, 8)
        self._skip_versioned_list(dec)  # ModuleInfo
        self.mgr_features = dec.u64() if self.version >= 9 else 0

    @staticmethod
    def _skip_versioned_list(dec: Decoder) -> None:
        for _ in range(dec.count(6)):
            _, end = dec.start(what="list item")
            dec.finish(end)

    _skip_command_descs = _skip_versioned_list  # MonCommand is a versioned struct too

    @property
    def fsid_uuid(self) -> uuid.UUID:
        return fsid_uuid(self.fsid)

    def _repr_fields(self) -> List[str]:
        return ["gid=%d" % self.gid, "name=%r" % self.name, "addrs=%s" % (self.server_addrs,),
                "available=%s" % self.available, "fsid=%s" % (fsid_uuid(self.fsid),)]


class MgrMap:
    """
    The leading fields of a MgrMap: epoch, the active manager's addresses,
    gid, availability and name, plus the standbys' gids.  The rest (modules,
    services, ...) is skipped.
    """

    __slots__ = ("epoch", "active_addrs", "active_gid", "available", "active_name", "standby_gids")

    def __init__(self, epoch: int = 0, active_addrs: Optional[entity_addrvec_t] = None, active_gid: int = 0,
                 available: bool = False, active_name: str = "", standby_gids=()) -> None:
        self.epoch = epoch
        self.active_addrs = active_addrs if active_addrs is not None else entity_addrvec_t()
        self.active_gid = active_gid
        self.available = available
        self.active_name = active_name
        self.standby_gids = tuple(standby_gids)

    def __repr__(self) -> str:
        return "<MgrMap e%d active=%s gid=%d addrs=%s available=%s standbys=%d>" % (
            self.epoch, self.active_name or "-", self.active_gid, self.active_addrs, self.available,
            len(self.standby_gids))

    @classmethod
    def decode(cls, data) -> "MgrMap":
        dec = Decoder(data)
        version, end = dec.start(what="MgrMap")
        if version < 6:
            raise DecodeError("MgrMap version %d predates Nautilus" % version)
        epoch = dec.u32()
        addrs = entity_addrvec_t.decode(dec)
        gid = dec.u64()
        available = dec.bool()
        name = dec.string()
        standbys = list(dec.map(Decoder.u64, cls._skip_standby, 12))
        dec.finish(end)
        return cls(epoch, addrs, gid, available, name, standbys)

    @staticmethod
    def _skip_standby(dec: Decoder) -> None:
        _, end = dec.start(what="StandbyInfo")
        dec.finish(end)


@register
class MMgrMap(Message):
    """The mgrmap a monitor sends to its subscribers; L{mgrmap} parses it."""

    TYPE = MSG_MGR_MAP
    NAME = "mgrmap"
    FIELDS = ("mapbl",)

    def __init__(self, mapbl=b"", **header) -> None:
        super().__init__(**header)
        self.mapbl = bytes(mapbl)

    def mgrmap(self) -> MgrMap:
        return MgrMap.decode(self.mapbl)

    def encode_front(self, enc: Encoder, features: int) -> None:
        enc.raw(self.mapbl)

    def decode_front(self, dec: Decoder, features: int) -> None:
        self.mapbl = dec.raw(dec.remaining())

    def _repr_fields(self) -> List[str]:
        try:
            return [repr(self.mgrmap())]
        except DecodeError:
            return ["mapbl=<%d bytes>" % len(self.mapbl)]


@register
class MMgrCommand(_CommandBody, Message):
    """
    A command for the manager (Octopus and later clients send this when the
    mgrmap's active manager has the SERVER_OCTOPUS feature): the cluster
    fsid and the command, normally one JSON object; C{inbl} rides in the
    data segment.  The reply carries the same C{tid}.
    """

    TYPE = MSG_MGR_COMMAND
    NAME = "mgr_command"
    FIELDS = ("fsid", "cmd", "inbl")

    def __init__(self, fsid=bytes(16), cmd: Sequence[str] = (), inbl=b"", **header) -> None:
        super().__init__(**header)
        self._set_command(fsid, cmd, inbl)

    def encode_front(self, enc: Encoder, features: int) -> None:
        self._encode_command(enc)

    def decode_front(self, dec: Decoder, features: int) -> None:
        self._decode_command(dec)


@register
class MMgrCommandReply(Message):
    """The manager's answer: result (0 or -errno), a status string, output in the data segment."""

    TYPE = MSG_MGR_COMMAND_REPLY
    NAME = "mgr_command_reply"
    FIELDS = ("r", "rs", "outbl")

    def __init__(self, r: int = 0, rs: str = "", outbl=b"", **header) -> None:
        super().__init__(**header)
        self.r = r
        self.rs = rs
        self.outbl = bytes(outbl)

    def encode_front(self, enc: Encoder, features: int) -> None:
        enc.i32(self.r).string(self.rs)

    def decode_front(self, dec: Decoder, features: int) -> None:
        self.r = dec.i32()
        self.rs = dec.string()

    def data_segment(self) -> bytes:
        return self.outbl

    def set_data_segment(self, data: bytes) -> None:
        self.outbl = data


# --- what daemons and managers say to each other (MgrClient <-> DaemonServer) --

def _decode_config_values(data) -> Tuple[Dict[str, Dict[int, str]], Dict[str, str]]:
    dec = Decoder(data)
    values = dec.map(Decoder.string, lambda d: d.map(Decoder.i32, Decoder.string, 8), 8)
    ignored = dec.map(Decoder.string, Decoder.string, 8)
    dec.expect_end("config values")
    return values, ignored


def _decode_config_defaults(data) -> Dict[str, str]:
    dec = Decoder(data)
    values = dec.map(Decoder.string, Decoder.string, 8)
    dec.expect_end("config defaults")
    return values


@register
class MMgrOpen(Message):
    """
    The first message a daemon's MgrClient (a monitor, OSD, MDS, or a
    client registering as a service) sends to the active manager: its
    C{daemon_name} (the monitor's is its name, e.g. C{"a"}),
    C{service_name} (empty: inferred from the entity type),
    C{service_daemon} with C{daemon_metadata} and C{daemon_status} (present
    only when C{service_daemon} is true), and from version 3 two encoded
    blobs: C{config_bl}, the daemon's current configuration (see
    L{config}), and C{config_defaults_bl}, its compiled-in defaults (see
    L{config_defaults}).  A manager answers with L{MMgrConfigure}.

    Version 3, compat 1, in Pacific, Reef and Tentacle (Ceph's
    src/messages/MMgrOpen.h).  A monitor's is 75-85 KB, nearly all of it
    the two config blobs.
    """

    TYPE = MSG_MGR_OPEN
    HEAD_VERSION = 3
    COMPAT_VERSION = 1
    NAME = "mgropen"
    FIELDS = ("daemon_name", "service_name", "service_daemon", "daemon_metadata", "daemon_status",
              "config_bl", "config_defaults_bl")

    def __init__(self, daemon_name: str = "", service_name: str = "", service_daemon: bool = False,
                 daemon_metadata: Optional[Dict[str, str]] = None, daemon_status: Optional[Dict[str, str]] = None,
                 config_bl=b"", config_defaults_bl=b"", **header) -> None:
        super().__init__(**header)
        self.daemon_name = daemon_name
        self.service_name = service_name
        self.service_daemon = bool(service_daemon)
        self.daemon_metadata: Dict[str, str] = dict(daemon_metadata or {})
        self.daemon_status: Dict[str, str] = dict(daemon_status or {})
        self.config_bl = bytes(config_bl)
        self.config_defaults_bl = bytes(config_defaults_bl)

    def encode_front(self, enc: Encoder, features: int) -> None:
        self.version = self.HEAD_VERSION
        enc.string(self.daemon_name).string(self.service_name).bool(self.service_daemon)
        if self.service_daemon:
            _encode_sorted_str_map(enc, self.daemon_metadata, lambda e, v: e.string(v))
            _encode_sorted_str_map(enc, self.daemon_status, lambda e, v: e.string(v))
        enc.blob(self.config_bl).blob(self.config_defaults_bl)

    def decode_front(self, dec: Decoder, features: int) -> None:
        self.daemon_name = dec.string()
        if self.version >= 2:
            self.service_name = dec.string()
            self.service_daemon = dec.bool()
            if self.service_daemon:
                self.daemon_metadata = dec.map(Decoder.string, Decoder.string, 8)
                self.daemon_status = dec.map(Decoder.string, Decoder.string, 8)
        if self.version >= 3:
            self.config_bl = dec.blob()
            self.config_defaults_bl = dec.blob()

    def config(self) -> Dict[str, Dict[int, str]]:
        """C{config_bl}'s values: option name -> {source level: value}, the
        levels being Ceph's CONF_DEFAULT (0), CONF_MON (1), CONF_FILE (2),
        CONF_ENV (3), CONF_CMDLINE (4), CONF_OVERRIDE (5) and CONF_FINAL (6).
        Every option set anywhere but at its default is there, except
        C{fsid} and C{host}, which Ceph leaves out (md_config_t::get_config_bl
        in src/common/config.cc).  Raises L{DecodeError} if the blob is
        malformed."""
        return _decode_config_values(self.config_bl)[0]

    def ignored_mon_values(self) -> Dict[str, str]:
        """The second part of C{config_bl}: values the monitors' config
        database sets that the daemon ignores (its conf file or command
        line wins), name -> value.  Raises L{DecodeError} if malformed."""
        return _decode_config_values(self.config_bl)[1]

    def config_defaults(self) -> Dict[str, str]:
        """C{config_defaults_bl} decoded: option name -> default value.
        Raises L{DecodeError} if the blob is malformed."""
        return _decode_config_defaults(self.config_defaults_bl)

    def _repr_fields(self) -> List[str]:
        # config values may hold anything (keyring paths, even keys): sizes only
        return ["daemon_name=%r" % self.daemon_name, "service_name=%r" % self.service_name,
                "service_daemon=%s" % self.service_daemon,
                "config_bl=<%d bytes>" % len(self.config_bl),
                "config_defaults_bl=<%d bytes>" % len(self.config_defaults_bl)]


@register
class MMgrConfigure(Message):
    """
    A manager's answer to L{MMgrOpen}, and its later changes of policy:
    C{stats_period} (seconds between the daemon's MMgrReports; 0 stops
    them) and C{stats_threshold} (the lowest perf counter priority to
    report), plus OSD perf metric queries (only for OSDs) and an MDS metric
    config (only for MDSs).  We write the first two and leave the others
    empty, as a manager does for a monitor.

    Version 4, compat 1 (Ceph's src/messages/MMgrConfigure.h); from
    src/mgr/DaemonServer.cc, a manager sends its C{mgr_stats_period} (5)
    and C{mgr_stats_threshold} (5).  Decoding keeps the queries and the
    metric config as their raw bytes (C{rest}).
    """

    TYPE = MSG_MGR_CONFIGURE
    HEAD_VERSION = 4
    COMPAT_VERSION = 1
    NAME = "mgrconfigure"
    FIELDS = ("stats_period", "stats_threshold", "rest")

    def __init__(self, stats_period: int = 0, stats_threshold: int = 0, rest=b"", **header) -> None:
        super().__init__(**header)
        self.stats_period = stats_period
        self.stats_threshold = stats_threshold
        #: the encoded queries and metric config; empty means none of either
        self.rest = bytes(rest)

    def encode_front(self, enc: Encoder, features: int) -> None:
        self.version = self.HEAD_VERSION
        enc.u32(self.stats_period).u32(self.stats_threshold)
        if self.rest:
            enc.raw(self.rest)
        else:
            enc.u32(0)   # no OSD perf metric queries
            enc.u8(0)    # no MDS metric config (an empty optional)

    def decode_front(self, dec: Decoder, features: int) -> None:
        self.stats_period = dec.u32()
        self.stats_threshold = dec.u32() if self.version >= 2 else 0
        rest = dec.raw(dec.remaining())
        self.rest = b"" if rest in (b"", b"\0\0\0\0", b"\0\0\0\0\0") else rest


@register
class MMgrReport(Message):
    """
    A daemon's periodic report to the manager (perf counters, status,
    health, progress).  Only its first field, C{daemon_name}, is decoded;
    the rest stays as it came (C{rest}) and is written back unchanged.
    Ceph's src/messages/MMgrReport.h.
    """

    TYPE = MSG_MGR_REPORT
    HEAD_VERSION = 9
    COMPAT_VERSION = 1
    NAME = "mgrreport"
    FIELDS = ("daemon_name", "rest")

    def __init__(self, daemon_name: str = "", rest=b"", **header) -> None:
        super().__init__(**header)
        self.daemon_name = daemon_name
        self.rest = bytes(rest)

    def encode_front(self, enc: Encoder, features: int) -> None:
        enc.string(self.daemon_name).raw(self.rest)

    def decode_front(self, dec: Decoder, features: int) -> None:
        self.daemon_name = dec.string()
        self.rest = dec.raw(dec.remaining())

    def _repr_fields(self) -> List[str]:
        return ["daemon_name=%r" % self.daemon_name, "rest=<%d bytes>" % len(self.rest)]


@register
class MMgrClose(Message):
    """A daemon leaving its manager: C{daemon_name} and C{service_name}
    (Ceph's src/messages/MMgrClose.h)."""

    TYPE = MSG_MGR_CLOSE
    COMPAT_VERSION = 1
    NAME = "mgrclose"
    FIELDS = ("daemon_name", "service_name")

    def __init__(self, daemon_name: str = "", service_name: str = "", **header) -> None:
        super().__init__(**header)
        self.daemon_name = daemon_name
        self.service_name = service_name

    def encode_front(self, enc: Encoder, features: int) -> None:
        enc.string(self.daemon_name).string(self.service_name)

    def decode_front(self, dec: Decoder, features: int) -> None:
        self.daemon_name = dec.string()
        self.service_name = dec.string()


# --- MonMap --------------------------------------------------------------------

#: MonMap election strategies
ELECTION_CLASSIC = 1
ELECTION_DISALLOW = 2
ELECTION_CONNECTIVITY = 3

#: ceph::features::mon bits (MonMap persistent/optional features)
MON_FEATURE_KRAKEN = 1 << 0
MON_FEATURE_LUMINOUS = 1 << 1
MON_FEATURE_MIMIC = 1 << 2
MON_FEATURE_OSDMAP_PRUNE = 1 << 3
MON_FEATURE_NAUTILUS = 1 << 4
MON_FEATURE_OCTOPUS = 1 << 5
MON_FEATURE_PACIFIC = 1 << 6
MON_FEATURE_PINGING = 1 << 7

#: ceph_release_t values
CEPH_RELEASE_NAUTILUS = 14
CEPH_RELEASE_OCTOPUS = 15
CEPH_RELEASE_PACIFIC = 16

_MONMAP_MAX_VERSION = 9
_MON_INFO_MAX_VERSION = 5


@dataclass
class MonInfo:
    """One monitor in a monmap (mon_info_t)."""

    name: str
    addrs: entity_addrvec_t = field(default_factory=entity_addrvec_t)
    priority: int = 0
    weight: int = 0
    crush_loc: Dict[str, str] = field(default_factory=dict)

    def encode(self, enc: Encoder) -> None:
        pos = enc.start(5, 1)
        enc.string(self.name)
        self.addrs.encode(enc)
        enc.u16(self.priority).u16(self.weight)
        _encode_sorted_str_map(enc, self.crush_loc, lambda e, v: e.string(v))
        enc.finish(pos)

    @classmethod
    def decode(cls, dec: Decoder) -> "MonInfo":
        v, end = dec.start(_MON_INFO_MAX_VERSION, "mon_info_t")
        info = cls(dec.string(), entity_addrvec_t.decode(dec))
        if v >= 2:
            info.priority = dec.u16()
        if v >= 4:
            info.weight = dec.u16()
        if v >= 5:
            info.crush_loc = dec.map(Decoder.string, Decoder.string, 8)
        dec.finish(end)
        return info


def _mon_feature_encode(enc: Encoder, value: int) -> None:
    pos = enc.start(1, 1)
    enc.u64(value)
    enc.finish(pos)


def _mon_feature_decode(dec: Decoder) -> int:
    _, end = dec.start(1, "mon_feature_t")
    value = dec.u64()
    dec.finish(end)
    return value


@dataclass
class MonMap:
    """
    The monitor map: cluster fsid, epoch and the monitors with their
    addresses.  L{decode} reads what Pacific's MonMap::encode writes (struct
    version 9), Tentacle's cephx cipher policy (version 10: auth_epoch,
    auth_service_cipher, auth_allowed_ciphers, auth_preferred_cipher) and
    older layouts, and skips fields of newer versions using the struct
    length.  L{encode} writes the Nautilus-and-later layout
    (version 9), the one monitors send to msgr2 clients.
    """

    fsid: bytes = bytes(16)
    epoch: int = 0
    last_changed: utime_t = field(default_factory=utime_t)
    created: utime_t = field(default_factory=utime_t)
    persistent_features: int = 0
    optional_features: int = 0
    mons: Dict[str, MonInfo] = field(default_factory=dict)
    ranks: List[str] = field(default_factory=list)
    min_mon_release: int = 0
    removed_ranks: List[int] = field(default_factory=list)
    strategy: int = ELECTION_CLASSIC
    disallowed_leaders: List[str] = field(default_factory=list)
    stretch_mode_enabled: bool = False
    tiebreaker_mon: str = ""
    stretch_marked_down_mons: List[str] = field(default_factory=list)
    #: the cephx cipher policy (version 10, Tentacle 20.2.4+): key types 1 aes, 2 aes256k.
    #: An older map reads as Ceph reads it: aes service secrets and new keys, both allowed.
    auth_epoch: int = 0
    auth_service_cipher: int = 1
    auth_allowed_ciphers: List[int] = field(default_factory=lambda: [1, 2])
    auth_preferred_cipher: int = 1

    @property
    def fsid_uuid(self) -> uuid.UUID:
        return fsid_uuid(self.fsid)

    def add(self, name: str, addrs: entity_addrvec_t, priority: int = 0, weight: int = 0) -> None:
        if name in self.mons:
            raise ValueError("monitor %r already in the map" % (name,))
        self.mons[name] = MonInfo(name, addrs, priority, weight)
        self.ranks.append(name)

    def by_rank(self) -> List[MonInfo]:
        """Monitors in rank order (those missing from C{ranks} last)."""
        out = [self.mons[n] for n in self.ranks if n in self.mons]
        ranked = set(self.ranks)
        out.extend(info for name, info in sorted(self.mons.items()) if name not in ranked)
        return out

    def msgr2_addrs(self) -> List[Tuple[str, entity_addr_t]]:
        """(name, msgr2 address) for every monitor that has one, in rank order."""
        out = []
        for info in self.by_rank():
            a = info.addrs.msgr2_addr()
            if a is not None:
                out.append((info.name, a))
        return out

    def __repr__(self) -> str:
        return "MonMap(fsid=%s, epoch=%d, mons=[%s])" % (
            self.fsid_uuid, self.epoch,
            ", ".join("%s=%s" % (m.name, m.addrs) for m in self.by_rank()))

    # -- encoding --

    def encode(self) -> bytes:
        enc = Encoder()
        pos = enc.start(9, 6)
        enc.raw(fsid_bytes(self.fsid))
        enc.u32(self.epoch)
        self.last_changed.encode(enc)
        self.created.encode(enc)
        _mon_feature_encode(enc, self.persistent_features)
        _mon_feature_encode(enc, self.optional_features)
        _encode_sorted_str_map(enc, self.mons, lambda e, info: info.encode(e))
        enc.string_list(self.ranks)
        enc.u8(self.min_mon_release)
        enc.u32(len(self.removed_ranks))
        for r in sorted(self.removed_ranks):
            enc.i32(r)
        enc.u8(self.strategy)
        _string_set(enc, self.disallowed_leaders)
        enc.bool(self.stretch_mode_enabled)
        enc.string(self.tiebreaker_mon)
        _string_set(enc, self.stretch_marked_down_mons)
        enc.finish(pos)
        return enc.getvalue()

    @classmethod
    def decode(cls, data) -> "MonMap":
        """Parse an encoded monmap; raises L{DecodeError} if malformed."""
        dec = Decoder(data)
        try:
            return cls._decode(dec)
        except DecodeError:
            raise
        except (ValueError, UnicodeDecodeError) as e:
            raise DecodeError("malformed monmap: %s" % (e,)) from None

    @classmethod
    def _decode(cls, dec: Decoder) -> "MonMap":
        if dec.remaining() < 1:
            raise DecodeError("truncated monmap")
        first = dec.data[dec.offset]
        if first >= 3:
            v, end = dec.start(_MONMAP_MAX_VERSION, "monmap")
        else:
            # versions 1 and 2 started with a bare u16 version
            v = dec.u16()
            end = None
        m = cls()
        m.fsid = dec.raw(16)
        m.epoch = dec.u32()
        legacy: List[Tuple[str, entity_addr_t]] = []
        if v == 1:
            def inst(d: Decoder) -> entity_addr_t:
                entity_name_t.decode(d)
                return entity_addr_t.decode(d)
            for i, addr in enumerate(dec.list(inst, 9 + 1)):
                legacy.append((chr(ord("0") + i) if i < 10 else str(i), addr))
        elif v < 6:
            for _ in range(dec.count(4 + 1)):
                name = dec.string()
                legacy.append((name, entity_addr_t.decode(dec)))
        m.last_changed = utime_t.decode(dec)
        m.created = utime_t.decode(dec)
        if v >= 4:
            m.persistent_features = _mon_feature_decode(dec)
            m.optional_features = _mon_feature_decode(dec)
        if v < 5:
            for name, addr in legacy:
                m.mons[name] = MonInfo(name, entity_addrvec_t((addr,)))
        else:
            for _ in range(dec.count(4 + 6)):
                key = dec.string()
                m.mons[key] = MonInfo.decode(dec)
        if v < 6:
            # Ceph orders legacy ranks by address; name order is close enough
            # for choosing a monitor to talk to.
            m.ranks = sorted(m.mons)
        else:
            m.ranks = dec.string_list()
        if v >= 7:
            m.min_mon_release = dec.u8()
        if v >= 8:
            m.removed_ranks = [dec.i32() for _ in range(dec.count(4))]
            m.strategy = dec.u8()
            m.disallowed_leaders = dec.string_list()
        if v >= 9:
            m.stretch_mode_enabled = dec.bool()
            m.tiebreaker_mon = dec.string()
            m.stretch_marked_down_mons = dec.string_list()
        if v >= 10:
            m.auth_epoch = dec.u32()
            m.auth_service_cipher = dec.i32()
            m.auth_allowed_ciphers = [dec.i32() for _ in range(dec.count(4))]
            m.auth_preferred_cipher = dec.i32()
        if end is not None:
            dec.finish(end)
        return m


__all__ = [
    "Message", "GenericMessage", "PaxosServiceMessage", "MESSAGE_TYPES", "MESSAGE_TYPE_NAMES",
    "register", "decode_message", "fsid_bytes", "fsid_uuid",
    "MPing", "MMonCommand", "MMonCommandAck", "MMonGetVersion", "MMonGetVersionReply",
    "SubscribeItem", "MMonSubscribe", "MMonSubscribeAck", "MMonMap", "MConfig",
    "MMgrBeacon", "MgrMap", "MMgrMap", "MMgrCommand", "MMgrCommandReply",
    "MMgrOpen", "MMgrConfigure", "MMgrReport", "MMgrClose",
    "MAuth", "MAuthReply", "MonInfo", "MonMap",
] + [name for name in list(globals()) if name.startswith(
    ("CEPH_MSG_", "MSG_", "CEPH_SUBSCRIBE_", "CEPH_AUTH_", "ELECTION_", "MON_FEATURE_",
     "CEPH_RELEASE_"))]
