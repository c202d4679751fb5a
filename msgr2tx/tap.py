"""
C{twistd msgr2}: a msgr2 server built from command-line options.

    twistd -n msgr2 --listen tcp:3300:interface=127.0.0.1 --auth none --mode crc
"""

import sys

from twisted.application import strports
from twisted.application.service import MultiService
from twisted.plugin import getPlugins
from twisted.python import usage

from msgr2tx.auth import findAuthProviders, makeServerHandler, UnknownAuthMethod
from msgr2tx.core.config import ConnectionConfig
from msgr2tx.core.constants import ConnectionMode
from msgr2tx.core.encoding import EntityName, EntityType
from msgr2tx.factory import Msgr2ServerFactory
from msgr2tx.interfaces import IMsgr2ServiceFactory

DEFAULT_LISTEN = "tcp:3300:interface=127.0.0.1"


def findServices():
    return list(getPlugins(IMsgr2ServiceFactory))


def findService(name):
    for s in findServices():
        if s.name == name:
            return s
    raise usage.UsageError("no msgr2 service named %r (installed: %s)" % (
        name, ", ".join(sorted(s.name for s in findServices()))))


def parse_modes(text: str):
    try:
        modes = tuple(ConnectionMode.parse(m) for m in text.split(",") if m.strip())
    except ValueError as e:
        raise usage.UsageError(str(e))
    if not modes:
        raise usage.UsageError("--mode needs at least one of crc, secure")
    return modes


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = ("Run a Ceph messenger v2 (msgr2) server.  By default it listens on "
                "127.0.0.1:3300 with auth none in crc mode, acts as a monitor "
                "(entity mon.a) and echoes every message back to its sender.")

    optParameters = [
        ["auth", None, "none", "Auth methods in order, comma separated, each NAME[:ARGS] "
                               "(see --help-auth)."],
        ["keyring", None, None, "Ceph keyring of the entities cephx authenticates "
                                "(same as --auth cephx:keyring=PATH)."],
        ["mode", None, "crc", "Connection modes in order of preference: crc, secure."],
        ["entity", None, "mon.a", "Our entity TYPE.ID (HELLO carries the type)."],
        ["policy", None, "stateless", "Session policy for clients: stateless (lossy, like a monitor) "
                                      "or stateful (lossless sessions that survive reconnects)."],
        ["keepalive", None, 0.0, "Seconds between KEEPALIVE2 frames to each client (0: none).", float],
        ["idle-timeout", None, 0.0, "Close connections that carried no message for this long (0: never).",
         float],
        ["service", None, "echo", "The dispatcher, NAME[:ARGS] (see --help-services)."],
        ["max-segment", None, 64 << 20, "Largest segment accepted, in bytes.", int],
        ["max-frame", None, 128 << 20, "Largest MESSAGE frame accepted, in bytes.", int],
        ["max-control", None, 1 << 20, "Largest control frame accepted, in bytes.", int],
        ["handshake-timeout", None, 30.0, "Seconds a client has to reach READY.", float],
        ["rev", None, "1", "Highest msgr2 revision to offer: 0 or 1."],
    ]

    compData = usage.Completions(optActions={
        "mode": usage.CompleteList(["crc", "secure", "secure,crc", "crc,secure"]),
        "rev": usage.CompleteList(["0", "1"]),
    })

    def __init__(self):
        super().__init__()
        self["listen"] = []

    def opt_listen(self, description):
        """A server endpoint string to listen on (repeatable; default
        tcp:3300:interface=127.0.0.1)."""
        self["listen"].append(description)

    def opt_help_auth(self):
        """List the installed auth plugins and exit."""
        for p in sorted(findAuthProviders(), key=lambda p: p.name):
            print("%-8s %s\n         arguments: %s" % (p.name, p.description, p.argStringFormat))
        sys.exit(0)

    def opt_help_services(self):
        """List the installed services and exit."""
        for s in sorted(findServices(), key=lambda s: s.name):
            print("%-8s %s" % (s.name, s.description))
        sys.exit(0)

    def postOptions(self):
        if not self["listen"]:
            self["listen"] = [DEFAULT_LISTEN]
        self["modes"] = parse_modes(self["mode"])
        try:
            self["entity_name"] = EntityName.parse(self["entity"])
        except ValueError as e:
            raise usage.UsageError("--entity: %s" % (e,))
        if self["policy"] not in ("stateless", "stateful"):
            raise usage.UsageError("--policy must be stateless or stateful")
        if self["keepalive"] < 0 or self["idle-timeout"] < 0:
            raise usage.UsageError("--keepalive and --idle-timeout must not be negative")
        if self["rev"] not in ("0", "1"):
            raise usage.UsageError("--rev must be 0 or 1")
        handlers = []
        for spec in filter(None, (s.strip() for s in self["auth"].split(","))):
            name, _, args = spec.partition(":")
            if self["keyring"] and name.strip() == "cephx" and "keyring=" not in args:
                spec = ":".join(filter(None, (spec, "keyring=" + self["keyring"])))
            try:
                handlers.append(makeServerHandler(spec))
            except UnknownAuthMethod as e:
                raise usage.UsageError(str(e))
            except (ValueError, OSError) as e:
                raise usage.UsageError("--auth %s: %s" % (spec, e))
        if not handlers:
            raise usage.UsageError("--auth needs at least one method")
        usable = [m for m in self["modes"] if any(m in h.allowed_modes for h in handlers)]
        if not usable:
            raise usage.UsageError("no auth method in --auth %s can key any mode in --mode %s"
                                   % (self["auth"], self["mode"]))
        self["auth_handlers"] = handlers
        name, _, args = self["service"].partition(":")
        self["service_factory"] = findService(name)
        self["service_args"] = args
        for key in ("max-segment", "max-frame", "max-control"):
            if self[key] <= 0:
                raise usage.UsageError("--%s must be positive" % key)


def makeService(options):
    name = options["entity_name"]
    config = ConnectionConfig(
        entity_type=name.type,
        name=name,
        entity_num=int(name.id) if name.id.isdigit() else 0,
        modes=options["modes"],
        revision1=options["rev"] == "1",
        lossy=options["policy"] == "stateless",
        keepalive_interval=options["keepalive"],
        idle_timeout=options["idle-timeout"],
        max_segment=options["max-segment"],
        max_frame=options["max-frame"],
        max_control=options["max-control"],
    )
    receiver = options["service_factory"].makeReceiver(options["service_args"])
    factory = Msgr2ServerFactory(options["auth_handlers"], receiver, config,
                                 handshake_timeout=options["handshake-timeout"])
    top = MultiService()
    for description in options["listen"]:
        strports.service(description, factory).setServiceParent(top)
    return top


__all__ = ["Options", "makeService", "EntityType"]
