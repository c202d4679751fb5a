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
        self.log.debug("echo {message!r}", message=message)
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
