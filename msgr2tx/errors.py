"""
The msgr2tx exception tree.

Everything msgr2tx raises derives from L{Msgr2Error}.  Errors about what the
peer put on the wire derive from L{RemoteProtocolError} and say what the peer
did wrong; errors about what our own code asked for derive from
L{LocalProtocolError}.

This module imports nothing from Twisted so that L{msgr2tx.core} can use it.
Exception messages never carry key material: callers pass lengths, tags and
names, never secrets.
"""


class Msgr2Error(Exception):
    """Root of every msgr2tx error."""


class ProtocolError(Msgr2Error):
    """The msgr2 conversation cannot go on."""


class LocalProtocolError(ProtocolError):
    """We were asked to do something the protocol does not allow now."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something the protocol does not allow."""


class DecodeError(RemoteProtocolError):
    """A payload or structure is truncated or malformed."""


class BannerError(RemoteProtocolError):
    """The peer's banner is not a msgr2 banner."""


class Msgr1Banner(BannerError):
    """The peer speaks the legacy msgr1 protocol."""


class MissingFeatures(RemoteProtocolError):
    """One side requires msgr2 features that the other does not support."""

    def __init__(self, message, missing=0):
        super().__init__(message)
        self.missing = missing


class FramingError(RemoteProtocolError):
    """A frame violates the msgr2 framing rules."""


class BadSegmentCount(FramingError):
    """The preamble declares zero segments or more than four."""


class FrameTooLarge(FramingError):
    """A segment or frame is longer than the configured maximum."""


class CrcMismatch(FramingError):
    """A preamble or segment crc32c does not match its bytes."""


class AuthTagMismatch(FramingError):
    """An AES-GCM authentication tag did not verify."""


class UnknownTag(FramingError):
    """The preamble names a frame tag that msgr2 does not define."""


class CompressionError(FramingError):
    """
    A compressed frame the peer should not have sent: compression was not
    agreed on this connection, or a segment does not decompress.
    """


class UnexpectedFrame(RemoteProtocolError):
    """A frame arrived in a state where the protocol does not allow it."""


class AuthError(ProtocolError):
    """Authentication failed."""


class AuthBadMethod(AuthError):
    """The peer refused every auth method or connection mode we offered."""

    def __init__(self, message, method=0, result=0, allowed_methods=(), allowed_modes=()):
        super().__init__(message)
        self.method = method
        self.result = result
        self.allowed_methods = tuple(allowed_methods)
        self.allowed_modes = tuple(allowed_modes)


class AuthRejected(AuthError):
    """The peer's credentials or proof were refused."""


class SignatureMismatch(AuthError, RemoteProtocolError):
    """The peer's AUTH_SIGNATURE does not cover what we sent."""


class ResumeRefused(AuthError):
    """
    A fast reconnect (msgr2tx's session resume, docs/protocol.md) was
    refused.  On the server it names the reason the request failed; the
    server then answers AUTH_BAD_METHOD and the client, seeing the same
    typed error (from the errno), authenticates with its ordinary method on
    the same connection.  Only raised to the application when no ordinary
    method is left to fall back on.
    """


class ResumeNotNegotiated(ResumeRefused):
    """
    The fast reconnect method was used without both banners offering the
    MSGR2TX_FAST_RECONNECT bit (a peer that strips the bit), or the server
    does not know the method at all (a Ceph server: -EOPNOTSUPP).
    """


class ResumeUnknownSession(ResumeRefused):
    """The server has no lossless session with those cookies (it restarted, or reset the session)."""


class ResumeTampered(ResumeRefused):
    """A fast reconnect request or reply is malformed or its proof does not verify (wrong key, changed bytes)."""


class ResumeReplayed(ResumeRefused):
    """A fast reconnect request with the global_seq the server last accepted for the session: a replay."""


class ResumeStale(ResumeRefused):
    """A fast reconnect request with a global_seq below the last one the server saw for the session."""


class ResumeExpired(ResumeRefused):
    """The ticket whose session key the fast reconnect would use has expired: authenticate anew."""


class ResumeFailed(AuthError, RemoteProtocolError):
    """
    The server accepted our fast reconnect with a reply that does not prove
    it holds the session key (or is malformed): the connection is closed.
    """


class IdentMismatch(RemoteProtocolError):
    """The peer's ident frame names an address or entity we did not expect."""


class PeerTypeMismatch(IdentMismatch):
    """
    The peer's HELLO names an entity type other than the one we meant to
    reach (say an OSD where we dialled a monitor): the connection ends
    before auth.  C{expected} and C{actual} are CEPH_ENTITY_TYPE_* values.
    """

    def __init__(self, message, expected=0, actual=0):
        super().__init__(message)
        self.expected = expected
        self.actual = actual


class SessionReset(Msgr2Error):
    """The peer reset our session; queued messages were dropped."""


class HandshakeTimeout(Msgr2Error):
    """The handshake did not reach READY in time."""


class KeepaliveTimeout(Msgr2Error):
    """The peer went silent for longer than the keepalive timeout."""


class ConnectionClosed(Msgr2Error):
    """The connection closed before the operation completed."""


class NoMonitorSession(ConnectionClosed):
    """
    No monitor session came up: the hunt ran out of time, or (when asked to
    give up after one round) every monitor dialled failed.  C{failures}
    lists C{(name, address, error)} for each monitor's last failed attempt,
    the error being what the connection raised (a refused TCP connect, a
    handshake timeout, ...); the message names each cause.
    """

    def __init__(self, message, failures=()):
        super().__init__(message)
        self.failures = list(failures)


class NoOSDMap(ConnectionClosed):
    """
    The monitor session is up but the monitor sent no OSDMap in time: the
    peer is not a Ceph monitor (say an echo server that still answered the
    handshake as one), or a monitor that cannot serve maps (out of quorum).
    C{monitor} names the monitor (C{"mon.a (v2:...)"}).
    """

    def __init__(self, message, monitor=None):
        super().__init__(message)
        self.monitor = monitor


class CommandError(Msgr2Error):
    """A monitor command returned a non-zero result."""

    def __init__(self, message, result=0, status="", output=b""):
        super().__init__(message)
        self.result = result
        self.status = status
        self.output = output


class CommandTimeout(CommandError):
    """A monitor command or version request got no answer within its overall timeout."""


class NoMonitors(Msgr2Error):
    """No monitor address to dial: an empty list, only v1 addresses, or names that resolve to nothing."""


class NoncesExhausted(ProtocolError):
    """
    The AES-GCM nonce counter came back to where it started: the connection
    must end before any nonce is used twice (a new connection gets a new
    connection secret).
    """


class InjectedFault(ProtocolError):
    """A test breakpoint (L{msgr2tx.testing.Interceptor}) failed the connection on purpose."""


class SpeculationFailed(ProtocolError):
    """
    A speculative first flight (banner, HELLO and AUTH_REQUEST sent before
    the peer's banner arrived) assumed a peer that is not the one that
    answered: its banner picks the other frame revision, or its HELLO names
    another entity type than the one the AUTH_REQUEST was built for.  The
    frames already sent cannot be taken back, so the connection is closed;
    dial again without speculation (L{msgr2tx.client.connect} does so once
    by itself).
    """


class ConfError(Msgr2Error, ValueError):
    """A ceph.conf, C{CEPH_ARGS} or C{mon_host} value cannot be read; the message names the file and line."""


class OperatorError(Msgr2Error):
    """
    A failure explained for the person running a command: what happened,
    where (C{address}), at which step of the conversation (C{stage}), and
    what to do.  C{kind} is a short stable word for scripts (the C{error}
    field of the CLI's JSON error object).  The message never holds a key.
    """

    kind = "failed"

    def __init__(self, message, address=None, stage=None):
        super().__init__(message)
        self.address = address
        self.stage = stage

    def to_json(self) -> dict:
        return {"error": self.kind, "message": str(self), "address": self.address, "stage": self.stage}


class ConnectFailed(OperatorError):
    """No TCP connection: refused, unreachable, a name that does not resolve, or no answer in time."""

    kind = "connect"


class TLSFailed(OperatorError):
    """
    The TLS layer of a C{tls:} endpoint failed: the peer's certificate does
    not name the host we asked for, is not signed by a CA we trust, or the
    peer does not speak TLS.
    """

    kind = "tls"


class PeerSilent(OperatorError):
    """The peer accepted the connection but stopped answering (or never started) within the timeout."""

    kind = "timeout"


class LocalFileError(OperatorError):
    """A local file the command was to read or write could not be (C{msgr2tx rados put/get})."""

    kind = "file"


class RequestsHeld(OperatorError):
    """
    The cluster held the operation back until the timeout: a write to a
    full pool, or any request while the pause flags are set (Ceph's
    Objecter holds them until a map lifts the condition).
    """

    kind = "held"


class NotMsgr2Peer(OperatorError):
    """The peer does not speak msgr2 (another protocol, or Ceph's legacy msgr1)."""

    kind = "not-msgr2"


class WrongPeerType(OperatorError):
    """The peer completed the handshake but is not the kind of daemon the command needs."""

    kind = "wrong-peer"


class PeerClosed(OperatorError):
    """The peer closed the connection during a named stage."""

    kind = "closed"


class KeyRefused(OperatorError):
    """The peer refused our cephx key (wrong key, or an entity it does not know)."""

    kind = "key-refused"


class ModeMismatch(OperatorError):
    """The peer allows none of the connection modes (crc, secure) we offered."""

    kind = "mode"


class AuthMethodMismatch(OperatorError):
    """The peer allows none of the auth methods (none, cephx) we offered."""

    kind = "auth-method"


class NoCredentials(OperatorError):
    """cephx is required but no key was found (no keyring, key or keyfile)."""

    kind = "no-key"


class CommandUsageError(OperatorError):
    """Monitor command words that match none of the monitor's command descriptions (or their arguments)."""

    kind = "usage"


class RadosError(Msgr2Error):
    """
    An object operation failed.  C{errno} is the positive errno the OSD
    returned (0 when the failure is ours, as for a timeout); C{pool} and
    C{oid} name the pool and object (None when not about one object).
    """

    def __init__(self, message, errno=0, pool=None, oid=None):
        super().__init__(message)
        self.errno = errno
        self.pool = pool
        self.oid = oid

    def to_json(self) -> dict:
        """The CLI's JSON error object: kind C{rados}, with the errno's name (None for our own failures)."""
        import errno as _errno
        return {"error": "rados", "message": str(self), "address": None, "stage": None,
                "errno": _errno.errorcode.get(self.errno) if self.errno else None,
                "pool": self.pool, "oid": self.oid}


class ObjectNotFound(RadosError):
    """The object (or the pool it was looked for in) does not exist: ENOENT."""


class ObjectExists(RadosError):
    """An exclusive create found the object already there: EEXIST."""


class NoData(RadosError):
    """The object has no such attribute: ENODATA."""


class PermissionDenied(RadosError):
    """The OSD refused the operation to our entity (its caps): EPERM or EACCES."""


class OperationNotSupported(RadosError):
    """
    The OSD refused the operation as unsupported for this pool or object:
    EOPNOTSUPP.  On an erasure-coded pool Ceph refuses every omap operation,
    and (unless the pool has C{allow_ec_overwrites}) any write that is not a
    whole-object write or a stripe-aligned append (C{pg_pool_t::supports_omap},
    C{requires_aligned_append}).
    """


class PoolNotFound(RadosError):
    """No pool of that name or id in the current osdmap."""


class OpTimeout(RadosError):
    """The operation did not complete within its timeout; it may or may not have taken effect."""
