"""
MgrMap: the manager map's leading fields, as the monitors send it in
MMgrMap (src/mon/MgrMap.h).

No I/O and no Twisted here.
"""

from typing import Optional

from msgr2tx.core.encoding import (
    Decoder, entity_addrvec_t,
)
from msgr2tx.errors import DecodeError


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
