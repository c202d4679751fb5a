"""
AUTH_NONE: the client names itself and the server believes it.

Payload (client to server): u8 mode (10 towards a monitor, 1 as an
authorizer towards any other daemon), EntityName, u64 global_id.  The server
answers AUTH_DONE straight away with an empty payload, no session key and no
connection secret, so only crc mode is possible.
"""

from twisted.plugin import IPlugin
from zope.interface import implementer

from msgr2tx.auth import AuthDone, GlobalIdAllocator, parseArgString
from msgr2tx.core.constants import AUTH_MODE_AUTHORIZER, AUTH_MODE_MON, AuthMethod, ConnectionMode
from msgr2tx.core.encoding import Decoder, Encoder, EntityName, EntityType
from msgr2tx.errors import AuthRejected, DecodeError
from msgr2tx.interfaces import (
    IAuthProviderFactory, IClientAuthHandler, IServerAuthHandler,
)

CRC_ONLY = (ConnectionMode.CRC,)


def encode_none_request(name: EntityName, global_id: int, to_monitor: bool) -> bytes:
    enc = Encoder()
    enc.u8(AUTH_MODE_MON if to_monitor else AUTH_MODE_AUTHORIZER)
    name.encode(enc)
    enc.u64(global_id)
    return enc.getvalue()


def decode_none_request(payload: bytes):
    """Returns (mode, EntityName, global_id)."""
    dec = Decoder(payload)
    mode = dec.u8()
    name = EntityName.decode(dec)
    global_id = dec.u64()
    return mode, name, global_id


@implementer(IClientAuthHandler)
class NoneClientHandler:
    method = AuthMethod.NONE
    allowed_modes = CRC_ONLY

    def __init__(self, name: EntityName, global_id: int = 0) -> None:
        self.name = name
        self.global_id = global_id

    def build_request(self, peer_entity_type: int) -> bytes:
        return encode_none_request(self.name, self.global_id, peer_entity_type == EntityType.MON)

    def handle_reply_more(self, payload: bytes) -> bytes:
        raise AuthRejected("auth none has no second round")

    def handle_done(self, global_id: int, con_mode: int, payload: bytes):
        self.global_id = global_id
        return b"", b""


@implementer(IServerAuthHandler)
class NoneServerHandler:
    """Accepts every entity; gives each new client a fresh global_id."""

    method = AuthMethod.NONE
    allowed_modes = CRC_ONLY

    def __init__(self, first_global_id: int = 4100) -> None:
        #: shared with the other handlers of a server (L{share_global_ids})
        self.global_ids = GlobalIdAllocator(first_global_id)

    def handle_request(self, request):
        try:
            mode, name, global_id = decode_none_request(request.payload)
        except DecodeError as e:
            raise AuthRejected("malformed auth none request: %s" % (e,)) from None
        if mode not in (AUTH_MODE_MON, AUTH_MODE_AUTHORIZER):
            raise AuthRejected("auth none request mode %d" % mode)
        if not global_id:
            global_id = self.global_ids.allocate()
        return AuthDone(global_id, name=name)


@implementer(IPlugin, IAuthProviderFactory)
class NoneAuthProvider:
    name = "none"
    methodID = AuthMethod.NONE
    description = "No authentication: the peer's claimed name is trusted (crc mode only)."
    argStringFormat = "name=ENTITY (client side, default client.admin)"

    def clientHandler(self, argstring="", name=None, global_id=0, **kwargs):
        args = parseArgString(argstring, ("name",), "none")
        if "name" in args:
            name = EntityName.parse(args["name"])
        elif name is None:
            name = EntityName.parse("client.admin")
        return NoneClientHandler(name, global_id)

    def serverHandler(self, argstring="", **kwargs):
        parseArgString(argstring)
        return NoneServerHandler()
