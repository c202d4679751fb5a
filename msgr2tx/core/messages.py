"""
The message layer the wire core needs: the L{Message} base class, the type
registry (L{register}, L{MESSAGE_TYPES}, L{decode_message}),
L{GenericMessage} for types nobody registered, L{PaxosServiceMessage} (the
header many monitor-bound messages share), Ceph's message type numbers and
priorities, and small encoding helpers the message modules share.

A message has three segments after its header: C{front} (the payload proper),
C{middle} (rarely used) and C{data} (bulk bytes, such as a command's input
or output).  L{Message.encode} returns all three; L{Message.decode} and
L{decode_message} read them back.  The header fields (C{seq}, C{tid},
C{priority}, C{version}, C{compat_version}, ...) live on the message object;
the frame layer copies them to and from the msgr2 message header.
C{version} is the header's encoding version, which several messages consult
while decoding their front.

The Ceph message types themselves live in L{msgr2tx.messages} (by
subsystem: mon, auth, mgr, osd); importing that package registers them.
Types not registered decode to L{GenericMessage}, which keeps the raw
segments and re-encodes them unchanged.

No I/O and no Twisted here.
"""

import uuid
from typing import Mapping, TypeVar, Callable, Dict, List, Optional, Tuple, Type

from msgr2tx.core.encoding import (
    Decoder, Encoder, entity_name_t,
)
from msgr2tx.core.features import CEPH_FEATURES_ALL
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

_V = TypeVar("_V")


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


def short_repr(value) -> str:
    """repr() of a value, cut short so that logs never carry whole payloads."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "<%d bytes>" % len(value)
    text = repr(value)
    if len(text) > _REPR_LIMIT:
        text = text[:_REPR_LIMIT - 3] + "..."
    return text


def encode_sorted_str_map(enc: Encoder, mapping: Mapping[str, _V],
                          value: Callable[[Encoder, _V], object]) -> None:
    """A std::map<std::string, T>: Ceph writes it in byte order of the keys."""
    items = sorted(mapping.items(), key=lambda kv: kv[0].encode("utf-8"))
    enc.u32(len(items))
    for k, v in items:
        enc.string(k)
        value(enc, v)


def encode_string_set(enc: Encoder, values) -> None:
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
                out.append("%s=%s" % (name, short_repr(value)))
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


def keep_segment(segment):
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
        self.front = front if front.__class__ is bytes else keep_segment(front)
        self.middle = middle if middle.__class__ is bytes else keep_segment(middle)
        self.data = data if data.__class__ is bytes else keep_segment(data)

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
                    "front": front if type(front) is bytes else keep_segment(front),
                    "middle": middle if type(middle) is bytes else keep_segment(middle),
                    "data": data if type(data) is bytes else keep_segment(data)}
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


__all__ = [
    "Message", "GenericMessage", "PaxosServiceMessage", "MESSAGE_TYPES", "MESSAGE_TYPE_NAMES",
    "register", "decode_message", "fsid_bytes", "fsid_uuid", "short_repr", "keep_segment",
    "encode_sorted_str_map", "encode_string_set", "SHARE_SEGMENTS_FROM",
] + [name for name in list(globals()) if name.startswith(
    ("CEPH_MSG_", "MSG_", "CEPH_SUBSCRIBE_", "CEPH_AUTH_"))]
