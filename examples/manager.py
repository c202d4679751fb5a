#!/usr/bin/env python3
"""
Serve a real Ceph cluster as its manager and answer the commands real
clients send to it (``ceph pg stat``, librados ``mgr_command``).

    ceph auth get-or-create mgr.x mon 'allow profile mgr' -o mgr.x.keyring
    python examples/manager.py --mon v2:127.0.0.1:3300 --keyring mgr.x.keyring --port 13300
    ceph pg stat          # answered by this program

The program logs in to the monitor as mgr.x, fetches the rotating MGR
secrets (so it can check the tickets the monitor gave clients), registers
its address with MMgrBeacon and prints "available" once the mgrmap names
it.  Every MMgrCommand gets a JSON answer naming the command; a command
whose prefix is "fail" gets -EINVAL, to show errors reaching the client.
Stops on SIGINT/SIGTERM.  Exit code 2 for bad usage.
"""

import argparse
import errno
import json
import os
import sys

from twisted.application import strports
from twisted.application.service import MultiService
from twisted.internet import defer, task
from zope.interface import implementer

from msgr2tx import __version__
from msgr2tx.auth.cephx import CephxAuthProvider, CephxKeyServer
from msgr2tx.auth.keyring import Keyring, KeyringError
from msgr2tx.core.config import ConnectionConfig
from msgr2tx.core.constants import ConnectionMode
from msgr2tx.core.encoding import EntityName, EntityType, entity_addr_t, entity_addrvec_t
from msgr2tx.messages import MMgrCommand, MMgrCommandReply
from msgr2tx.factory import Msgr2ServerFactory
from msgr2tx.interfaces import IMsgr2Receiver
from msgr2tx.clients.mgr import DaemonSessions, MgrRegistration


@implementer(IMsgr2Receiver)
class CommandAnswerer:
    """Answer every MMgrCommand; ignore everything else."""

    def __init__(self):
        self.answered = 0

    def connectionReady(self, protocol, info):
        pass

    def messageReceived(self, protocol, message):
        if not isinstance(message, MMgrCommand):
            return
        try:
            command = json.loads(message.cmd[0]) if message.cmd else {}
        except ValueError:
            command = {}
        prefix = command.get("prefix", "")
        if prefix == "fail":
            reply = MMgrCommandReply(-errno.EINVAL, "msgr2tx example: asked to fail", tid=message.tid)
        else:
            answer = {"answered_by": "msgr2tx %s" % __version__, "prefix": prefix,
                      "from": str(message.src), "inbl_bytes": len(message.inbl)}
            reply = MMgrCommandReply(0, "", json.dumps(answer).encode() + b"\n", tid=message.tid)
        self.answered += 1
        print(json.dumps({"command": prefix, "from": str(message.src), "result": reply.r}), flush=True)
        protocol.sendMessage(reply)

    def connectionLost(self, protocol, reason):
        pass


def manager(reactor, mon_address, keyring, port, name="mgr.x", nonce=None):
    """The service tree: our listening server and its registration with the monitor."""
    me = EntityName.parse(name)
    cephx = CephxAuthProvider()
    key_server = CephxKeyServer(keyring, own_name=me)
    server_auth = cephx.serverHandler(key_server=key_server, authority=False, service_ids=(EntityType.MGR,))
    config = ConnectionConfig(entity_type=EntityType.MGR, name=me,
                              modes=(ConnectionMode.SECURE, ConnectionMode.CRC))
    nonce = nonce if nonce is not None else int.from_bytes(os.urandom(4), "little") or 1
    top = MultiService()
    # exactly what the server names itself in SERVER_IDENT: clients check
    addrs = entity_addrvec_t((entity_addr_t.parse("v2:127.0.0.1:%d/%d" % (port, nonce)),))
    registration = MgrRegistration(reactor, mon_address, [cephx.clientHandler(name=me, keyring=keyring)],
                                   addrs, key_server=key_server, config=config)
    registration.setServiceParent(top)
    # refetch the rotating secrets when a client's ticket names a newer one
    # DaemonSessions answers the monitor's MMgrOpen (MMgrConfigure), as ceph-mgr does
    factory = Msgr2ServerFactory([registration.serverHandler(server_auth)], DaemonSessions(CommandAnswerer()),
                                 config, nonce=nonce)
    strports.service("tcp:%d:interface=127.0.0.1" % port, factory).setServiceParent(top)
    return top, registration


def main(reactor, argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mon", required=True, help="the monitor's address, v2:IP:PORT")
    parser.add_argument("--keyring", required=True, help="a keyring with the manager's key")
    parser.add_argument("--name", default="mgr.x", help="our entity (default mgr.x)")
    parser.add_argument("--port", type=int, default=13300,
                        help="where to listen on 127.0.0.1 (default 13300, a port no Ceph daemon uses)")
    args = parser.parse_args(argv)
    try:
        keyring = Keyring.load(args.keyring)
        keyring.get(EntityName.parse(args.name))
    except (KeyringError, OSError, ValueError) as e:
        parser.exit(2, "manager.py: %s\n" % (e,))
    top, registration = manager(reactor, args.mon, keyring, args.port, args.name)
    top.startService()
    reactor.addSystemEventTrigger("before", "shutdown", top.stopService)

    def available(mgrmap):
        print(json.dumps({"available": True, "gid": mgrmap.active_gid, "epoch": mgrmap.epoch,
                          "addrs": str(mgrmap.active_addrs)}), flush=True)
    registration.whenAvailable().addCallbacks(available, lambda failure: None)
    return defer.Deferred()  # until SIGINT/SIGTERM


if __name__ == "__main__":
    task.react(main, (sys.argv[1:],))
