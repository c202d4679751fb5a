"""
Built-in server dispatchers (L{IMsgr2ServiceFactory} plugins).

C{echo} (the default) sends every message back to its sender, which also
answers MPing with MPing.
"""

import json
import time
from typing import Optional

from twisted.logger import Logger
from twisted.plugin import IPlugin
from zope.interface import implementer

from msgr2tx.errors import ConnectionClosed
from msgr2tx.interfaces import IMsgr2Receiver, IMsgr2ServiceFactory


@implementer(IMsgr2Receiver)
class EchoReceiver:
    """
    Echo every message back on the connection it came from.

    The echo waits for L{Msgr2Protocol.whenWritable}: while the connection's
    send queue is full (a peer that sends and does not read), the echo's
    dispatch is unfinished, which counts against the receive window, and the
    connection stops reading from that peer until its queue drains.
    """

    log = Logger()

    def __init__(self) -> None:
        self.received = 0

    def connectionReady(self, protocol, info):
        pass

    def messageReceived(self, protocol, message):
        self.received += 1
        message.seq = 0
        if protocol.writable:
            protocol.sendMessage(message)
            return None
        d = protocol.whenWritable()
        d.addCallback(lambda _: protocol.sendMessage(message))
        # the connection closed first: there is no one left to echo to
        d.addErrback(lambda f: f.trap(ConnectionClosed))
        return d

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
    (C{msgr2tx.inspect} namespace); answers nothing.  With C{jsonl}, also
    append one JSON object per event to that file.  Message reprs show auth
    payloads and keys only by length.
    """

    # an instance attribute: a class-level Logger takes the class's namespace
    def __init__(self, jsonl: Optional[str] = None) -> None:
        self.log = Logger(namespace="msgr2tx.inspect")
        self._jsonl = open(jsonl, "a", encoding="utf-8") if jsonl else None

    def _record(self, **fields) -> None:
        if self._jsonl is not None:
            fields["time"] = round(time.time(), 6)
            self._jsonl.write(json.dumps(fields, sort_keys=True) + "\n")
            self._jsonl.flush()

    def connectionReady(self, protocol, info):
        peer = str(protocol.conn.peer_addr)
        self.log.info("inspect: READY peer={peer} entity={entity} mode={mode} rev{rev} features={features:#x}",
                      peer=peer, entity=str(info.peer_name),
                      mode=info.mode_name, rev=info.revision, features=info.features)
        self._record(event="ready", peer=peer, entity=str(info.peer_name), mode=info.mode_name,
                     revision=info.revision, features=info.features, lossy=info.lossy)

    def messageReceived(self, protocol, message):
        self.log.info("inspect: message from {entity}: {msg!r}", entity=str(message.src),
                      msg=message, msg_type=message.TYPE, seq=message.seq)
        self._record(event="message", entity=str(message.src), type=message.TYPE,
                     name=type(message).__name__, seq=message.seq, tid=message.tid,
                     decoded=repr(message))

    def connectionLost(self, protocol, reason):
        peer = str(protocol.conn.peer_addr) if protocol.conn else "?"
        self.log.info("inspect: connection from {peer} closed: {reason}", peer=peer,
                      reason=reason.getErrorMessage())
        self._record(event="closed", peer=peer, reason=reason.getErrorMessage())


@implementer(IPlugin, IMsgr2ServiceFactory)
class InspectServiceFactory:
    name = "inspect"
    description = "Log every decoded message and answer nothing (jsonl=PATH: also as JSON lines)."

    def makeReceiver(self, argstring=""):
        from msgr2tx.auth import parseArgString
        args = parseArgString(argstring)
        return InspectReceiver(jsonl=args.get("jsonl"))
