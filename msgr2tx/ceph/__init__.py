"""
Ceph's own data types, with no I/O and no Twisted: the maps a client keeps
(L{monmap}, L{mgrmap}, L{osdmap}), the OSD-side types the object operations
use (L{osd_types}) and CRUSH placement (L{crush}), with object-to-PG-to-OSD
mapping in L{osdmap}.  The clients that fetch and use them live in
L{msgr2tx.clients}.
"""
