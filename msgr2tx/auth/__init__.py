"""
Auth providers and how to find them.

Providers are Twisted plugins (L{IAuthProviderFactory}) in
C{twisted/plugins/msgr2tx_auth.py}; a third party adds one with a file in its
own C{twisted/plugins/}.  Factories and L{msgr2tx.client.connect} also take
handler objects directly, so nothing depends on the plugin cache.
"""

from dataclasses import dataclass
from typing import Iterable, Optional, Tuple

from msgr2tx.core.encoding import EntityName
from msgr2tx.errors import Msgr2Error


class UnknownAuthMethod(Msgr2Error):
    """No installed auth plugin has that name."""


@dataclass(frozen=True, repr=False)
class AuthRequestInfo:
    """What a server handler sees of one AUTH_REQUEST or AUTH_REQUEST_MORE."""

    method: int
    con_mode: int
    payload: bytes
    more: bool
    peer_entity_type: int
    #: per-connection scratch space the handler may use between rounds
    state: dict

    def __repr__(self):
        return "AuthRequestInfo(method=%d, con_mode=%d, more=%r, <%d bytes>)" % (
            self.method, self.con_mode, self.more, len(self.payload))


@dataclass(frozen=True, repr=False)
class AuthDone:
    global_id: int
    payload: bytes = b""
    session_key: bytes = b""
    connection_secret: bytes = b""
    name: Optional[EntityName] = None
    #: when the ticket behind C{session_key} expires (seconds since the
    #: epoch; 0: never): a fast reconnect with that key is refused after it
    expires: float = 0.0

    def __repr__(self):
        return "AuthDone(global_id=%d, name=%s)" % (self.global_id, self.name)


@dataclass(frozen=True, repr=False)
class AuthMore:
    payload: bytes

    def __repr__(self):
        return "AuthMore(<%d bytes>)" % len(self.payload)


@dataclass(frozen=True)
class AuthReject:
    #: a negative errno, e.g. -errno.EACCES
    result: int
    reason: str = ""
    allowed_methods: Tuple[int, ...] = ()


class GlobalIdAllocator:
    """
    Hands out global_ids, counting up from C{first} (4100 by default).  A
    Ceph monitor's AuthMonitor allocates them for every auth method from one
    range, so a server's handlers share one allocator: see L{share_global_ids}.
    """

    def __init__(self, first: int = 4100) -> None:
        if first <= 0:
            raise ValueError("global_ids start above 0")
        self._next = first

    def __repr__(self) -> str:
        return "<GlobalIdAllocator next=%d>" % self._next

    def allocate(self) -> int:
        """The next unused global_id."""
        value = self._next
        self._next += 1
        return value


def share_global_ids(handlers, allocator: Optional[GlobalIdAllocator] = None) -> GlobalIdAllocator:
    """
    Make every server handler in C{handlers} that allocates global_ids (its
    C{global_ids} attribute is a L{GlobalIdAllocator}) use one allocator:
    C{allocator}, or the first handler's.  Returns the shared allocator.
    A server with several auth methods then never gives two clients the
    same global_id.
    """
    shared = allocator
    for handler in handlers:
        if not isinstance(getattr(handler, "global_ids", None), GlobalIdAllocator):
            continue
        if shared is None:
            shared = handler.global_ids
        else:
            handler.global_ids = shared
    return shared if shared is not None else GlobalIdAllocator()


def findAuthProviders():
    """Every installed L{IAuthProviderFactory} plugin."""
    from twisted.plugin import getPlugins

    from msgr2tx.interfaces import IAuthProviderFactory
    return list(getPlugins(IAuthProviderFactory))


def findAuthProvider(name: str):
    for provider in findAuthProviders():
        if provider.name == name:
            return provider
    raise UnknownAuthMethod("no auth plugin named %r (installed: %s)" % (
        name, ", ".join(sorted(p.name for p in findAuthProviders())) or "none"))


def method_name(method: int) -> str:
    """
    An auth method in words: C{none}, C{cephx}, C{gss}, else the name of
    the installed plugin whose C{methodID} it is, else C{method N}.
    """
    known = {1: "none", 2: "cephx", 4: "gss"}
    if method in known:
        return known[method]
    try:
        for provider in findAuthProviders():
            if getattr(provider, "methodID", None) == method:
                return str(provider.name)
    except Exception:  # a broken plugin must not hide the error being described
        pass
    return "method %d" % method


def mode_name(mode: int) -> str:
    """A connection mode in words: C{crc}, C{secure}, else C{mode N}."""
    return {1: "crc", 2: "secure"}.get(mode, "mode %d" % mode)


def parseAuthSpec(spec: str):
    """Split C{"cephx:keyring=/path:name=client.admin"} into (name, argstring)."""
    name, _, args = spec.partition(":")
    return name.strip(), args


def makeClientHandler(spec: str, **kwargs):
    name, args = parseAuthSpec(spec)
    return findAuthProvider(name).clientHandler(args, **kwargs)


def makeServerHandler(spec: str, **kwargs):
    name, args = parseAuthSpec(spec)
    return findAuthProvider(name).serverHandler(args, **kwargs)


def parseArgString(argstring: str, known: Optional[Iterable[str]] = None, method: str = "") -> dict:
    """
    C{key=value:key=value} into a dict (values may not contain ':').
    ValueError for an item that is not key=value, and, when C{known} names
    the arguments the method takes, for any other key (naming C{method}
    and the known ones), so that a misspelt argument is not ignored.
    """
    result = {}
    for item in filter(None, argstring.split(":")):
        key, eq, value = item.partition("=")
        if not eq:
            raise ValueError("auth argument %r is not key=value" % (item,))
        result[key.strip()] = value
    if known is not None:
        known = sorted(known)
        unknown = sorted(k for k in result if k not in known)
        if unknown:
            raise ValueError("auth %s: unknown argument%s %s (it takes %s)" % (
                method or "method", "s" if len(unknown) > 1 else "", ", ".join(unknown),
                ", ".join(known) or "none"))
    return result
