"""
A small monitor client: subscribe to the monmap (for the fsid), run
commands and ask map versions, over one msgr2 connection.
"""

import json
import socket
from typing import Dict, Optional, Tuple

from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from msgr2tx.core.messages import (
    MMonCommand, MMonCommandAck, MMonGetVersion, MMonGetVersionReply, MMonMap,
    MMonSubscribe,
)
from msgr2tx.errors import CommandError, ConnectionClosed
from msgr2tx.interfaces import IMsgr2Receiver


@implementer(IMsgr2Receiver)
class MonClient:
    """
    Attach as the receiver of a client connection to a monitor, then call
    L{command} and L{get_version}.  Commands wait for the first monmap,
    because a monitor refuses commands whose fsid is not its own.
    """

    log = Logger()

    def __init__(self, hostname: Optional[str] = None) -> None:
        self.hostname = hostname if hostname is not None else socket.gethostname().split(".")[0]
        self.protocol = None
        self.monmap = None
        self._monmap_waiters = []
        self._commands: Dict[int, defer.Deferred] = {}
        self._versions: Dict[int, defer.Deferred] = {}
        self._next_tid = 1
        self._lost = None

    # ---- IMsgr2Receiver ----------------------------------------------

    def connectionReady(self, protocol, info):
        self.protocol = protocol
        subscribe = MMonSubscribe(hostname=self.hostname)
        subscribe.sub_want("monmap", 0, 0)
        protocol.sendMessage(subscribe)

    def messageReceived(self, protocol, message):
        if isinstance(message, MMonCommandAck):
            d = self._commands.pop(message.tid, None)
            if d is not None:
                d.callback(message)
        elif isinstance(message, MMonGetVersionReply):
            d = self._versions.pop(message.handle, None)
            if d is not None:
                d.callback(message)
        elif isinstance(message, MMonMap):
            self.monmap = message.monmap()
            waiters, self._monmap_waiters = self._monmap_waiters, []
            for d in waiters:
                d.callback(self.monmap)
        else:
            self.log.debug("ignoring {message!r}", message=message)

    def connectionLost(self, protocol, reason):
        self._lost = reason
        error = ConnectionClosed("monitor connection lost: %s" % (reason.getErrorMessage(),))
        pending = list(self._commands.values()) + list(self._versions.values()) + self._monmap_waiters
        self._commands, self._versions, self._monmap_waiters = {}, {}, []
        for d in pending:
            d.errback(error)

    # ---- API -------------------------------------------------------------

    def _tid(self) -> int:
        tid = self._next_tid
        self._next_tid += 1
        return tid

    def whenMonmap(self) -> defer.Deferred:
        if self.monmap is not None:
            return defer.succeed(self.monmap)
        if self._lost is not None:
            return defer.fail(ConnectionClosed("monitor connection lost"))
        d = defer.Deferred()
        self._monmap_waiters.append(d)
        return d

    @defer.inlineCallbacks
    def command(self, cmd, inbl: bytes = b"", check: bool = False):
        """
        Run a monitor command (a JSON string or a dict).  Fires with
        C{(result, status, output)}; with C{check}, a non-zero result fails
        with L{CommandError}.
        """
        if not isinstance(cmd, str):
            cmd = json.dumps(cmd)
        monmap = yield self.whenMonmap()
        tid = self._tid()
        d = defer.Deferred()
        self._commands[tid] = d
        self.protocol.sendMessage(MMonCommand(monmap.fsid, [cmd], inbl, tid=tid))
        ack = yield d
        if check and ack.r != 0:
            raise CommandError("command failed with %d: %s" % (ack.r, ack.rs), ack.r, ack.rs, ack.outbl)
        return (ack.r, ack.rs, ack.outbl)

    def get_version(self, what: str) -> defer.Deferred:
        """Fires with C{(newest, oldest)} versions of the named map."""
        handle = self._tid()
        d = defer.Deferred()
        self._versions[handle] = d
        self.protocol.sendMessage(MMonGetVersion(handle=handle, what=what))
        return d.addCallback(lambda reply: (reply.map_version, reply.oldest_version))


def command_result(ack) -> Tuple[int, str, bytes]:
    return ack.r, ack.rs, ack.outbl
