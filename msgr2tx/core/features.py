"""
Ceph connection feature bits, as a Pacific (16.2) daemon or client knows them.

Every connection carries a 64-bit feature mask.  Ceph has reused some bits
for new meanings; a reused bit is only trusted together with an
"incarnation" marker (bit 57 for the second meaning, bits 57 and 28 for the
third), which is what the C{CEPH_FEATUREMASK_*} values and L{has_feature}
encode.  A plain C{CEPH_FEATURE_*} value is the single bit.

Retired meanings of a bit (MONCLOCKCHECK, OMAP, QUERY_T, ...) are not given
names here: Pacific neither sends nor looks at them.

This module is pure data and imports nothing from Twisted.
"""

from typing import Dict, List, Tuple

# Incarnation markers: a bit's second meaning is only valid when bit 57
# (SERVER_JEWEL) is also set, its third meaning when bits 57 and 28
# (SERVER_MIMIC) are.
CEPH_FEATURE_INCARNATION_1 = 0
CEPH_FEATURE_INCARNATION_2 = 1 << 57
CEPH_FEATURE_INCARNATION_3 = (1 << 57) | (1 << 28)

_INCARNATIONS = {
    1: CEPH_FEATURE_INCARNATION_1,
    2: CEPH_FEATURE_INCARNATION_2,
    3: CEPH_FEATURE_INCARNATION_3,
}

# (bit, incarnation, name) for every feature Pacific defines as live or
# deprecated-but-advertised.  Several names may share one bit; the first name
# listed for a bit is the one feature_names() shows.
_DEFINITIONS: Tuple[Tuple[int, int, str], ...] = (
    (0, 1, "UID"),
    (1, 1, "NOSRCADDR"),
    (2, 3, "SERVER_NAUTILUS"),
    (3, 1, "FLOCK"),
    (4, 1, "SUBSCRIBE2"),
    (5, 1, "MONNAMES"),
    (6, 1, "RECONNECT_SEQ"),
    (7, 1, "DIRLAYOUTHASH"),
    (8, 1, "OBJECTLOCATOR"),
    (9, 1, "PGID64"),
    (10, 1, "INCSUBOSDMAP"),
    (11, 1, "PGPOOL3"),
    (12, 1, "OSDREPLYMUX"),
    (13, 1, "OSDENC"),
    (14, 2, "SERVER_KRAKEN"),
    (15, 1, "MONENC"),
    (16, 3, "SERVER_OCTOPUS"),
    (16, 3, "OSD_REPOP_MLCOD"),
    (17, 3, "OS_PERF_STAT_NS"),
    (18, 1, "CRUSH_TUNABLES"),
    (19, 2, "OSD_PGLOG_HARDLIMIT"),
    (20, 3, "SERVER_PACIFIC"),
    (21, 2, "SERVER_LUMINOUS"),
    (21, 2, "RESEND_ON_SPLIT"),
    (21, 2, "RADOS_BACKOFF"),
    (21, 2, "OSDMAP_PG_UPMAP"),
    (21, 2, "CRUSH_CHOOSE_ARGS"),
    (22, 2, "OSD_FIXED_COLLECTION_LIST"),
    (23, 1, "MSG_AUTH"),
    (24, 2, "RECOVERY_RESERVATION_2"),
    (25, 1, "CRUSH_TUNABLES2"),
    (26, 1, "CREATEPOOLID"),
    (27, 1, "REPLY_CREATE_INODE"),
    (28, 2, "SERVER_MIMIC"),
    (29, 1, "MDSENC"),
    (30, 1, "OSDHASHPSPOOL"),
    (31, 1, "MON_SINGLE_PAXOS"),          # deprecated, still advertised
    (32, 3, "STRETCH_MODE"),
    (34, 1, "RANGE_BLOCKLIST"),         # 16.2.15 advertises it (seen on a real mon)
    (35, 1, "OSD_CACHEPOOL"),
    (36, 1, "CRUSH_V2"),
    (37, 1, "EXPORT_PEER"),
    (39, 1, "OSDMAP_ENC"),
    (40, 1, "MDS_INLINE_DATA"),
    (41, 1, "CRUSH_TUNABLES3"),
    (41, 1, "OSD_PRIMARY_AFFINITY"),
    (42, 1, "MSGR_KEEPALIVE2"),
    (43, 1, "OSD_POOLRESEND"),
    (46, 1, "OSD_FADVISE_FLAGS"),
    (47, 1, "MDS_QUOTA"),
    (48, 1, "CRUSH_V4"),
    (56, 1, "NEW_OSDOP_ENCODING"),
    (57, 1, "SERVER_JEWEL"),
    (57, 1, "MON_STATEFUL_SUB"),
    (58, 1, "CRUSH_TUNABLES5"),
    (58, 1, "NEW_OSDOPREPLY_ENCODING"),
    (58, 1, "FS_FILE_LAYOUT_V2"),
    (59, 1, "MSG_ADDR2"),
    (59, 1, "FS_BTIME"),
    (59, 1, "FS_CHANGE_ATTR"),
    (60, 1, "OSD_RECOVERY_DELETES"),
    (61, 1, "CEPHX_V2"),
    (62, 1, "RESERVED"),                  # sentinel; never advertised
    (63, 1, "RESERVED_BROKEN"),           # deprecated; never advertised
)

CEPH_FEATURE_UID = 1 << 0
CEPH_FEATURE_NOSRCADDR = 1 << 1
CEPH_FEATURE_SERVER_NAUTILUS = 1 << 2
CEPH_FEATURE_FLOCK = 1 << 3
CEPH_FEATURE_SUBSCRIBE2 = 1 << 4
CEPH_FEATURE_MONNAMES = 1 << 5
CEPH_FEATURE_RECONNECT_SEQ = 1 << 6
CEPH_FEATURE_DIRLAYOUTHASH = 1 << 7
CEPH_FEATURE_OBJECTLOCATOR = 1 << 8
CEPH_FEATURE_PGID64 = 1 << 9
CEPH_FEATURE_INCSUBOSDMAP = 1 << 10
CEPH_FEATURE_PGPOOL3 = 1 << 11
CEPH_FEATURE_OSDREPLYMUX = 1 << 12
CEPH_FEATURE_OSDENC = 1 << 13
CEPH_FEATURE_SERVER_KRAKEN = 1 << 14
CEPH_FEATURE_MONENC = 1 << 15
CEPH_FEATURE_SERVER_OCTOPUS = 1 << 16
CEPH_FEATURE_OSD_REPOP_MLCOD = 1 << 16
CEPH_FEATURE_OS_PERF_STAT_NS = 1 << 17
CEPH_FEATURE_CRUSH_TUNABLES = 1 << 18
CEPH_FEATURE_OSD_PGLOG_HARDLIMIT = 1 << 19
CEPH_FEATURE_SERVER_PACIFIC = 1 << 20
CEPH_FEATURE_SERVER_LUMINOUS = 1 << 21
CEPH_FEATURE_RESEND_ON_SPLIT = 1 << 21
CEPH_FEATURE_RADOS_BACKOFF = 1 << 21
CEPH_FEATURE_OSDMAP_PG_UPMAP = 1 << 21
CEPH_FEATURE_CRUSH_CHOOSE_ARGS = 1 << 21
CEPH_FEATURE_OSD_FIXED_COLLECTION_LIST = 1 << 22
CEPH_FEATURE_MSG_AUTH = 1 << 23
CEPH_FEATURE_RECOVERY_RESERVATION_2 = 1 << 24
CEPH_FEATURE_CRUSH_TUNABLES2 = 1 << 25
CEPH_FEATURE_CREATEPOOLID = 1 << 26
CEPH_FEATURE_REPLY_CREATE_INODE = 1 << 27
CEPH_FEATURE_SERVER_MIMIC = 1 << 28
CEPH_FEATURE_MDSENC = 1 << 29
CEPH_FEATURE_OSDHASHPSPOOL = 1 << 30
CEPH_FEATURE_MON_SINGLE_PAXOS = 1 << 31
CEPH_FEATURE_STRETCH_MODE = 1 << 32
CEPH_FEATURE_RANGE_BLOCKLIST = 1 << 34
CEPH_FEATURE_OSD_CACHEPOOL = 1 << 35
CEPH_FEATURE_CRUSH_V2 = 1 << 36
CEPH_FEATURE_EXPORT_PEER = 1 << 37
CEPH_FEATURE_OSDMAP_ENC = 1 << 39
CEPH_FEATURE_MDS_INLINE_DATA = 1 << 40
CEPH_FEATURE_CRUSH_TUNABLES3 = 1 << 41
CEPH_FEATURE_OSD_PRIMARY_AFFINITY = 1 << 41
CEPH_FEATURE_MSGR_KEEPALIVE2 = 1 << 42
CEPH_FEATURE_OSD_POOLRESEND = 1 << 43
CEPH_FEATURE_OSD_FADVISE_FLAGS = 1 << 46
CEPH_FEATURE_MDS_QUOTA = 1 << 47
CEPH_FEATURE_CRUSH_V4 = 1 << 48
CEPH_FEATURE_NEW_OSDOP_ENCODING = 1 << 56
CEPH_FEATURE_MON_STATEFUL_SUB = 1 << 57
CEPH_FEATURE_SERVER_JEWEL = 1 << 57
CEPH_FEATURE_CRUSH_TUNABLES5 = 1 << 58
CEPH_FEATURE_NEW_OSDOPREPLY_ENCODING = 1 << 58
CEPH_FEATURE_FS_FILE_LAYOUT_V2 = 1 << 58
CEPH_FEATURE_FS_BTIME = 1 << 59
CEPH_FEATURE_FS_CHANGE_ATTR = 1 << 59
CEPH_FEATURE_MSG_ADDR2 = 1 << 59
CEPH_FEATURE_OSD_RECOVERY_DELETES = 1 << 60
CEPH_FEATURE_CEPHX_V2 = 1 << 61
CEPH_FEATURE_RESERVED = 1 << 62
CEPH_FEATURE_RESERVED_BROKEN = 1 << 63

#: name -> bit value
FEATURES: Dict[str, int] = {name: 1 << bit for bit, _, name in _DEFINITIONS}
#: name -> bit value plus its incarnation marker
FEATUREMASKS: Dict[str, int] = {
    name: (1 << bit) | _INCARNATIONS[inc] for bit, inc, name in _DEFINITIONS
}

CEPH_FEATUREMASK_SERVER_NAUTILUS = FEATUREMASKS["SERVER_NAUTILUS"]
CEPH_FEATUREMASK_SERVER_KRAKEN = FEATUREMASKS["SERVER_KRAKEN"]
CEPH_FEATUREMASK_SERVER_OCTOPUS = FEATUREMASKS["SERVER_OCTOPUS"]
CEPH_FEATUREMASK_OSD_REPOP_MLCOD = FEATUREMASKS["OSD_REPOP_MLCOD"]
CEPH_FEATUREMASK_SERVER_PACIFIC = FEATUREMASKS["SERVER_PACIFIC"]
CEPH_FEATUREMASK_SERVER_LUMINOUS = FEATUREMASKS["SERVER_LUMINOUS"]
CEPH_FEATUREMASK_SERVER_MIMIC = FEATUREMASKS["SERVER_MIMIC"]
CEPH_FEATUREMASK_STRETCH_MODE = FEATUREMASKS["STRETCH_MODE"]
CEPH_FEATUREMASK_MSG_ADDR2 = FEATUREMASKS["MSG_ADDR2"]
CEPH_FEATUREMASK_CEPHX_V2 = FEATUREMASKS["CEPHX_V2"]
#: Squid's CRUSH_MSR (bit 38, second incarnation): MSR rules and tunables in
#: the CRUSH map.  Not in CEPH_FEATURES_ALL (a Pacific build's set); a client
#: that decodes and runs MSR rules adds it, since a cluster whose map has MSR
#: rules requires it of every client (C{OSDMap::get_features})
CEPH_FEATUREMASK_CRUSH_MSR = (1 << 38) | CEPH_FEATURE_INCARNATION_2

# What a Pacific build advertises: every live feature above.  The four
# third-incarnation features go in as masks, which adds bits 57 and 28 (both
# already present through SERVER_JEWEL and SERVER_MIMIC).  OS_PERF_STAT_NS is
# defined but deliberately not advertised.
CEPH_FEATURES_ALL = (
    CEPH_FEATURE_UID
    | CEPH_FEATURE_NOSRCADDR
    | CEPH_FEATURE_FLOCK
    | CEPH_FEATURE_SUBSCRIBE2
    | CEPH_FEATURE_MONNAMES
    | CEPH_FEATURE_RECONNECT_SEQ
    | CEPH_FEATURE_DIRLAYOUTHASH
    | CEPH_FEATURE_OBJECTLOCATOR
    | CEPH_FEATURE_PGID64
    | CEPH_FEATURE_INCSUBOSDMAP
    | CEPH_FEATURE_PGPOOL3
    | CEPH_FEATURE_OSDREPLYMUX
    | CEPH_FEATURE_OSDENC
    | CEPH_FEATURE_MONENC
    | CEPH_FEATURE_CRUSH_TUNABLES
    | CEPH_FEATURE_MSG_AUTH
    | CEPH_FEATURE_CRUSH_TUNABLES2
    | CEPH_FEATURE_CREATEPOOLID
    | CEPH_FEATURE_REPLY_CREATE_INODE
    | CEPH_FEATURE_MDSENC
    | CEPH_FEATURE_OSDHASHPSPOOL
    | CEPH_FEATURE_NEW_OSDOP_ENCODING
    | CEPH_FEATURE_NEW_OSDOPREPLY_ENCODING
    | CEPH_FEATURE_MON_SINGLE_PAXOS
    | CEPH_FEATURE_RANGE_BLOCKLIST
    | CEPH_FEATURE_OSD_CACHEPOOL
    | CEPH_FEATURE_CRUSH_V2
    | CEPH_FEATURE_EXPORT_PEER
    | CEPH_FEATURE_OSDMAP_ENC
    | CEPH_FEATURE_MDS_INLINE_DATA
    | CEPH_FEATURE_CRUSH_TUNABLES3
    | CEPH_FEATURE_OSD_PRIMARY_AFFINITY
    | CEPH_FEATURE_MSGR_KEEPALIVE2
    | CEPH_FEATURE_OSD_POOLRESEND
    | CEPH_FEATURE_OSD_FADVISE_FLAGS
    | CEPH_FEATURE_MDS_QUOTA
    | CEPH_FEATURE_CRUSH_V4
    | CEPH_FEATURE_MON_STATEFUL_SUB
    | CEPH_FEATURE_CRUSH_TUNABLES5
    | CEPH_FEATURE_SERVER_JEWEL
    | CEPH_FEATURE_FS_FILE_LAYOUT_V2
    | CEPH_FEATURE_SERVER_KRAKEN
    | CEPH_FEATURE_FS_BTIME
    | CEPH_FEATURE_FS_CHANGE_ATTR
    | CEPH_FEATURE_MSG_ADDR2
    | CEPH_FEATURE_SERVER_LUMINOUS
    | CEPH_FEATURE_RESEND_ON_SPLIT
    | CEPH_FEATURE_RADOS_BACKOFF
    | CEPH_FEATURE_OSD_RECOVERY_DELETES
    | CEPH_FEATURE_SERVER_MIMIC
    | CEPH_FEATURE_RECOVERY_RESERVATION_2
    | CEPH_FEATURE_SERVER_NAUTILUS
    | CEPH_FEATURE_CEPHX_V2
    | CEPH_FEATURE_OSD_PGLOG_HARDLIMIT
    | CEPH_FEATUREMASK_SERVER_OCTOPUS
    | CEPH_FEATUREMASK_STRETCH_MODE
    | CEPH_FEATUREMASK_OSD_REPOP_MLCOD
    | CEPH_FEATUREMASK_SERVER_PACIFIC
    | CEPH_FEATURE_OSD_FIXED_COLLECTION_LIST
)
# the value a real 16.2.15 monitor and ceph CLI put in their ident frames
assert CEPH_FEATURES_ALL == 0x3F01CFBDFFFDFFFF

CEPH_FEATURES_SUPPORTED_DEFAULT = CEPH_FEATURES_ALL

# Userspace Ceph has no "required by default" constant; the kernel client's
# header defines it as 0.  What a msgr2 peer really must have is MSG_ADDR2,
# without which it cannot decode an entity_addrvec_t (Ceph's msgr2_required).
CEPH_FEATURES_REQUIRED_DEFAULT = 0
MSGR2_REQUIRED = CEPH_FEATUREMASK_MSG_ADDR2

# msgr2 frames are encoded as if the peer had these, whatever it advertised:
# the addresses inside frames always use the Nautilus-era encoding.
MSGR2_FRAME_ASSUMED = CEPH_FEATUREMASK_MSG_ADDR2 | CEPH_FEATUREMASK_SERVER_NAUTILUS

# msgr2 banner features (a separate 64-bit space, exchanged in the banner).
CEPH_MSGR2_FEATURE_REVISION_1 = 1 << 0
CEPH_MSGR2_FEATURE_COMPRESSION = 1 << 1   # Quincy and later; Pacific lacks it
CEPH_MSGR2_SUPPORTED_FEATURES = CEPH_MSGR2_FEATURE_REVISION_1  # as Pacific
CEPH_MSGR2_REQUIRED_FEATURES = 0                               # as Pacific

# msgr2tx's private banner bit, far above Ceph's (bits 0 and 1 so far): the
# peer speaks the fast reconnect (docs/protocol.md).  Advertised in the
# supported mask only; Ceph (16.2 to 20.2) checks only the peer's required
# mask against what it knows, so an unknown supported bit is ignored.
MSGR2TX_FEATURE_FAST_RECONNECT = 1 << 48


def has_feature(features: int, name: str) -> bool:
    """
    Whether C{features} has feature C{name} in the meaning Pacific gives it:
    the bit and its incarnation marker (Ceph's HAVE_FEATURE).
    """
    mask = FEATUREMASKS[name]
    return features & mask == mask


def _canonical_names() -> Dict[int, List[str]]:
    by_bit: Dict[int, List[str]] = {}
    for bit, _, name in _DEFINITIONS:
        by_bit.setdefault(bit, []).append(name)
    return by_bit


_NAMES_BY_BIT = _canonical_names()


def feature_names(features: int, aliases: bool = False) -> List[str]:
    """
    The names of the bits set in C{features}, lowest bit first.  Each bit is
    named once, by its first Pacific name, unless C{aliases} is true, in which
    case every name sharing the bit is listed.  Bits Pacific does not define
    come out as C{"bit<N>"}.
    """
    out: List[str] = []
    for bit in range(64):
        if not features >> bit & 1:
            continue
        names = _NAMES_BY_BIT.get(bit)
        if not names:
            out.append("bit%d" % bit)
        elif aliases:
            out.extend(names)
        else:
            out.append(names[0])
    return out


def format_features(features: int) -> str:
    """C{0x... [NAME|NAME|...]} for logs."""
    return "%#x [%s]" % (features, "|".join(feature_names(features)))


def missing_features(have: int, need: int) -> int:
    """The bits of C{need} that C{have} lacks."""
    return need & ~have


__all__ = [name for name in globals() if name.startswith(("CEPH_", "MSGR2_", "MSGR2TX_"))] + [
    "FEATURES", "FEATUREMASKS", "has_feature", "feature_names", "format_features",
    "missing_features",
]
