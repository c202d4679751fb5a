"""
Ceph message types by subsystem, with no I/O.  Each module registers its
types with the core's registry (L{msgr2tx.core.messages.register}) when it
is imported; nothing in L{msgr2tx.core} imports this package.

The monitor, auth and manager messages still live in
L{msgr2tx.core.messages}; new subsystems start here.
"""
