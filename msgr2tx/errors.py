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


class CommandError(Msgr2Error):
    """A monitor command returned a non-zero result."""

    def __init__(self, message, result=0, status="", output=b""):
        super().__init__(message)
        self.result = result
        self.status = status
        self.output = output


class NoncesExhausted(ProtocolError):
    """
    The AES-GCM nonce counter came back to where it started: the connection
    must end before any nonce is used twice (a new connection gets a new
    connection secret).
    """


class InjectedFault(ProtocolError):
    """A test breakpoint (L{msgr2tx.testing.Interceptor}) failed the connection on purpose."""
