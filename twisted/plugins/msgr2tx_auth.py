# Auth provider plugins of msgr2tx.  Importing this file is cheap: the
# providers are small objects; no reactor, no file I/O.
from msgr2tx.auth.cephx import CephxAuthProvider
from msgr2tx.auth.none import NoneAuthProvider

none = NoneAuthProvider()
cephx = CephxAuthProvider()
