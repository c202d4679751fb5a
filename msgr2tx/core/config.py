"""One validated configuration object shared by the core, factories and twistd."""

from dataclasses import dataclass, field
from typing import Optional, Tuple

from msgr2tx.core.constants import ConnectionMode, Msgr2Feature
from msgr2tx.core.encoding import EntityName, EntityType, entity_addrvec_t
from msgr2tx.core.framing import DEFAULT_MAX_CONTROL, DEFAULT_MAX_FRAME, DEFAULT_MAX_SEGMENT

from msgr2tx.core.features import CEPH_FEATURES_ALL, MSGR2_REQUIRED

#: Ceph's ms_connection_idle_timeout default (seconds): what a server uses
#: when C{idle_timeout} is left at None
DEFAULT_SERVER_IDLE_TIMEOUT = 900.0


@dataclass(frozen=True)
class ConnectionConfig:
    """
    Settings for one side of a msgr2 connection.

    @ivar entity_type: our CEPH_ENTITY_TYPE_* (HELLO).
    @ivar name: our auth entity name (C{client.admin}).
    @ivar modes: connection modes in order of preference.
    @ivar revision1: offer msgr2.1 (REVISION_1) in the banner.
    @ivar lossy: ask for a lossy session (client side; the server decides).
    """

    entity_type: int = EntityType.CLIENT
    name: EntityName = field(default_factory=lambda: EntityName(EntityType.CLIENT, "admin"))
    entity_num: int = -1
    modes: Tuple[int, ...] = (ConnectionMode.CRC,)
    revision1: bool = True
    compression: bool = False
    features_supported: int = CEPH_FEATURES_ALL
    features_required: int = MSGR2_REQUIRED
    lossy: bool = True
    #: our bound addresses, for a peer that listens as well as connects
    #: (lossless peers); CLIENT_IDENT then carries them, not an "any" address
    my_addrs: Optional[entity_addrvec_t] = None
    data_crc: bool = True
    max_segment: int = DEFAULT_MAX_SEGMENT
    max_frame: int = DEFAULT_MAX_FRAME
    max_control: int = DEFAULT_MAX_CONTROL
    #: seconds between KEEPALIVE2 frames on a READY connection (0: none)
    keepalive_interval: float = 0.0
    #: fault a peer we heard nothing from for this long (0: 1.5 x the interval)
    keepalive_timeout: float = 0.0
    #: close a READY connection that read nothing and sent no message for
    #: this long (Ceph's ms_connection_idle_timeout; 0: never; None: 900 s
    #: on a server, never on a client)
    idle_timeout: Optional[float] = None
    #: queued outgoing payload bytes at which whenWritable() waits and the
    #: connection stops reading from its peer until half of it is written
    send_queue_bytes: int = 64 << 20
    #: the same bound counted in messages
    send_queue_messages: int = 1024
    #: received messages whose dispatch has not finished, above which we stop reading
    receive_window_messages: int = 1024
    receive_window_bytes: int = 256 << 20

    def __post_init__(self):
        if not self.modes:
            raise ValueError("at least one connection mode is needed")
        for m in self.modes:
            ConnectionMode(m)
        if self.max_segment <= 0 or self.max_frame <= 0 or self.max_control <= 0:
            raise ValueError("frame limits must be positive")
        if min(self.keepalive_interval, self.keepalive_timeout, self.idle_timeout or 0) < 0:
            raise ValueError("timeouts must not be negative")
        if self.send_queue_bytes <= 0 or self.send_queue_messages <= 0:
            raise ValueError("send queue limits must be positive")

    def effective_idle_timeout(self, server: bool) -> float:
        """C{idle_timeout}, or for None Ceph's 900 s on a server and 0 (never) on a client."""
        if self.idle_timeout is not None:
            return self.idle_timeout
        return DEFAULT_SERVER_IDLE_TIMEOUT if server else 0.0

    @property
    def effective_keepalive_timeout(self) -> float:
        if self.keepalive_timeout:
            return self.keepalive_timeout
        return 1.5 * self.keepalive_interval

    @property
    def msgr2_supported(self) -> int:
        bits = 0
        if self.revision1:
            bits |= Msgr2Feature.REVISION_1
        if self.compression:
            bits |= Msgr2Feature.COMPRESSION
        return int(bits)

    @property
    def msgr2_required(self) -> int:
        return 0
