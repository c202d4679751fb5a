"""
The zope interfaces of msgr2tx.

Auth providers are found as Twisted plugins providing L{IAuthProviderFactory}.
Their handlers hold no I/O state: they compute payloads and keys.  A server
handler whose lookup may block returns a Deferred; the protocol adapter
waits for it with C{maybeDeferred}.
"""

from zope.interface import Attribute, Interface


class IAuthProviderFactory(Interface):
    """A kind of msgr2 authentication (C{none}, C{cephx}, ...)."""

    name = Attribute("The short name used on command lines, e.g. 'none'.")
    methodID = Attribute("The numeric Ceph auth method (CEPH_AUTH_*).")
    description = Attribute("One line for --help-auth.")
    argStringFormat = Attribute("What the argument string after 'name:' may hold.")

    def clientHandler(argstring="", **kwargs):
        """Return an L{IClientAuthHandler} for one connection attempt."""

    def serverHandler(argstring="", **kwargs):
        """Return an L{IServerAuthHandler}, shared by a server's connections."""


class IClientAuthHandler(Interface):
    """The client half of one auth method."""

    method = Attribute("The numeric auth method.")
    allowed_modes = Attribute("Connection modes this method can key.")

    def build_request(peer_entity_type):
        """Return the AUTH_REQUEST payload (bytes) for a peer of that type."""

    def handle_reply_more(payload):
        """Return the AUTH_REQUEST_MORE payload answering AUTH_REPLY_MORE."""

    def handle_done(global_id, con_mode, payload):
        """
        Check AUTH_DONE and return C{(session_key, connection_secret)} as
        bytes (both empty for methods without keys).  Raise L{AuthRejected}
        if the payload does not verify.  A handler may also have
        C{session_expires()}: when the ticket behind that key expires
        (seconds since the epoch, 0: not known), after which msgr2tx tries
        no fast reconnect with it.
        """


class IServerAuthHandler(Interface):
    """The server half of one auth method."""

    method = Attribute("The numeric auth method.")
    allowed_modes = Attribute("Connection modes this method can key.")

    def handle_request(request):
        """
        Answer an L{msgr2tx.auth.AuthRequestInfo}.  Return (or fire a
        Deferred with) an L{msgr2tx.auth.AuthDone}, L{msgr2tx.auth.AuthMore}
        or L{msgr2tx.auth.AuthReject}.
        """


class IMsgr2Receiver(Interface):
    """What an application implements to receive messages and session events."""

    def connectionReady(protocol, info):
        """The handshake reached READY; C{info} is a L{msgr2tx.protocol.PeerInfo}."""

    def messageReceived(protocol, message):
        """A message arrived on a READY connection."""

    def connectionLost(protocol, reason):
        """The connection closed; C{reason} is a Failure."""


class IMsgr2ServiceFactory(Interface):
    """A server dispatcher selectable with C{twistd msgr2 --service NAME}."""

    name = Attribute("The service name.")
    description = Attribute("One line for --help-services.")

    def makeReceiver(argstring=""):
        """Return an L{IMsgr2Receiver} for the server."""
