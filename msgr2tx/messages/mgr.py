"""
The manager's messages: beacons and maps between managers and monitors,
manager commands, and what daemons and managers say to each other
(MgrClient <-> DaemonServer: open, configure, report, close), as Ceph
16.2-20.2 encode them (src/messages/MMgr*.h).

No I/O and no Twisted here.
"""

import uuid
from typing import Dict, List, Optional, Sequence, Tuple

from msgr2tx.core.encoding import (
    Decoder, Encoder, entity_addrvec_t,
)
from msgr2tx.core.messages import (
    CEPH_MSG_PRIO_HIGH, MSG_MGR_BEACON, MSG_MGR_CLOSE, MSG_MGR_COMMAND, MSG_MGR_COMMAND_REPLY,
    MSG_MGR_CONFIGURE, MSG_MGR_MAP, MSG_MGR_OPEN, MSG_MGR_REPORT, Message, PaxosServiceMessage, fsid_bytes,
    encode_sorted_str_map, fsid_uuid, register,
)
from msgr2tx.errors import DecodeError
from msgr2tx.ceph.mgrmap import MgrMap
from msgr2tx.messages.mon import _CommandBody


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
        encode_sorted_str_map(enc, self.metadata, lambda e, v: e.string(v))
        encode_sorted_str_map(enc, self.services, lambda e, v: e.string(v))
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
            encode_sorted_str_map(enc, self.daemon_metadata, lambda e, v: e.string(v))
            encode_sorted_str_map(enc, self.daemon_status, lambda e, v: e.string(v))
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
