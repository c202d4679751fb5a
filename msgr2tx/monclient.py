"""
A small monitor client: subscribe to the monmap (for the fsid), run
commands and ask map versions, over one msgr2 connection.
"""

import json
import socket
from typing import Callable, Dict, List, Optional, Tuple

from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from msgr2tx.core.messages import (
    MAuth, MAuthReply, MMonCommand, MMonCommandAck, MMonGetVersion, MMonGetVersionReply, MMonMap,
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

    def __init__(self, hostname: Optional[str] = None, auth_handler=None, clock=None,
                 renew_check_interval: float = 10.0, resend_on_reconnect: bool = False) -> None:
        self.hostname = hostname if hostname is not None else socket.gethostname().split(".")[0]
        #: a cephx client handler whose service tickets we keep fresh
        self.auth_handler = auth_handler
        self.clock = clock
        self.renew_check_interval = renew_check_interval
        self._renewal_loop = None
        self._renewals = []
        self.protocol = None
        self.monmap = None
        self._monmap_waiters = []
        #: keep commands across a lost connection and send them again on the
        #: next one (with a ReconnectingClient), as Ceph's MonClient does
        self.resend_on_reconnect = resend_on_reconnect
        self._commands: Dict[int, defer.Deferred] = {}
        self._command_messages: Dict[int, object] = {}
        self._versions: Dict[int, defer.Deferred] = {}
        self._next_tid = 1
        self._lost = None
        #: maps subscribed to besides the monmap: name -> first epoch wanted
        self.subscriptions: Dict[str, int] = {}
        self._handlers: Dict[type, List[Callable]] = {}
        self._ready_hooks: List[Callable] = []

    # ---- IMsgr2Receiver ----------------------------------------------

    def connectionReady(self, protocol, info):
        self.protocol = protocol
        self._lost = None
        subscribe = MMonSubscribe(hostname=self.hostname)
        subscribe.sub_want("monmap", 0, 0)
        for what, start in sorted(self.subscriptions.items()):
            subscribe.sub_want(what, start, 0)
        protocol.sendMessage(subscribe)
        # a monitor session does not survive its connection: send again what
        # the last one left unanswered (the tids stay the same)
        for tid in sorted(self._command_messages):
            message = self._command_messages[tid]
            message.seq = 0
            protocol.sendMessage(message)
        if self.auth_handler is not None and hasattr(self.auth_handler, "need_tickets"):
            from twisted.internet.task import LoopingCall
            self._renewal_loop = LoopingCall(self._check_tickets)
            if self.clock is not None:
                self._renewal_loop.clock = self.clock
            self._renewal_loop.start(self.renew_check_interval, now=False).addErrback(
                lambda f: self.log.failure("ticket renewal check failed", f))
        for hook in list(self._ready_hooks):
            hook(protocol, info)

    def subscribe(self, what: str, start: int = 0) -> None:
        """Also subscribe to the map C{what} (e.g. C{"mgrmap"}), now and on every reconnect."""
        self.subscriptions[what] = start
        if self.protocol is not None:
            message = MMonSubscribe(hostname=self.hostname)
            message.sub_want(what, start, 0)
            self.protocol.sendMessage(message)

    def addMessageHandler(self, message_class: type, handler: Callable) -> None:
        """Call C{handler(message)} for every message of C{message_class} the monitor sends."""
        self._handlers.setdefault(message_class, []).append(handler)

    def addReadyHook(self, hook: Callable) -> None:
        """Call C{hook(protocol, info)} each time a monitor connection becomes READY."""
        self._ready_hooks.append(hook)

    def _check_tickets(self):
        if self.auth_handler.need_tickets():
            self.renew_tickets().addErrback(
                lambda f: self.log.warn("ticket renewal failed: {error}", error=f.getErrorMessage()))

    def renew_tickets(self, keys: Optional[int] = None) -> defer.Deferred:
        """
        Ask the monitor for fresh service tickets (cephx
        GET_PRINCIPAL_SESSION_KEY over MAuth).  Fires with the mask of the
        services renewed.  The renewal loop calls this before tickets expire.
        """
        handler = self.auth_handler
        return self._auth_request(handler.build_renewal_request(keys), handler.handle_renewal_reply,
                                  "ticket renewal")

    def request_rotating(self) -> defer.Deferred:
        """
        Ask the monitor for the rotating secrets of our own service type
        (cephx CEPHX_GET_ROTATING_KEY over MAuth), as a daemon does before it
        accepts clients.  Fires with a L{RotatingSecrets}.
        """
        handler = self.auth_handler
        if handler is None or not hasattr(handler, "build_rotating_request"):
            return defer.fail(CommandError("rotating secrets need a cephx auth handler"))
        return self._auth_request(handler.build_rotating_request(), handler.handle_rotating_reply,
                                  "rotating secrets")

    def _auth_request(self, payload: bytes, handle_reply: Callable, what: str) -> defer.Deferred:
        if self.protocol is None:
            return defer.fail(ConnectionClosed("no monitor connection"))
        d = defer.Deferred()
        self._renewals.append(d)
        epoch = self.monmap.epoch if self.monmap is not None else 0
        self.protocol.sendMessage(MAuth(protocol=self.auth_handler.method, auth_payload=payload,
                                        monmap_epoch=epoch))

        def got(reply):
            if reply.result != 0:
                raise CommandError("%s refused with %d" % (what, reply.result), reply.result)
            return handle_reply(reply.result_bl)
        return d.addCallback(got)

    def messageReceived(self, protocol, message):
        handlers = self._handlers.get(type(message))
        if handlers:
            for handler in list(handlers):
                handler(message)
            return
        if isinstance(message, MMonCommandAck):
            self._command_messages.pop(message.tid, None)
            d = self._commands.pop(message.tid, None)
            if d is not None:
                d.callback(message)
        elif isinstance(message, MMonGetVersionReply):
            d = self._versions.pop(message.handle, None)
            if d is not None:
                d.callback(message)
        elif isinstance(message, MAuthReply):
            if self._renewals:
                self._renewals.pop(0).callback(message)
        elif isinstance(message, MMonMap):
            self.monmap = message.monmap()
            waiters, self._monmap_waiters = self._monmap_waiters, []
            for d in waiters:
                d.callback(self.monmap)
        else:
            self.log.debug("ignoring {msg!r}", msg=message)

    def connectionLost(self, protocol, reason):
        if protocol is not self.protocol and self.protocol is not None:
            return  # an old connection going away after a newer one is READY
        self._lost = reason
        if self._renewal_loop is not None and self._renewal_loop.running:
            self._renewal_loop.stop()
        self._renewal_loop = None
        if self.resend_on_reconnect:
            self.protocol = None
            return
        error = ConnectionClosed("monitor connection lost: %s" % (reason.getErrorMessage(),))
        self._command_messages = {}
        pending = (list(self._commands.values()) + list(self._versions.values())
                   + self._monmap_waiters + self._renewals)
        self._commands, self._versions, self._monmap_waiters, self._renewals = {}, {}, [], []
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
        if self._lost is not None and not self.resend_on_reconnect:
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
        message = MMonCommand(monmap.fsid, [cmd], inbl, tid=tid)
        if self.resend_on_reconnect:
            self._command_messages[tid] = message
        if self.protocol is not None:
            self.protocol.sendMessage(message)
        ack = yield d
        if check and ack.r != 0:
            raise CommandError("command failed with %d: %s" % (ack.r, ack.rs), ack.r, ack.rs, ack.outbl)
        return (ack.r, ack.rs, ack.outbl)

    def get_version(self, what: str) -> defer.Deferred:
        """Fires with C{(newest, oldest)} versions of the named map."""
        if self.protocol is None:
            return defer.fail(ConnectionClosed("no monitor connection"))
        handle = self._tid()
        d = defer.Deferred()
        self._versions[handle] = d
        self.protocol.sendMessage(MMonGetVersion(handle=handle, what=what))
        return d.addCallback(lambda reply: (reply.map_version, reply.oldest_version))


def command_result(ack) -> Tuple[int, str, bytes]:
    return ack.r, ack.rs, ack.outbl
