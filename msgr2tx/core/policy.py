"""
Connection policies, chosen by the peer's entity type as Ceph's messenger
chooses them (C{src/msg/Policy.h}; C{ceph_osd.cc}, C{ceph_mon.cc} and
C{ceph_mds.cc} set one per peer type).

A policy answers four questions about every session with one kind of peer:

  - C{lossy}: does the session end with its connection (no cookies, no
    replay, no ACK frames)?  On the accepting side the server's policy alone
    decides; the connecting side adopts the server's LOSSY flag.
  - C{server}: may this side never reconnect by itself?  A server's side of
    a lossless session waits for the peer to come back, and in a connect
    race the incoming connection always wins against it.
  - C{standby}: after a fault with nothing queued, wait idle until there is
    something to send, instead of reconnecting at once.
  - C{resetcheck}: when the peer comes back with a new client cookie (it
    restarted), drop what the old session held and report a remote reset;
    and answer a SESSION_RECONNECT whose client cookie we do not know with a
    full SESSION_RESET.
"""

from dataclasses import dataclass
from typing import Dict


@dataclass(frozen=True)
class Policy:
    """
    One of Ceph's messenger policies; build them with the class methods,
    which carry Ceph's names and flag values.

    @ivar name: the Ceph name of the preset (for logs and docs).
    @ivar register_lossy_clients: a lossy server keeps one connection per
        client address (a newer connection from the same address closes the
        older one); Ceph's C{stateless_registered_server}.
    """

    lossy: bool
    server: bool
    standby: bool
    resetcheck: bool
    register_lossy_clients: bool = True
    name: str = ""

    @classmethod
    def stateful_server(cls) -> "Policy":
        """Lossless, never reconnects itself (Ceph's MDS towards clients)."""
        return cls(False, True, True, True, True, "stateful_server")

    @classmethod
    def stateless_server(cls) -> "Policy":
        """Lossy and unregistered (Ceph's monitor towards clients and OSDs)."""
        return cls(True, True, False, False, False, "stateless_server")

    @classmethod
    def stateless_registered_server(cls) -> "Policy":
        """Lossy, one connection per client address (an OSD's public messenger)."""
        return cls(True, True, False, False, True, "stateless_registered_server")

    @classmethod
    def lossless_peer(cls) -> "Policy":
        """Lossless both ways, no reset check (OSD to OSD on the cluster network)."""
        return cls(False, False, True, False, True, "lossless_peer")

    @classmethod
    def lossless_peer_reuse(cls) -> "Policy":
        """Lossless both ways, with the reset check (monitor to monitor)."""
        return cls(False, False, True, True, True, "lossless_peer_reuse")

    @classmethod
    def lossy_client(cls) -> "Policy":
        """A client whose session ends with its connection (librados towards OSDs and monitors)."""
        return cls(True, False, False, False, True, "lossy_client")

    @classmethod
    def lossless_client(cls) -> "Policy":
        """A client that reconnects at once and resumes (a CephFS client towards its MDS)."""
        return cls(False, False, False, True, True, "lossless_client")

    def __str__(self) -> str:
        flags = ",".join(f for f in ("lossy", "server", "standby", "resetcheck") if getattr(self, f))
        return "%s(%s)" % (self.name or "policy", flags)


def policy_map(**by_type: Policy) -> Dict[int, Policy]:
    """
    C{policy_map(osd=Policy.lossless_peer(), client=Policy.stateless_server())}:
    a peer-type mapping keyed by CEPH_ENTITY_TYPE_* values.
    """
    from msgr2tx.core.encoding import EntityType
    return {EntityType.parse(name): p for name, p in by_type.items()}
