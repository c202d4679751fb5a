"""
What a Ceph client computes on top of the wire protocol, with no I/O:
CRUSH placement (L{msgr2tx.ceph.crush}) and the OSDMap with object-to-PG-to-OSD
mapping (L{msgr2tx.ceph.osdmap}).
"""
