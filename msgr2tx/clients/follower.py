"""
Keep an OSDMap current over a monitor session.

L{OSDMapFollower} subscribes a L{msgr2tx.clients.monclient.MonClient} to the
osdmap, applies the MOSDMaps the monitor sends with
L{msgr2tx.ceph.osdmap.advance} (incrementals in order, a full map first or
where one is needed), and asks again from the next epoch it lacks, as
Ceph's C{Objecter::handle_osd_map} and C{_maybe_request_map} do.
"""

from typing import Callable, Dict, List, Optional

from twisted.internet import defer
from twisted.logger import Logger

from msgr2tx.ceph.osdmap import OSDMap, advance
from msgr2tx.core.encoding import EntityType
from msgr2tx.errors import DecodeError
from msgr2tx.messages.osd import MOSDMap


class OSDMapFollower:
    """
    The newest OSDMap a monitor has told us about.

    C{monclient} is a L{msgr2tx.clients.monclient.MonClient} (connected or not:
    the subscription is sent on every READY).  C{osdmap} is None until the
    first map arrives.  L{when_epoch} waits for an epoch; listeners added
    with L{add_listener} are called with each new map.
    """

    log = Logger()

    def __init__(self, monclient) -> None:
        self.monclient = monclient
        self.osdmap: Optional[OSDMap] = None
        self._waiters: Dict[int, List[defer.Deferred]] = {}
        self._listeners: List[Callable[[OSDMap], object]] = []
        monclient.addMessageHandler(MOSDMap, self._handle)
        monclient.subscribe("osdmap", 0)

    @property
    def epoch(self) -> int:
        """The epoch we hold, 0 before the first map."""
        return self.osdmap.epoch if self.osdmap is not None else 0

    def add_listener(self, listener: Callable[[OSDMap], object]) -> None:
        """Call C{listener(osdmap)} whenever the map moves to a new epoch."""
        self._listeners.append(listener)

    def when_epoch(self, epoch: int = 1) -> defer.Deferred:
        """A Deferred that fires with the map once we hold C{epoch} or newer."""
        if self.osdmap is not None and self.osdmap.epoch >= epoch:
            return defer.succeed(self.osdmap)
        d: defer.Deferred = defer.Deferred()
        self._waiters.setdefault(epoch, []).append(d)
        return d

    def handle_osdmap(self, message: MOSDMap) -> None:
        """Take an MOSDMap that came another way (an OSD shares newer maps with its clients)."""
        self._handle(message)

    def _handle(self, message: MOSDMap) -> None:
        src = getattr(message, "src", None)
        if src is not None and src.type not in (EntityType.MON, EntityType.OSD):
            return
        before = self.epoch
        try:
            osdmap, want = advance(self.osdmap, message.fsid_uuid, message.incremental_maps, message.maps,
                                   message.oldest_map)
        except DecodeError as e:
            self.log.warn("undecodable osdmap from {peer}: {error}; asking for a full map",
                          peer=src, error=e)
            osdmap, want = self.osdmap, 0
        self.osdmap = osdmap
        if want is not None:
            # keep the subscription at the first epoch we lack
            self.monclient.subscribe("osdmap", want)
        elif osdmap is not None:
            self.monclient.subscriptions["osdmap"] = osdmap.epoch + 1
        if osdmap is None or osdmap.epoch == before:
            return
        for listener in list(self._listeners):
            try:
                listener(osdmap)
            except Exception:
                self.log.failure("osdmap listener failed")
        for epoch in sorted(e for e in self._waiters if e <= osdmap.epoch):
            for d in self._waiters.pop(epoch):
                d.callback(osdmap)


__all__ = ["OSDMapFollower"]
