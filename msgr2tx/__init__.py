"""
msgr2tx: Ceph's messenger v2 (msgr2) wire protocol on Twisted.

The public API is importable from the package's top level, so a program
needs one import line::

    from msgr2tx import connect, ConnectionConfig, EchoReceiver, makeClientHandler

The names are resolved lazily (PEP 562): ``import msgr2tx`` loads neither
Twisted nor any submodule, so ``msgr2tx.core`` stays usable without Twisted.
Each name below is the same object as in the module that defines it (for
example ``msgr2tx.connect is msgr2tx.client.connect``).
"""

from importlib import import_module
from typing import Any, Dict, List

from msgr2tx._version import __version__

#: public name -> the module that defines it
_EXPORTS: Dict[str, str] = {
    # connecting and serving (Twisted)
    "connect": "msgr2tx.client",
    "parse_target": "msgr2tx.client",
    "ReconnectingClient": "msgr2tx.client",
    "Msgr2ClientFactory": "msgr2tx.factory",
    "Msgr2ServerFactory": "msgr2tx.factory",
    "Msgr2Protocol": "msgr2tx.protocol",
    "PeerInfo": "msgr2tx.protocol",
    "Msgr2Messenger": "msgr2tx.messenger",
    "Msgr2ServerService": "msgr2tx.service",
    "EchoReceiver": "msgr2tx.services",
    "EchoServiceFactory": "msgr2tx.services",
    "InspectReceiver": "msgr2tx.services",
    "InspectServiceFactory": "msgr2tx.services",
    # Ceph roles
    "MonClient": "msgr2tx.clients.monclient",
    "MgrRegistration": "msgr2tx.clients.mgr",
    "FetchingServiceHandler": "msgr2tx.clients.mgr",
    # objects
    "Rados": "msgr2tx.rados",
    "IoCtx": "msgr2tx.rados",
    # interfaces
    "IAuthProviderFactory": "msgr2tx.interfaces",
    "IClientAuthHandler": "msgr2tx.interfaces",
    "IServerAuthHandler": "msgr2tx.interfaces",
    "IMsgr2Receiver": "msgr2tx.interfaces",
    "IMsgr2ServiceFactory": "msgr2tx.interfaces",
    # auth
    "makeClientHandler": "msgr2tx.auth",
    "makeServerHandler": "msgr2tx.auth",
    "findAuthProvider": "msgr2tx.auth",
    "findAuthProviders": "msgr2tx.auth",
    "Keyring": "msgr2tx.auth.keyring",
    "CryptoKey": "msgr2tx.auth.keyring",
    # the wire core (no Twisted)
    "ConnectionConfig": "msgr2tx.core.config",
    "ConnectionMode": "msgr2tx.core.constants",
    "AuthMethod": "msgr2tx.core.constants",
    "EntityName": "msgr2tx.core.encoding",
    "EntityType": "msgr2tx.core.encoding",
    "entity_addr_t": "msgr2tx.core.encoding",
    "entity_addrvec_t": "msgr2tx.core.encoding",
    "Message": "msgr2tx.core.messages",
    "GenericMessage": "msgr2tx.core.messages",
    "MPing": "msgr2tx.messages",
    "MMonCommand": "msgr2tx.messages",
    # errors
    "Msgr2Error": "msgr2tx.errors",
    "ProtocolError": "msgr2tx.errors",
    "RemoteProtocolError": "msgr2tx.errors",
    "AuthError": "msgr2tx.errors",
    "ConnectionClosed": "msgr2tx.errors",
    "HandshakeTimeout": "msgr2tx.errors",
    "KeepaliveTimeout": "msgr2tx.errors",
    "SessionReset": "msgr2tx.errors",
    "CommandError": "msgr2tx.errors",
    "RadosError": "msgr2tx.errors",
    "ObjectNotFound": "msgr2tx.errors",
    "ObjectExists": "msgr2tx.errors",
    "NoData": "msgr2tx.errors",
    "PermissionDenied": "msgr2tx.errors",
    "OperationNotSupported": "msgr2tx.errors",
    "PoolNotFound": "msgr2tx.errors",
    "OpTimeout": "msgr2tx.errors",
}

__all__: List[str] = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError("module 'msgr2tx' has no attribute %r" % (name,))
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(_EXPORTS))
