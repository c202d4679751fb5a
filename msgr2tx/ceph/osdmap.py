"""
The OSDMap as a client needs it: pools, OSD states and weights, addresses,
temps, upmaps and the CRUSH map, and from those the placement of an object:
name -> placement group -> up and acting OSDs.

L{OSDMap.decode} reads a full OSDMap as Ceph encodes it (what C{ceph osd
getmap} writes and MOSDMap carries) from Ceph 12 (luminous) on, including
16.2, 18.2 and 20.2: the client-usable part is decoded, the OSD-only part is
skipped by its length, and fields newer than we know are skipped by their
versioned lengths.  L{OSDMap.map_object} and L{OSDMap.pg_to_up_acting}
follow C{OSDMap::object_locator_to_pg} and C{OSDMap::_pg_to_up_acting_osds}
(C{src/osd/OSDMap.cc}), with pools as C{pg_pool_t} (C{src/osd/osd_types.cc})
and names hashed as C{ceph_str_hash} (C{src/common/ceph_hash.cc}).

No I/O and no Twisted here.
"""

import uuid
from dataclasses import dataclass, field
from typing import Dict, List, NamedTuple, Optional, Tuple

from msgr2tx.ceph.crush import ITEM_NONE, CrushMap, hash32_2, jenkins_mix as _mix
from msgr2tx.core.encoding import Decoder, entity_addrvec_t, utime_t
from msgr2tx.errors import DecodeError, Msgr2Error

#: C{CEPH_OSD_EXISTS}, C{CEPH_OSD_UP} (src/include/rados.h)
OSD_EXISTS = 1 << 0
OSD_UP = 1 << 1
_OSD_AUTOOUT = 1 << 2
_OSD_NEW = 1 << 3
_OSD_STOP = 1 << 12
#: 16.16 weights: in, out
OSD_IN = 0x10000
OSD_OUT = 0
#: primary affinity 1.0, the default and the maximum
DEFAULT_PRIMARY_AFFINITY = 0x10000

#: C{CEPH_STR_HASH_*}: how a pool hashes object names
STR_HASH_LINUX = 1
STR_HASH_RJENKINS = 2

_M32 = 0xFFFFFFFF


class PlacementError(Msgr2Error):
    """An object or PG that the map cannot place (no such pool, an unknown hash type)."""


# --- name hashing (src/common/ceph_hash.cc) ----------------------------------

def str_hash_rjenkins(data: bytes) -> int:
    """C{ceph_str_hash_rjenkins}: Robert Jenkins' lookup2 hash of C{data}, a u32."""
    length = len(data)
    a = b = 0x9E3779B9
    c = 0
    k = 0
    while length - k >= 12:
        a = (a + int.from_bytes(data[k:k + 4], "little")) & _M32
        b = (b + int.from_bytes(data[k + 4:k + 8], "little")) & _M32
        c = (c + int.from_bytes(data[k + 8:k + 12], "little")) & _M32
        a, b, c = _mix(a, b, c)
        k += 12
    tail = data[k:]
    c = (c + length) & _M32
    # the last 11 bytes: a takes bytes 0-3, b 4-7, c 8-10 shifted past its low byte
    a = (a + int.from_bytes(tail[0:4], "little")) & _M32
    b = (b + int.from_bytes(tail[4:8], "little")) & _M32
    c = (c + (int.from_bytes(tail[8:11], "little") << 8)) & _M32
    a, b, c = _mix(a, b, c)
    return c


def str_hash_linux(data: bytes) -> int:
    """C{ceph_str_hash_linux}: the Linux dcache hash of C{data}, a u32."""
    h = 0
    for ch in data:
        h = ((h + (ch << 4) + (ch >> 4)) * 11) & _M32
    return h


def str_hash(hash_type: int, data: bytes) -> int:
    """C{ceph_str_hash}. @raise PlacementError: an unknown hash type."""
    if hash_type == STR_HASH_RJENKINS:
        return str_hash_rjenkins(data)
    if hash_type == STR_HASH_LINUX:
        return str_hash_linux(data)
    raise PlacementError("unknown object hash type %d" % hash_type)


def stable_mod(x: int, b: int, bmask: int) -> int:
    """C{ceph_stable_mod}: x mod b, stable as b grows to the next power of two."""
    if (x & bmask) < b:
        return x & bmask
    return x & (bmask >> 1)


def _mask(n: int) -> int:
    # the smallest 2^k - 1 >= n - 1 (pg_pool_t::calc_pg_masks)
    return (1 << max(n - 1, 0).bit_length()) - 1


# --- types ---------------------------------------------------------------------

class PgId(NamedTuple):
    """A placement group: its pool and seed (C{pg_t}); prints as Ceph does, C{1.1f}."""

    pool: int
    seed: int

    def __str__(self) -> str:
        return "%d.%x" % (self.pool, self.seed)

    @classmethod
    def parse(cls, text: str) -> "PgId":
        """C{"1.1f"} -> PgId(1, 0x1f). @raise ValueError: not a PG id."""
        pool, _, seed = text.partition(".")
        return cls(int(pool), int(seed, 16))

    @classmethod
    def decode(cls, dec: Decoder) -> "PgId":
        dec.u8()                # struct version
        pool = dec.u64()
        seed = dec.u32()
        dec.i32()               # "preferred", long unused
        return cls(pool, seed)


@dataclass
class Pool:
    """
    A pool as placement needs it (C{pg_pool_t}).

    C{type} is 1 (replicated) or 3 (erasure); C{flags} are C{FLAG_*}
    (bit 0 is HASHPSPOOL); C{object_hash} is a C{STR_HASH_*} value.
    """

    #: C{pg_pool_t::FLAG_HASHPSPOOL}
    FLAG_HASHPSPOOL = 1 << 0
    #: C{pg_pool_t::FLAG_FULL}: the monitor marked the pool full (an OSD it
    #: maps to is full, or its quota is reached); clients hold writes
    FLAG_FULL = 1 << 1
    #: C{pg_pool_t::FLAG_FULL_QUOTA}: full because of its quota (FLAG_FULL is set too)
    FLAG_FULL_QUOTA = 1 << 10
    TYPE_REPLICATED = 1
    TYPE_ERASURE = 3

    id: int
    name: str = ""
    type: int = TYPE_REPLICATED
    size: int = 0
    min_size: int = 0
    crush_rule: int = 0
    object_hash: int = STR_HASH_RJENKINS
    pg_num: int = 0
    pgp_num: int = 0
    flags: int = 0
    last_change: int = 0
    erasure_code_profile: str = ""
    stripe_width: int = 0
    last_force_op_resend: int = 0
    application_metadata: Dict[str, Dict[str, str]] = field(default_factory=dict)

    @property
    def pg_num_mask(self) -> int:
        return _mask(self.pg_num)

    @property
    def pgp_num_mask(self) -> int:
        return _mask(self.pgp_num)

    @property
    def can_shift_osds(self) -> bool:
        """Replicated pools close gaps in their OSD lists; erasure-coded ones keep positions."""
        return self.type == self.TYPE_REPLICATED

    def hash_key(self, key: bytes, namespace: bytes = b"") -> int:
        """C{pg_pool_t::hash_key}: the raw hash of an object name (u32)."""
        if namespace:
            key = namespace + b"\x1f" + key
        return str_hash(self.object_hash, key)

    def raw_pg_to_pg(self, pg: PgId) -> PgId:
        """Fold a full-precision seed into this pool's pg_num."""
        return PgId(pg.pool, stable_mod(pg.seed, self.pg_num, self.pg_num_mask))

    def raw_pg_to_pps(self, pg: PgId) -> int:
        """C{pg_pool_t::raw_pg_to_pps}: the placement seed CRUSH maps."""
        ps = stable_mod(pg.seed, self.pgp_num, self.pgp_num_mask)
        if self.flags & self.FLAG_HASHPSPOOL:
            return hash32_2(ps, pg.pool)
        return (ps + pg.pool) & _M32

    @classmethod
    def decode(cls, pool_id: int, dec: Decoder) -> "Pool":
        """Decode a C{pg_pool_t} (versions 5 to 32); newer tails are skipped."""
        version, end = dec.start(5, "pg_pool_t")
        if version < 5:
            raise DecodeError("pg_pool_t version %d is older than Ceph 0.x encodings we read" % version)
        p = cls(pool_id)
        p.type = dec.u8()
        p.size = dec.u8()
        p.crush_rule = dec.u8()
        p.object_hash = dec.u8()
        p.pg_num = dec.u32()
        p.pgp_num = dec.u32()
        dec.u32()       # lpg_num, unused
        dec.u32()       # lpgp_num, unused
        p.last_change = dec.u32()
        dec.u64()       # snap_seq
        dec.u32()       # snap_epoch
        for _ in range(dec.count(14)):          # snaps: snapid -> pool_snap_info_t
            dec.u64()
            _skip_struct(dec, "pool_snap_info_t")
        _skip_interval_set(dec)                 # removed_snaps
        dec.u64()       # auid
        p.flags = dec.u64()
        dec.u32()       # crash_replay_interval
        p.min_size = dec.u8() if version >= 7 else p.size - p.size // 2
        if version >= 8:
            dec.u64()   # quota_max_bytes
            dec.u64()   # quota_max_objects
        if version >= 9:
            for _ in range(dec.count(8)):       # tiers
                dec.u64()
            dec.i64()   # tier_of
            dec.u8()    # cache_mode
            dec.i64()   # read_tier
            dec.i64()   # write_tier
        if version >= 10:
            dec.map(Decoder.string, Decoder.string, 8)      # properties
        if version >= 11:
            _skip_struct(dec, "HitSet::Params")
            dec.u32()   # hit_set_period
            dec.u32()   # hit_set_count
        if version >= 12:
            p.stripe_width = dec.u32()
        if version >= 13:
            dec.u64()   # target_max_bytes
            dec.u64()   # target_max_objects
            for _ in range(4):                  # cache ratios and ages
                dec.u32()
        if version >= 14:
            p.erasure_code_profile = dec.string()
        resend = 0
        if version >= 15:
            resend = dec.u32()                  # last_force_op_resend_preluminous
        if version >= 16:
            dec.u32()   # min_read_recency_for_promote
        if version >= 17:
            dec.u64()   # expected_num_objects
        if version >= 19:
            dec.u32()   # cache_target_dirty_high_ratio_micro
        if version >= 20:
            dec.u32()   # min_write_recency_for_promote
        if version >= 21:
            dec.u8()    # use_gmt_hitset
        if version >= 22:
            dec.u8()    # fast_read
        if version >= 23:
            dec.u32()   # hit_set_grade_decay_rate
            dec.u32()   # hit_set_search_last_n
        if version >= 24:
            _skip_struct(dec, "pool_opts_t")
        if version >= 25:
            resend = dec.u32()                  # last_force_op_resend_prenautilus
        if version >= 26:
            p.application_metadata = dec.map(
                Decoder.string, lambda d: d.map(Decoder.string, Decoder.string, 8), 4)
        if version >= 27:
            utime_t.decode(dec)                 # create_time
        if version >= 28:
            dec.u32()   # pg_num_target
            dec.u32()   # pgp_num_target
            dec.u32()   # pg_num_pending
            dec.u32()   # old merge last_epoch_started
            dec.u32()   # old merge last_epoch_clean
            resend = dec.u32()                  # last_force_op_resend
        p.last_force_op_resend = resend
        dec.finish(end)
        return p


def _skip_struct(dec: Decoder, what: str) -> None:
    _, end = dec.start(255, what)
    dec.finish(end)


def _skip_interval_set(dec: Decoder) -> None:
    for _ in range(dec.count(16)):
        dec.u64()
        dec.u64()


def _pg_map(dec: Decoder, value) -> Dict[PgId, object]:
    return {PgId.decode(dec): value(dec) for _ in range(dec.count(17))}


def _i32_list(dec: Decoder) -> List[int]:
    return [dec.i32() for _ in range(dec.count(4))]


def _i32_pairs(dec: Decoder) -> List[Tuple[int, int]]:
    return [(dec.i32(), dec.i32()) for _ in range(dec.count(8))]


def _skip_snap_maps(dec: Decoder) -> None:
    # new_removed_snaps and new_purged_snaps: pool -> interval set, twice
    for _ in range(2):
        for _ in range(dec.count(12)):
            dec.i64()
            _skip_interval_set(dec)


class Placement(NamedTuple):
    """Where a PG lives: the up set and its primary, the acting set and its primary (-1: none)."""

    up: List[int]
    up_primary: int
    acting: List[int]
    acting_primary: int


class OSDMap:
    """
    A decoded OSDMap (the client-usable part).

    C{pools} maps pool id -> L{Pool}; C{osd_state}, C{osd_weight} and
    C{osd_addrs} are indexed by OSD id (C{max_osd} long); C{pg_temp},
    C{primary_temp}, C{pg_upmap}, C{pg_upmap_items} and
    C{pg_upmap_primaries} are keyed by L{PgId}; C{crush} is the
    L{CrushMap}.
    """

    def __init__(self) -> None:
        self.fsid = uuid.UUID(int=0)
        self.epoch = 0
        self.created = utime_t(0, 0)
        self.modified = utime_t(0, 0)
        self.pools: Dict[int, Pool] = {}
        self.pool_max = -1
        self.flags = 0
        self.max_osd = 0
        self.osd_state: List[int] = []
        self.osd_weight: List[int] = []
        self.osd_addrs: List[entity_addrvec_t] = []
        self.pg_temp: Dict[PgId, List[int]] = {}
        self.primary_temp: Dict[PgId, int] = {}
        self.primary_affinity: Optional[List[int]] = None
        self.crush = CrushMap()
        self.erasure_code_profiles: Dict[str, Dict[str, str]] = {}
        self.pg_upmap: Dict[PgId, List[int]] = {}
        self.pg_upmap_items: Dict[PgId, List[Tuple[int, int]]] = {}
        self.pg_upmap_primaries: Dict[PgId, int] = {}
        self.crush_version = 0

    def __repr__(self) -> str:
        return "<OSDMap e%d fsid=%s pools=%d max_osd=%d>" % (self.epoch, self.fsid, len(self.pools), self.max_osd)

    # ---- decoding ---------------------------------------------------------

    @classmethod
    def decode(cls, data) -> "OSDMap":
        """
        Decode a full OSDMap (C{OSDMap::encode}'s format, wrapper version
        7 or later: Ceph 12 and newer).

        @raise DecodeError: truncated or malformed, or an older encoding.
        """
        dec = Decoder(data)
        version, end = dec.start(7, "OSDMap")
        if version < 7:
            raise DecodeError("OSDMap encoding version %d predates Ceph 12" % version)
        m = cls()
        m._decode_client(dec)
        dec.finish(end)
        return m

    def _decode_client(self, dec: Decoder) -> None:
        version, end = dec.start(10, "OSDMap client data")
        self.fsid = uuid.UUID(bytes=dec.raw(16))
        self.epoch = dec.u32()
        self.created = utime_t.decode(dec)
        self.modified = utime_t.decode(dec)
        pools: Dict[int, Pool] = {}
        for _ in range(dec.count(14)):
            pool_id = dec.i64()
            pools[pool_id] = Pool.decode(pool_id, dec)
        for pool_id, name in dec.map(Decoder.i64, Decoder.string, 12).items():
            if pool_id in pools:
                pools[pool_id].name = name
        self.pools = pools
        self.pool_max = dec.i32()
        self.flags = dec.u32()
        self.max_osd = dec.i32()
        if version >= 5:
            self.osd_state = dec.u32_list()
        else:
            self.osd_state = list(dec.raw(dec.count(1)))
        self.osd_weight = dec.u32_list()
        self.osd_addrs = [entity_addrvec_t.decode(dec) for _ in range(dec.count(1))]
        self.pg_temp = _pg_map(dec, _i32_list)       # type: ignore[assignment]
        self.primary_temp = _pg_map(dec, Decoder.i32)    # type: ignore[assignment]
        if version >= 2:
            affinity = dec.u32_list()
            self.primary_affinity = affinity or None
        crush_blob = dec.blob()
        self.crush = CrushMap.decode(crush_blob)
        if version >= 3:
            self.erasure_code_profiles = dec.map(
                Decoder.string, lambda d: d.map(Decoder.string, Decoder.string, 8), 4)
        if version >= 4:
            self.pg_upmap = _pg_map(dec, _i32_list)     # type: ignore[assignment]
            self.pg_upmap_items = _pg_map(dec, _i32_pairs)  # type: ignore[assignment]
        if version >= 6:
            self.crush_version = dec.i32()
        if version >= 7:
            _skip_snap_maps(dec)
        if version >= 9:
            utime_t.decode(dec)         # last_up_change
            utime_t.decode(dec)         # last_in_change
        if version >= 10:
            self.pg_upmap_primaries = _pg_map(dec, Decoder.i32)     # type: ignore[assignment]
        dec.finish(end)

    # ---- OSD states -------------------------------------------------------

    def set_max_osd(self, max_osd: int) -> None:
        """C{OSDMap::set_max_osd}: grow or shrink the per-OSD vectors."""
        def fit(vec: list, fill) -> list:
            return vec[:max_osd] + [fill] * (max_osd - len(vec))
        self.max_osd = max_osd
        self.osd_state = fit(self.osd_state, 0)
        self.osd_weight = fit(self.osd_weight, OSD_OUT)
        self.osd_addrs = self.osd_addrs[:max_osd] + [entity_addrvec_t(())
                                                      for _ in range(max_osd - len(self.osd_addrs))]
        if self.primary_affinity is not None:
            self.primary_affinity = fit(self.primary_affinity, DEFAULT_PRIMARY_AFFINITY)

    def _set_primary_affinity(self, osd: int, affinity: int) -> None:
        if self.primary_affinity is None:
            self.primary_affinity = [DEFAULT_PRIMARY_AFFINITY] * self.max_osd
        self.primary_affinity[osd] = affinity

    def apply(self, inc: "Incremental") -> "OSDMap":
        """L{apply_incremental} as a method: returns the map for C{inc.epoch}."""
        return apply_incremental(self, inc)

    def exists(self, osd: int) -> bool:
        """The OSD id is in the map (C{CEPH_OSD_EXISTS})."""
        return 0 <= osd < self.max_osd and bool(self.osd_state[osd] & OSD_EXISTS)

    def is_up(self, osd: int) -> bool:
        """The OSD exists and is up."""
        return self.exists(osd) and bool(self.osd_state[osd] & OSD_UP)

    def pool_by_name(self, name: str) -> Pool:
        """@raise PlacementError: no pool of that name."""
        for pool in self.pools.values():
            if pool.name == name:
                return pool
        raise PlacementError("no pool named %r in osdmap e%d" % (name, self.epoch))

    # ---- placement --------------------------------------------------------

    def object_to_pg(self, pool_id: int, name: bytes, namespace: bytes = b"", key: bytes = b"") -> PgId:
        """
        C{OSDMap::object_locator_to_pg}: the raw PG (full 32-bit seed) of an
        object; C{key} overrides the name for placement, as an object
        locator's key does.  Fold it with L{Pool.raw_pg_to_pg}.

        @raise PlacementError: no such pool.
        """
        pool = self._pool(pool_id)
        return PgId(pool_id, pool.hash_key(key or name, namespace))

    def map_object(self, pool_id: int, name: bytes, namespace: bytes = b"") -> Tuple[PgId, PgId, Placement]:
        """
        (raw PG, PG, placement) of an object, as C{ceph osd map POOL NAME}
        prints them.

        @raise PlacementError: no such pool.
        """
        raw = self.object_to_pg(pool_id, name, namespace)
        return raw, self._pool(pool_id).raw_pg_to_pg(raw), self.pg_to_up_acting(raw)

    def pg_to_raw_osds(self, pg: PgId) -> Tuple[List[int], int]:
        """C{OSDMap::_pg_to_raw_osds}: CRUSH's OSDs (nonexistent ones removed) and the placement seed."""
        pool = self._pool(pg.pool)
        pps = pool.raw_pg_to_pps(pg)
        osds: List[int] = []
        if pool.crush_rule >= 0:
            osds = self.crush.do_rule(pool.crush_rule, pps, pool.size, self.osd_weight, pg.pool)
        if pool.can_shift_osds:
            osds = [o for o in osds if self.exists(o)]
        else:
            osds = [o if self.exists(o) else ITEM_NONE for o in osds]
        return osds, pps

    def pg_to_up_acting(self, pg: PgId) -> Placement:
        """
        C{OSDMap::_pg_to_up_acting_osds} for a raw or folded PG: CRUSH, then
        pg_upmap, pg_upmap_items and pg_upmap_primaries, minus down OSDs,
        primary affinity, and pg_temp/primary_temp for the acting set.

        @raise PlacementError: no such pool.
        """
        pool = self._pool(pg.pool)
        acting, acting_primary = self._temp_osds(pool, pg)
        raw, pps = self.pg_to_raw_osds(pg)
        raw = self._apply_upmap(pool, pg, raw)
        if pool.can_shift_osds:
            up = [o for o in raw if self.is_up(o)]
        else:
            up = [o if self.is_up(o) else ITEM_NONE for o in raw]
        up_primary = next((o for o in up if o != ITEM_NONE), -1)
        up_primary = self._apply_primary_affinity(pps, pool, up, up_primary)
        if not acting:
            acting = list(up)
            if acting_primary == -1:
                acting_primary = up_primary
        return Placement(up, up_primary, acting, acting_primary)

    def _pool(self, pool_id: int) -> Pool:
        pool = self.pools.get(pool_id)
        if pool is None:
            raise PlacementError("no pool %d in osdmap e%d" % (pool_id, self.epoch))
        return pool

    def _weight(self, osd: int) -> int:
        return self.osd_weight[osd] if 0 <= osd < len(self.osd_weight) else OSD_OUT

    def _marked_out(self, osd: int) -> bool:
        return osd != ITEM_NONE and 0 <= osd < self.max_osd and self._weight(osd) == 0

    def _apply_upmap(self, pool: Pool, raw_pg: PgId, raw: List[int]) -> List[int]:
        pg = pool.raw_pg_to_pg(raw_pg)
        targets = self.pg_upmap.get(pg)
        if targets is not None and not any(self._marked_out(o) for o in targets):
            raw = list(targets)
        for osd_from, osd_to in self.pg_upmap_items.get(pg, ()):
            if osd_to in raw:
                continue
            for i, osd in enumerate(raw):
                if osd == osd_from and not self._marked_out(osd_to):
                    raw[i] = osd_to
                    break
        new_primary = self.pg_upmap_primaries.get(pg)
        if new_primary is not None and new_primary != ITEM_NONE and 0 <= new_primary < self.max_osd \
                and self._weight(new_primary) != 0 and new_primary in raw[1:]:
            i = raw.index(new_primary, 1)
            raw[i] = raw[0]
            raw[0] = new_primary
        return raw

    def _apply_primary_affinity(self, seed: int, pool: Pool, osds: List[int], primary: int) -> int:
        affinity = self.primary_affinity
        if affinity is None:
            return primary
        if not any(o != ITEM_NONE and affinity[o] != DEFAULT_PRIMARY_AFFINITY for o in osds):
            return primary
        pos = -1
        for i, o in enumerate(osds):
            if o == ITEM_NONE:
                continue
            a = affinity[o]
            if a < DEFAULT_PRIMARY_AFFINITY and (hash32_2(seed, o) >> 16) >= a:
                if pos < 0:
                    pos = i
            else:
                pos = i
                break
        if pos < 0:
            return primary
        primary = osds[pos]
        if pool.can_shift_osds and pos > 0:
            osds[1:pos + 1] = osds[0:pos]
            osds[0] = primary
        return primary

    def _temp_osds(self, pool: Pool, pg: PgId) -> Tuple[List[int], int]:
        pg = pool.raw_pg_to_pg(pg)
        temp: List[int] = []
        listed = self.pg_temp.get(pg)
        if listed is not None:
            for o in listed:
                if not self.is_up(o):
                    if not pool.can_shift_osds:
                        temp.append(ITEM_NONE)
                else:
                    temp.append(o)
        primary = self.primary_temp.get(pg)
        if primary is None:
            primary = next((o for o in temp if o != ITEM_NONE), -1)
        return temp, primary


class Incremental:
    """
    One OSDMap incremental (C{OSDMap::Incremental}), client-usable part:
    the changes from epoch C{epoch - 1} to C{epoch}, or a whole map in
    C{fullmap}.  Absent values are -1 (C{new_pool_max}, C{new_flags},
    C{new_max_osd}); C{new_state} entries are XORed onto the old state.
    """

    def __init__(self) -> None:
        self.fsid = uuid.UUID(int=0)
        self.epoch = 0
        self.modified = utime_t(0, 0)
        self.new_pool_max = -1
        self.new_flags = -1
        self.fullmap = b""
        self.crush = b""
        self.new_max_osd = -1
        self.new_pools: Dict[int, Pool] = {}
        self.new_pool_names: Dict[int, str] = {}
        self.old_pools: List[int] = []
        self.new_up_client: Dict[int, entity_addrvec_t] = {}
        self.new_state: Dict[int, int] = {}
        self.new_weight: Dict[int, int] = {}
        self.new_pg_temp: Dict[PgId, List[int]] = {}
        self.new_primary_temp: Dict[PgId, int] = {}
        self.new_primary_affinity: Dict[int, int] = {}
        self.new_erasure_code_profiles: Dict[str, Dict[str, str]] = {}
        self.old_erasure_code_profiles: List[str] = []
        self.new_pg_upmap: Dict[PgId, List[int]] = {}
        self.old_pg_upmap: List[PgId] = []
        self.new_pg_upmap_items: Dict[PgId, List[Tuple[int, int]]] = {}
        self.old_pg_upmap_items: List[PgId] = []
        self.new_pg_upmap_primary: Dict[PgId, int] = {}
        self.old_pg_upmap_primary: List[PgId] = []

    def __repr__(self) -> str:
        return "<OSDMap.Incremental e%d%s>" % (self.epoch, " full" if self.fullmap else "")

    @classmethod
    def decode(cls, data) -> "Incremental":
        """
        Decode an incremental (wrapper version 7 or later: Ceph 12 on).

        @raise DecodeError: truncated or malformed, or an older encoding.
        """
        dec = Decoder(data)
        version, end = dec.start(7, "OSDMap::Incremental")
        if version < 7:
            raise DecodeError("OSDMap incremental encoding version %d predates Ceph 12" % version)
        inc = cls()
        v, cend = dec.start(9, "OSDMap::Incremental client data")
        inc.fsid = uuid.UUID(bytes=dec.raw(16))
        inc.epoch = dec.u32()
        inc.modified = utime_t.decode(dec)
        inc.new_pool_max = dec.i64()
        inc.new_flags = dec.i32()
        inc.fullmap = dec.blob()
        inc.crush = dec.blob()
        inc.new_max_osd = dec.i32()
        for _ in range(dec.count(14)):
            pool_id = dec.i64()
            inc.new_pools[pool_id] = Pool.decode(pool_id, dec)
        inc.new_pool_names = dec.map(Decoder.i64, Decoder.string, 12)
        inc.old_pools = [dec.i64() for _ in range(dec.count(8))]
        inc.new_up_client = dec.map(Decoder.i32, entity_addrvec_t.decode, 5)
        if v >= 5:
            inc.new_state = dec.map(Decoder.i32, Decoder.u32, 8)
        else:
            inc.new_state = dec.map(Decoder.i32, Decoder.u8, 5)
        inc.new_weight = dec.map(Decoder.i32, Decoder.u32, 8)
        inc.new_pg_temp = _pg_map(dec, _i32_list)      # type: ignore[assignment]
        inc.new_primary_temp = _pg_map(dec, Decoder.i32)   # type: ignore[assignment]
        if v >= 2:
            inc.new_primary_affinity = dec.map(Decoder.i32, Decoder.u32, 8)
        if v >= 3:
            inc.new_erasure_code_profiles = dec.map(
                Decoder.string, lambda d: d.map(Decoder.string, Decoder.string, 8), 8)
            inc.old_erasure_code_profiles = dec.string_list()
        if v >= 4:
            inc.new_pg_upmap = _pg_map(dec, _i32_list)     # type: ignore[assignment]
            inc.old_pg_upmap = [PgId.decode(dec) for _ in range(dec.count(17))]
            inc.new_pg_upmap_items = _pg_map(dec, _i32_pairs)  # type: ignore[assignment]
            inc.old_pg_upmap_items = [PgId.decode(dec) for _ in range(dec.count(17))]
        if v >= 6:
            _skip_snap_maps(dec)
        if v >= 8:
            utime_t.decode(dec)     # new_last_up_change
            utime_t.decode(dec)     # new_last_in_change
        if v >= 9:
            inc.new_pg_upmap_primary = _pg_map(dec, Decoder.i32)   # type: ignore[assignment]
            inc.old_pg_upmap_primary = [PgId.decode(dec) for _ in range(dec.count(17))]
        dec.finish(cend)
        dec.finish(end)
        return inc


def apply_incremental(m: "OSDMap", inc: Incremental) -> "OSDMap":
    """
    The map one epoch on (C{OSDMap::apply_incremental}, client-usable
    fields): a new L{OSDMap} when C{inc} carries a full map, else C{m}
    changed in place.

    @raise PlacementError: the incremental is not for the next epoch or
        names another cluster.
    """
    if inc.epoch != m.epoch + 1:
        raise PlacementError("incremental for epoch %d does not follow epoch %d" % (inc.epoch, m.epoch))
    if inc.epoch != 1 and inc.fsid != m.fsid:
        raise PlacementError("incremental for cluster %s applied to a map of %s" % (inc.fsid, m.fsid))
    if inc.fullmap:
        return OSDMap.decode(inc.fullmap)
    m.fsid = inc.fsid
    m.epoch = inc.epoch
    m.modified = inc.modified
    if inc.new_flags >= 0:
        m.flags = inc.new_flags
    if inc.new_max_osd >= 0:
        m.set_max_osd(inc.new_max_osd)
    if inc.new_pool_max != -1:
        m.pool_max = inc.new_pool_max
    for pool_id, pool in inc.new_pools.items():
        pool.last_change = m.epoch
        pool.name = m.pools[pool_id].name if pool_id in m.pools else ""
        m.pools[pool_id] = pool
    for pool_id, name in inc.new_pool_names.items():
        if pool_id in m.pools:
            m.pools[pool_id].name = name
    for pool_id in inc.old_pools:
        m.pools.pop(pool_id, None)
    for osd, weight in inc.new_weight.items():
        m.osd_weight[osd] = weight
        if weight:
            m.osd_state[osd] = (m.osd_state[osd] | OSD_EXISTS) & ~(_OSD_AUTOOUT | _OSD_NEW)
    for osd, affinity in inc.new_primary_affinity.items():
        m._set_primary_affinity(osd, affinity)
    for name in inc.old_erasure_code_profiles:
        m.erasure_code_profiles.pop(name, None)
    m.erasure_code_profiles.update(inc.new_erasure_code_profiles)
    for osd, change in inc.new_state.items():
        s = change or OSD_UP
        if m.osd_state[osd] & OSD_EXISTS and s & OSD_EXISTS:
            # the OSD is destroyed: forget it
            m._set_primary_affinity(osd, DEFAULT_PRIMARY_AFFINITY)
            m.osd_addrs[osd] = entity_addrvec_t(())
            m.osd_state[osd] = 0
        else:
            m.osd_state[osd] ^= s
    for osd, addrs in inc.new_up_client.items():
        m.osd_state[osd] = (m.osd_state[osd] | OSD_EXISTS | OSD_UP) & ~_OSD_STOP
        m.osd_addrs[osd] = addrs
    for pg, osds in inc.new_pg_temp.items():
        if osds:
            m.pg_temp[pg] = list(osds)
        else:
            m.pg_temp.pop(pg, None)
    for pg, osd in inc.new_primary_temp.items():
        if osd == -1:
            m.primary_temp.pop(pg, None)
        else:
            m.primary_temp[pg] = osd
    m.pg_upmap.update(inc.new_pg_upmap)
    for pg in inc.old_pg_upmap:
        m.pg_upmap.pop(pg, None)
    m.pg_upmap_items.update(inc.new_pg_upmap_items)
    for pg in inc.old_pg_upmap_items:
        m.pg_upmap_items.pop(pg, None)
    m.pg_upmap_primaries.update(inc.new_pg_upmap_primary)
    for pg in inc.old_pg_upmap_primary:
        m.pg_upmap_primaries.pop(pg, None)
    if inc.crush:
        m.crush = CrushMap.decode(inc.crush)
        m.crush_version += 1
    return m


def advance(current: Optional["OSDMap"], fsid: uuid.UUID, incremental_maps: Dict[int, bytes],
            maps: Dict[int, bytes], oldest_map: int = 0) -> Tuple[Optional["OSDMap"], Optional[int]]:
    """
    Bring C{current} (or no map yet) forward with the maps of one MOSDMap,
    as Ceph's C{Objecter::handle_osd_map} does: incrementals applied in
    order, a full map taken where it is the next epoch or the first map, a
    gap below the sender's oldest kept epoch jumped over.

    Returns (the map, now or still None; the epoch to subscribe from when
    maps are missing, else None): C{0} asks for the newest full map, C{n}
    for everything from epoch n.  Maps of another cluster are ignored.

    @raise DecodeError: a map in the message does not decode.
    """
    epochs = set(incremental_maps) | set(maps)
    if not epochs:
        return current, None
    if current is not None and fsid != current.fsid:
        return current, None
    last = max(epochs)
    if current is None or current.epoch == 0:
        if last in maps:
            return OSDMap.decode(maps[last]), None
        if 1 not in incremental_maps:
            return current, 0
        # from the beginning: epoch 1's incremental carries the first map
        current = OSDMap()
    if last <= current.epoch:
        return current, None
    e = current.epoch + 1
    while e <= last:
        if e in incremental_maps and current.epoch == e - 1:
            current = current.apply(Incremental.decode(incremental_maps[e]))
        elif e in maps:
            current = OSDMap.decode(maps[e])
        elif oldest_map and e < oldest_map:
            # the sender trimmed these: take what it has from there on
            e = oldest_map
            continue
        else:
            return current, current.epoch + 1
        e += 1
    return current, None


__all__ = [
    "OSDMap", "Incremental", "apply_incremental", "advance", "Pool", "PgId", "Placement", "PlacementError",
    "str_hash", "str_hash_rjenkins", "str_hash_linux", "stable_mod", "OSD_EXISTS", "OSD_UP", "OSD_IN", "OSD_OUT",
]
