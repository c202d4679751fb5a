"""
OSD map messages.

L{MOSDMap} (C{CEPH_MSG_OSD_MAP}, 41) as C{src/messages/MOSDMap.h} encodes
it in Ceph 16.2 to 20.2: the cluster fsid, incremental and full OSDMaps by
epoch (each an encoded blob for L{msgr2tx.ceph.osdmap}), and the sender's
oldest and newest epochs.
"""

import uuid
from typing import Dict

from msgr2tx.core.encoding import Decoder, Encoder
from msgr2tx.core.messages import Message, fsid_bytes, register

CEPH_MSG_OSD_MAP = 41


def _blob_map(dec: Decoder) -> Dict[int, bytes]:
    return {dec.u32(): dec.blob() for _ in range(dec.count(8))}


@register
class MOSDMap(Message):
    """
    OSDMaps from a monitor or an OSD.

    C{incremental_maps} and C{maps} map an epoch to its encoded
    incremental or full map (bytes); C{oldest_map} is the oldest epoch the
    sender keeps (Ceph's C{cluster_osdmap_trim_lower_bound}), C{newest_map}
    its newest.
    """

    TYPE = CEPH_MSG_OSD_MAP
    HEAD_VERSION = 4
    COMPAT_VERSION = 3
    NAME = "osd_map"
    FIELDS = ("fsid", "incremental_maps", "maps", "oldest_map", "newest_map")

    def __init__(self, fsid=bytes(16), incremental_maps=None, maps=None, oldest_map: int = 0,
                 newest_map: int = 0, **header) -> None:
        super().__init__(**header)
        #: the cluster fsid, 16 bytes (a uuid.UUID or its text is accepted)
        self.fsid = fsid_bytes(fsid)
        self.incremental_maps: Dict[int, bytes] = dict(incremental_maps or {})
        self.maps: Dict[int, bytes] = dict(maps or {})
        self.oldest_map = oldest_map
        self.newest_map = newest_map

    @property
    def fsid_uuid(self) -> uuid.UUID:
        return uuid.UUID(bytes=self.fsid)

    @property
    def first(self) -> int:
        """The lowest epoch carried (full or incremental), or 0."""
        epochs = list(self.maps) + list(self.incremental_maps)
        return min(epochs) if epochs else 0

    @property
    def last(self) -> int:
        """The highest epoch carried, or 0."""
        epochs = list(self.maps) + list(self.incremental_maps)
        return max(epochs) if epochs else 0

    def encode_front(self, enc: Encoder, features: int) -> None:
        enc.raw(self.fsid)
        for blobs in (self.incremental_maps, self.maps):
            enc.u32(len(blobs))
            for epoch in sorted(blobs):
                enc.u32(epoch).blob(blobs[epoch])
        enc.u32(self.oldest_map).u32(self.newest_map)
        enc.u32(0)      # gap_removed_snaps, empty since octopus

    def decode_front(self, dec: Decoder, features: int) -> None:
        self.fsid = dec.raw(16)
        self.incremental_maps = _blob_map(dec)
        self.maps = _blob_map(dec)
        if self.version >= 2:
            self.oldest_map = dec.u32()
            self.newest_map = dec.u32()

    def _repr_fields(self):
        return ["fsid=%s" % self.fsid_uuid, "incremental=%s" % sorted(self.incremental_maps),
                "full=%s" % sorted(self.maps), "oldest=%d" % self.oldest_map, "newest=%d" % self.newest_map]


__all__ = ["MOSDMap", "CEPH_MSG_OSD_MAP"]
