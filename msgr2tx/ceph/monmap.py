"""
MonMap and MonInfo: the monitor map as Ceph 16.2-20.2 encode it
(src/mon/MonMap.cc), with the election strategies, monitor feature bits
and release numbers it carries.

No I/O and no Twisted here.
"""

import uuid
from dataclasses import dataclass, field
from typing import Dict, List, Tuple

from msgr2tx.core.encoding import (
    Decoder, Encoder, entity_addr_t, entity_addrvec_t, entity_name_t, utime_t,
)
from msgr2tx.core.messages import (
    encode_sorted_str_map, encode_string_set, fsid_bytes, fsid_uuid,
)
from msgr2tx.errors import DecodeError


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
        encode_sorted_str_map(enc, self.crush_loc, lambda e, v: e.string(v))
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
        encode_sorted_str_map(enc, self.mons, lambda e, info: info.encode(e))
        enc.string_list(self.ranks)
        enc.u8(self.min_mon_release)
        enc.u32(len(self.removed_ranks))
        for r in sorted(self.removed_ranks):
            enc.i32(r)
        enc.u8(self.strategy)
        encode_string_set(enc, self.disallowed_leaders)
        enc.bool(self.stretch_mode_enabled)
        enc.string(self.tiebreaker_mon)
        encode_string_set(enc, self.stretch_marked_down_mons)
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
