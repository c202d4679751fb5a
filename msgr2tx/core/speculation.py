"""
What a connecting side remembers about a peer so that its next connection can
send a speculative first flight: its banner, HELLO and AUTH_REQUEST in one
write, without waiting for the peer's banner and HELLO.

Only two things about the peer shape those first frames: the banner's
REVISION_1 bit (both sides switch to the msgr2.1 frame format when both
offer it, Ceph's C{ProtocolV2::_handle_peer_banner_payload}) and the
peer's entity type (the auth method's first payload differs for a monitor
and for the services an authorizer opens, as C{MonClient} and
C{AuthClient::get_auth_request} do in Ceph).  docs/protocol.md, "Speculative
first flight", gives the rules.
"""

from collections import OrderedDict
from typing import NamedTuple, Optional

from msgr2tx.core.constants import Msgr2Feature
from msgr2tx.core.encoding import entity_addr_t

#: how many peers a L{PeerBannerCache} remembers by default (least recently used go first)
DEFAULT_CACHE_SIZE = 64


class KnownPeer(NamedTuple):
    """
    A peer as an earlier connection saw it.

    @ivar supported: the msgr2 feature bits its banner offered (u64).
    @ivar required: the msgr2 feature bits its banner required (u64).
    @ivar entity_type: the CEPH_ENTITY_TYPE_* its HELLO named (0: not known,
        and then no first flight can be built).
    """

    supported: int
    required: int
    entity_type: int

    def rev1_with(self, ours: int) -> bool:
        """The frame format both sides would pick: msgr2.1 when both banners offer REVISION_1."""
        return bool(self.supported & ours & Msgr2Feature.REVISION_1)


def address_key(addr: entity_addr_t) -> str:
    """
    The cache key of a peer address: host and port only (a daemon that
    restarts gets a new nonce but is still the peer at that address).
    """
    host = addr.host
    if host is None:
        return ":%d" % addr.port
    return "[%s]:%d" % (host, addr.port) if getattr(host, "version", 4) == 6 else "%s:%d" % (host, addr.port)


class PeerBannerCache:
    """
    A small per-address memory of L{KnownPeer}s, bounded to C{size} entries
    (least recently used dropped first).  Client factories, a
    C{ReconnectingClient} and a C{MonClient} keep one; it holds no secrets.
    """

    def __init__(self, size: int = DEFAULT_CACHE_SIZE) -> None:
        if size <= 0:
            raise ValueError("a peer banner cache needs room for at least one peer")
        self.size = size
        self._peers: "OrderedDict[str, KnownPeer]" = OrderedDict()

    def __len__(self) -> int:
        return len(self._peers)

    def __repr__(self) -> str:
        return "<PeerBannerCache %d/%d peers>" % (len(self._peers), self.size)

    def get(self, addr: entity_addr_t) -> Optional[KnownPeer]:
        """The peer last seen at C{addr}'s host and port, or None."""
        key = address_key(addr)
        peer = self._peers.get(key)
        if peer is not None:
            self._peers.move_to_end(key)
        return peer

    def learn(self, addr: entity_addr_t, peer: KnownPeer) -> None:
        """Remember what a connection to C{addr} saw (replacing what was known)."""
        key = address_key(addr)
        self._peers[key] = peer
        self._peers.move_to_end(key)
        while len(self._peers) > self.size:
            self._peers.popitem(last=False)

    def forget(self, addr: entity_addr_t) -> None:
        """Drop what is known about C{addr} (its banner turned out different)."""
        self._peers.pop(address_key(addr), None)
