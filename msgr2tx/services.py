"""
Built-in server dispatchers (L{IMsgr2ServiceFactory} plugins).

C{echo} (the default) sends every message back to its sender, which also
answers MPing with MPing.
"""

from twisted.logger import Logger
from twisted.plugin import IPlugin
from zope.interface import implementer

from msgr2tx.interfaces import IMsgr2Receiver, IMsgr2ServiceFactory


@implementer(IMsgr2Receiver)
class EchoReceiver:
    """Echo every message back on the connection it came from."""

    log = Logger()

    def __init__(self) -> None:
        self.received = 0

    def connectionReady(self, protocol, info):
        pass

    def messageReceived(self, protocol, message):
        self.received += 1
        message.seq = 0
        protocol.sendMessage(message)

    def connectionLost(self, protocol, reason):
        pass


@implementer(IPlugin, IMsgr2ServiceFactory)
class EchoServiceFactory:
    name = "echo"
    description = "Echo every message back to its sender (answers MPing)."

    def makeReceiver(self, argstring=""):
        return EchoReceiver()


@implementer(IMsgr2Receiver)
class InspectReceiver:
    """
    Log every connection and decoded message as structured events
    (C{msgr2tx.inspect} namespace); answers nothing.
    """

    # an instance attribute: a class-level Logger takes the class's namespace
    def __init__(self) -> None:
        self.log = Logger(namespace="msgr2tx.inspect")

    def connectionReady(self, protocol, info):
        self.log.info("inspect: READY peer={peer} entity={entity} mode={mode} rev{rev} features={features:#x}",
                      peer=str(protocol.conn.peer_addr), entity=str(info.peer_name),
                      mode=info.mode_name, rev=info.revision, features=info.features)

    def messageReceived(self, protocol, message):
        self.log.info("inspect: message from {entity}: {msg!r}", entity=str(message.src),
                      msg=message, msg_type=message.TYPE, seq=message.seq)

    def connectionLost(self, protocol, reason):
        self.log.info("inspect: connection from {peer} closed: {reason}",
                      peer=str(protocol.conn.peer_addr) if protocol.conn else "?",
                      reason=reason.getErrorMessage())


@implementer(IPlugin, IMsgr2ServiceFactory)
class InspectServiceFactory:
    name = "inspect"
    description = "Log every frame's decoded message and answer nothing."

    def makeReceiver(self, argstring=""):
        return InspectReceiver()
