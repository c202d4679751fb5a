"""One validated configuration object shared by the core, factories and twistd."""

from dataclasses import dataclass, field
from typing import Mapping, Optional, Tuple, Union

from msgr2tx.core.compression import (
    COMPRESS_MODES, DEFAULT_ALGORITHMS, DEFAULT_MIN_SIZE, SUPPORTED_ALGORITHMS,
)
from msgr2tx.core.constants import ConnectionMode, Msgr2Feature
from msgr2tx.core.encoding import EntityName, EntityType, entity_addrvec_t
from msgr2tx.core.framing import DEFAULT_MAX_CONTROL, DEFAULT_MAX_FRAME, DEFAULT_MAX_SEGMENT

from msgr2tx.core.features import CEPH_FEATURES_ALL, MSGR2_REQUIRED
from msgr2tx.core.policy import Policy
from msgr2tx.core.speculation import KnownPeer

#: Ceph's ms_connection_idle_timeout default (seconds): what a server uses
#: when C{idle_timeout} is left at None
DEFAULT_SERVER_IDLE_TIMEOUT = 900.0


#: seconds of silence after which a peer is suspected when C{keepalive_timeout}
#: is 0: Ceph's C{mon_client_ping_timeout} (30 s), with which a MonClient
#: gives up on a monitor that did not answer its keepalives
DEFAULT_KEEPALIVE_TIMEOUT = 30.0
#: ... or this many keepalive intervals, if that is longer: Ceph's ratio of
#: C{mon_client_ping_timeout} to C{mon_client_ping_interval} (30 s / 10 s)
KEEPALIVE_TIMEOUT_INTERVALS = 3.0


_REVISION_1 = int(Msgr2Feature.REVISION_1)
_COMPRESSION = int(Msgr2Feature.COMPRESSION)
_FAST_RECONNECT = int(Msgr2Feature.MSGR2TX_FAST_RECONNECT)


@dataclass(frozen=True)
class ConnectionConfig:
    """
    Settings for one side of a msgr2 connection.

    @ivar entity_type: our CEPH_ENTITY_TYPE_* (HELLO).
    @ivar name: our auth entity name (C{client.admin}).
    @ivar modes: connection modes in order of preference.
    @ivar revision1: offer msgr2.1 (REVISION_1) in the banner.
    @ivar lossy: the shorthand for the policy when C{policy} is not given:
        a server grants lossy sessions (Ceph's C{stateless_server}) or
        lossless ones (C{stateful_server}); a client asks for a lossy
        session (C{lossy_client}) or a lossless one (C{lossless_client}).
    @ivar policy: our L{Policy} towards peers that C{policies} does not name.
    @ivar policies: a L{Policy} per peer entity type (CEPH_ENTITY_TYPE_*),
        as Ceph's C{Messenger::set_policy}; a mapping or (type, policy) pairs.
    @ivar peer_type: the entity type a client means to reach (0: any); a
        HELLO naming another type ends the connection with
        L{msgr2tx.errors.PeerTypeMismatch} before auth.
    @ivar learn_addr_from_peer: while our address is blank, learn its IP
        from the address the peer's HELLO says it sees for us (Ceph's
        C{ms_learn_addr_from_peer}, on by default); when False, from our
        socket's local address.
    @ivar compression: advertise on-wire compression (the banner's
        COMPRESSION bit), as every Ceph since 17.2 does.  The COMPRESSION_*
        exchange then happens with any peer that advertises it too, even
        when nothing is compressed.
    @ivar compress_mode: Ceph's C{ms_osd_compress_mode}: C{"none"} or
        C{"force"}.  As in Ceph it applies only to connections whose peer is
        an OSD (HELLO entity type); towards anything else nothing is
        compressed.
    @ivar compression_methods: Ceph's C{ms_osd_compression_algorithm}: method
        ids (L{msgr2tx.core.compression.CompressionAlgorithm}) in order of
        preference; a client's order wins.
    @ivar compress_min_size: Ceph's C{ms_osd_compress_min_size}: frames whose
        segments add up to fewer bytes go out uncompressed.
    @ivar compress_secure: Ceph's C{ms_compress_secure}: compress secure
        connections too (compression happens before encryption).
    @ivar speculate: a client whose peer is known (its banner and entity
        type seen by an earlier connection to that address, kept in the
        factory's L{msgr2tx.core.speculation.PeerBannerCache}, or given as
        C{peer_banner} with C{peer_type}) sends its banner, HELLO and
        AUTH_REQUEST in one write, one round trip before it would otherwise
        (docs/protocol.md, "Speculative first flight").  False: always wait
        for the peer's banner and HELLO.
    @ivar fast_reconnect: advertise msgr2tx's fast reconnect (the
        L{Msgr2Feature.MSGR2TX_FAST_RECONNECT} bit, in the banner's
        supported mask only) and, as a client, resume a lossless session
        with a peer that advertised it without a new cephx exchange
        (docs/protocol.md, "Fast reconnect").  Ceph peers ignore the bit.
    @ivar peer_banner: the peer's banner as (supported, required) msgr2
        feature masks, assumed when no earlier connection taught us better;
        used only together with C{peer_type}.  None: learn it.
    """

    entity_type: int = EntityType.CLIENT
    name: EntityName = field(default_factory=lambda: EntityName(EntityType.CLIENT, "admin"))
    entity_num: int = -1
    modes: Tuple[int, ...] = (ConnectionMode.CRC,)
    revision1: bool = True
    compression: bool = True
    compress_mode: str = "none"
    compression_methods: Tuple[int, ...] = DEFAULT_ALGORITHMS
    compress_min_size: int = DEFAULT_MIN_SIZE
    compress_secure: bool = False
    features_supported: int = CEPH_FEATURES_ALL
    features_required: int = MSGR2_REQUIRED
    lossy: bool = True
    policy: Optional[Policy] = None
    policies: Union[Mapping[int, Policy], Tuple[Tuple[int, Policy], ...]] = ()
    peer_type: int = 0
    speculate: bool = True
    fast_reconnect: bool = True
    peer_banner: Optional[Tuple[int, int]] = None
    learn_addr_from_peer: bool = True
    #: our bound addresses, for a peer that listens as well as connects
    #: (lossless peers); CLIENT_IDENT then carries them, not an "any" address
    my_addrs: Optional[entity_addrvec_t] = None
    data_crc: bool = True
    max_segment: int = DEFAULT_MAX_SEGMENT
    max_frame: int = DEFAULT_MAX_FRAME
    max_control: int = DEFAULT_MAX_CONTROL
    #: seconds between KEEPALIVE2 frames on a READY connection (0: none)
    keepalive_interval: float = 0.0
    #: suspect a peer we heard nothing from for this long, and fault it if it
    #: does not answer a probe either (0: 30 s, or 3 intervals if longer,
    #: as Ceph's mon_client_ping_timeout / mon_client_ping_interval)
    keepalive_timeout: float = 0.0
    #: close a READY connection that read nothing and sent no message for
    #: this long (Ceph's ms_connection_idle_timeout; 0: never; None: 900 s
    #: on a server, never on a client)
    idle_timeout: Optional[float] = None
    #: queued outgoing payload bytes at which whenWritable() waits and an
    #: accepted connection stops reading from its peer until half of it is
    #: written (a connecting side reads on: docs/embedding.md, Backpressure)
    send_queue_bytes: int = 64 << 20
    #: the same bound counted in messages
    send_queue_messages: int = 1024
    #: received messages whose dispatch has not finished, above which we stop reading
    receive_window_messages: int = 1024
    receive_window_bytes: int = 256 << 20

    def __post_init__(self):
        if isinstance(self.policies, Mapping):
            # stored as sorted pairs: the config stays hashable and comparable
            object.__setattr__(self, "policies", tuple(sorted(self.policies.items())))
        for peer_type, policy in self.policies.items() if isinstance(self.policies, Mapping) else self.policies:
            if not isinstance(policy, Policy):
                raise ValueError("the policy for peer type %r is not a Policy" % (peer_type,))
        if self.peer_banner is not None and (len(self.peer_banner) != 2 or
                                             not all(isinstance(b, int) and 0 <= b < 1 << 64
                                                     for b in self.peer_banner)):
            raise ValueError("peer_banner must be (supported, required), two u64 msgr2 feature masks")
        if not self.modes:
            raise ValueError("at least one connection mode is needed")
        for m in self.modes:
            ConnectionMode(m)
        if self.max_segment <= 0 or self.max_frame <= 0 or self.max_control <= 0:
            raise ValueError("frame limits must be positive")
        if self.compress_mode not in COMPRESS_MODES:
            raise ValueError("unknown compress mode %r (%s)" % (self.compress_mode, ", ".join(COMPRESS_MODES)))
        for method in self.compression_methods:
            if method not in SUPPORTED_ALGORITHMS:
                raise ValueError("unknown compression method %r (1 snappy, 2 zlib, 3 zstd, 4 lz4)" % (method,))
        if self.compress_min_size < 0:
            raise ValueError("compress_min_size must not be negative")
        if self.compress_mode != "none" and not self.compression:
            raise ValueError("compress_mode %r needs compression=True (the banner's COMPRESSION bit)"
                             % self.compress_mode)
        if self.compress_mode != "none" and not self.compression_methods:
            raise ValueError("compress_mode %r needs at least one compression method" % self.compress_mode)
        if min(self.keepalive_interval, self.keepalive_timeout, self.idle_timeout or 0) < 0:
            raise ValueError("timeouts must not be negative")
        if self.keepalive_timeout and self.keepalive_timeout <= self.keepalive_interval:
            raise ValueError("keepalive_timeout (%gs) must be longer than keepalive_interval (%gs), or a "
                             "healthy peer is faulted between two keepalives"
                             % (self.keepalive_timeout, self.keepalive_interval))
        if self.send_queue_bytes <= 0 or self.send_queue_messages <= 0:
            raise ValueError("send queue limits must be positive")

    def effective_idle_timeout(self, server: bool) -> float:
        """C{idle_timeout}, or for None Ceph's 900 s on a server and 0 (never) on a client."""
        if self.idle_timeout is not None:
            return self.idle_timeout
        return DEFAULT_SERVER_IDLE_TIMEOUT if server else 0.0

    def policy_for(self, peer_type: int, server: bool) -> Policy:
        """
        Our policy towards a peer of entity type C{peer_type}, for the
        accepting (C{server}) or the connecting side: the peer type's own
        policy, else C{policy}, else the one C{lossy} names.
        """
        pairs = self.policies.items() if isinstance(self.policies, Mapping) else self.policies
        for t, p in pairs:
            if t == peer_type:
                return p
        if self.policy is not None:
            return self.policy
        if server:
            return Policy.stateless_server() if self.lossy else Policy.stateful_server()
        return Policy.lossy_client() if self.lossy else Policy.lossless_client()

    @property
    def effective_keepalive_timeout(self) -> float:
        """
        Seconds of silence before a peer is suspected (see
        L{DEFAULT_KEEPALIVE_TIMEOUT}); only used with keepalives on.
        """
        if self.keepalive_timeout:
            return self.keepalive_timeout
        return max(DEFAULT_KEEPALIVE_TIMEOUT, KEEPALIVE_TIMEOUT_INTERVALS * self.keepalive_interval)

    @property
    def msgr2_supported(self) -> int:
        # plain ints: or-ing IntFlag members builds a new flag object each time
        bits = 0
        if self.revision1:
            bits |= _REVISION_1
        if self.compression:
            bits |= _COMPRESSION
        if self.fast_reconnect:
            bits |= _FAST_RECONNECT
        return bits

    @property
    def msgr2_required(self) -> int:
        return 0

    def assumed_peer(self) -> Optional[KnownPeer]:
        """
        The L{msgr2tx.core.speculation.KnownPeer} that C{peer_banner} and
        C{peer_type} describe, or None when either is missing.
        """
        if self.peer_banner is None or not self.peer_type:
            return None
        return KnownPeer(self.peer_banner[0], self.peer_banner[1], self.peer_type)
