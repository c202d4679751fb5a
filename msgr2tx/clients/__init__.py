"""
What a Ceph peer does on top of the msgr2 transport, built with Twisted:
L{monclient} (monitor sessions, hunting, commands and subscriptions),
L{moncommands} (the C{ceph} CLI's command words as monitor JSON),
L{mgr} (registering as a cluster's manager), L{follower} (keeping an
OSDMap current from the monitors) and L{objecter} (object operations sent
to the primary OSD of each PG).  They stand on L{msgr2tx.messages} and the
Ceph types of L{msgr2tx.ceph}; nothing below imports them.
"""
