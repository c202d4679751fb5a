"""
C{twistd msgr2}: a msgr2 server built from command-line options.

    twistd -n msgr2 --listen tcp:3300:interface=127.0.0.1 --auth none --mode crc

On its defaults it offers cephx and none, secure and crc mode.  Without
--keyring, cephx uses the keyring in its state directory, which the first
run creates with keys for client.admin and for the server's own entity; the
server then prints how to connect to it.
"""

import errno
import os
import re
import shlex
import shutil
import socket
import stat
import sys
from typing import Optional

from twisted.application import strports
from twisted.internet import endpoints
from twisted.internet.interfaces import IStreamServerEndpoint
from twisted.application.service import MultiService
from twisted.plugin import getPlugins
from twisted.python import usage
from zope.interface import implementer

from msgr2tx.auth import findAuthProviders, makeServerHandler, parseArgString, UnknownAuthMethod
from msgr2tx.core.compression import COMPRESS_MODES, parse_algorithms
from msgr2tx.core.config import ConnectionConfig
from msgr2tx.core.constants import ConnectionMode
from msgr2tx.core.encoding import EntityName, EntityType, entity_addr_t
from msgr2tx.errors import Msgr2Error
from msgr2tx.factory import Msgr2ServerFactory
from msgr2tx.interfaces import IMsgr2ServiceFactory
from msgr2tx.service import with_backlog

DEFAULT_LISTEN = "tcp:3300:interface=127.0.0.1"
DEFAULT_AUTH = "cephx,none"
DEFAULT_MODE = "secure,crc"


def default_state_dir() -> str:
    """C{$MSGR2TX_STATE_DIR}, else C{$XDG_STATE_HOME/msgr2tx}, else C{~/.local/state/msgr2tx}."""
    explicit = os.environ.get("MSGR2TX_STATE_DIR")
    if explicit:
        return explicit
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "msgr2tx")


def ensure_state_keyring(state_dir: str, server_name: EntityName):
    """
    The keyring in C{state_dir}, created on first use with fresh keys for
    client.admin and C{server_name}.  Returns (path, created).
    """
    from msgr2tx.auth.cephx_proto import CryptoKey
    from msgr2tx.auth.keyring import Keyring

    path = os.path.join(state_dir, "keyring")
    if os.path.exists(path):
        return path, False
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    ring = Keyring()
    ring.add(EntityName.parse("client.admin"), CryptoKey.generate(),
             {"mon": "allow *", "osd": "allow *", "mgr": "allow *"})
    ring.add(server_name, CryptoKey.generate(), {"mon": "allow *"})
    ring.save(path)
    return path, True


def _listen_address(description: str, strict: bool = False):
    """
    A v2 address to dial for a tcp: listen description, for the banner we
    print.  With C{strict}, None unless the description names a port and an
    interface that a client can dial as they are.
    """
    parts = [p.replace("\\:", ":") for p in re.split(r"(?<!\\):", description)]
    if parts[0] not in ("tcp", "tcp6"):
        return None if strict else "v2:127.0.0.1:3300"
    port = "3300"
    host = "127.0.0.1" if parts[0] == "tcp" else "::1"
    for part in parts[1:]:
        if part.startswith("port="):
            port = part[5:]
        elif part.startswith("interface="):
            host = part[len("interface="):] or host
        elif part.isdigit():
            port = part
    if strict and (host in ("0.0.0.0", "", "::") or port in ("0", "")
                   or not any(p.startswith("interface=") for p in parts[1:])):
        return None
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    if host in ("::",):
        host = "::1"
    return "v2:[%s]:%s" % (host, port) if ":" in host else "v2:%s:%s" % (host, port)


def _bind_error(description: str):
    """
    Why a tcp: or tcp6: listen *description* cannot be bound now, in words
    (None when it can, or for other endpoint types): a trial bind with the
    SO_REUSEADDR that Twisted's listener sets too.
    """
    try:
        endpoint = endpoints.serverFromString(None, description)
    except OSError as e:
        # ssl: Twisted reads the key and certificate while parsing
        return ("--listen %s: cannot read %s (%s): an ssl listen needs privateKey=PATH (and certKey=PATH "
                "unless the key file holds the certificate too) of PEM files" % (description, e.filename, e.strerror))
    except ValueError:
        raise
    except Exception as e:
        # e.g. OpenSSL's error for a file that is not PEM
        return "--listen %s: %s: %s" % (description, type(e).__name__, e)
    if isinstance(endpoint, endpoints.UNIXServerEndpoint):
        return _unix_path_error(description, getattr(endpoint, "_address", ""),
                                bool(getattr(endpoint, "_wantPID", False)))
    if not isinstance(endpoint, (endpoints.TCP4ServerEndpoint, endpoints.TCP6ServerEndpoint,
                                 endpoints.SSL4ServerEndpoint)):
        return None
    six = isinstance(endpoint, endpoints.TCP6ServerEndpoint)
    port = getattr(endpoint, "_port", 0)
    interface = getattr(endpoint, "_interface", "") or ("::" if six else "0.0.0.0")
    where = "[%s]:%d" % (interface, port) if six else "%s:%d" % (interface, port)
    if not 0 <= port <= 65535:
        return "--listen %s: port %d is out of range (0 to 65535)" % (description, port)
    with socket.socket(socket.AF_INET6 if six else socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((interface, port))
        except socket.gaierror as e:
            return "cannot listen on %s: %s is not an address of this host (%s)" % (where, interface, e.strerror)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                hint = "--listen tcp:PORT:interface=%s" % interface
                if os.environ.get("MAKELEVEL"):
                    # started by make run: options go through its ARGS
                    hint = 'make run ARGS="%s"' % hint
                return ("cannot listen on %s: address already in use (a Ceph monitor or another twistd "
                        "msgr2 may hold it): use %s with a free PORT" % (where, hint))
            if e.errno == errno.EACCES:
                return "cannot listen on %s: permission denied (ports below 1024 need root)" % where
            if e.errno == errno.EADDRNOTAVAIL:
                return "cannot listen on %s: %s is not an address of this host" % (where, interface)
            return "cannot listen on %s: %s" % (where, e.strerror or e)
    return None


def _unix_path_error(description: str, path, lockfile: bool) -> Optional[str]:
    """
    Why a unix socket cannot be made at *path*, in words (None when it can).
    With C{lockfile} (Twisted's default, C{lockfile=1}), Twisted takes
    C{PATH.lock} and removes a stale socket itself; only a live holder of
    the lock, or a path that is not a socket, is in the way.
    """
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not path or path.startswith(("@", "\0")):
        return None  # an abstract socket: no file
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        return ("--listen %s: directory %s does not exist: create it or give a socket path in an existing "
                "directory" % (description, directory))
    if not os.access(directory, os.W_OK | os.X_OK):
        return "--listen %s: cannot create a socket in %s: permission denied" % (description, directory)
    if lockfile:
        try:
            pid = int(os.readlink(path + ".lock"))
            os.kill(pid, 0)
        except PermissionError:
            pid = pid  # alive, another user's
        except (OSError, ValueError):
            pid = 0  # no lock, or a stale one
        if pid:
            return ("--listen %s: process %d holds %s.lock (another server on this socket): stop it or "
                    "give another path" % (description, pid, path))
        if not os.path.lexists(path) or stat.S_ISSOCK(os.lstat(path).st_mode):
            return None
    if os.path.lexists(path):
        return ("--listen %s: %s already exists (another server's socket, or a stale one: remove it "
                "if nothing listens there)" % (description, path))
    return None


def _listen_key(description: str):
    """(family, host, port) or ("unix", path) that a listen description binds; None if unknown."""
    try:
        endpoint = endpoints.serverFromString(None, description)
    except Exception:
        return None
    if isinstance(endpoint, (endpoints.TCP4ServerEndpoint, endpoints.SSL4ServerEndpoint)):
        return ("inet", getattr(endpoint, "_interface", "") or "0.0.0.0", getattr(endpoint, "_port", 0))
    if isinstance(endpoint, endpoints.TCP6ServerEndpoint):
        return ("inet6", getattr(endpoint, "_interface", "") or "::", getattr(endpoint, "_port", 0))
    if isinstance(endpoint, endpoints.UNIXServerEndpoint):
        return ("unix", os.path.abspath(os.fsdecode(getattr(endpoint, "_address", ""))))
    return None


def check_listen_together(descriptions) -> None:
    """
    Raise L{usage.UsageError} in one line when two --listen descriptions
    would bind the same address (the same port on one interface, or on a
    wildcard interface and another of its family; C{::} covers IPv4 too),
    or the same unix path.  Port 0 never clashes: each gets its own port.
    """
    keys = [(d, _listen_key(d)) for d in descriptions]
    for i, (first, a) in enumerate(keys):
        for second, b in keys[i + 1:]:
            if a is None or b is None:
                continue
            if a[0] == "unix" or b[0] == "unix":
                clash = a == b
            else:
                wild = {"inet": "0.0.0.0", "inet6": "::"}
                same_family = a[0] == b[0] and (a[1] == b[1] or wild[a[0]] in (a[1], b[1]))
                dual = "::" in (a[1], b[1]) and a[0] != b[0]
                clash = a[2] == b[2] != 0 and (same_family or dual)
            if clash:
                what = a[1] if a[0] == "unix" else "port %d" % a[2]
                raise usage.UsageError("--listen %s and --listen %s both bind %s: give each --listen "
                                       "its own port (or path)" % (first, second, what))


def check_listen(description: str) -> None:
    """
    Raise L{usage.UsageError} in one line when *description* is not a server
    endpoint string, or names a tcp port this host cannot bind now.
    """
    try:
        problem = _bind_error(description)
    except ValueError as e:
        raise usage.UsageError("--listen %s is not an endpoint description (%s): use e.g. "
                               "--listen tcp:3300:interface=127.0.0.1" % (description, e))
    if problem:
        raise usage.UsageError(problem)


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
                "127.0.0.1:3300, offers cephx (with a keyring it generates in its state "
                "directory on first run) and none, secure and crc mode, acts as a monitor "
                "(entity mon.a) and echoes every message back to its sender.")

    optParameters = [
        ["auth", None, DEFAULT_AUTH, "Auth methods in order, comma separated, each NAME[:ARGS] "
                                     "(see --help-auth)."],
        ["keyring", None, None, "Ceph keyring of the entities cephx authenticates "
                                "(same as --auth cephx:keyring=PATH; default: the state directory's)."],
        ["state-dir", None, None, "Where the generated keyring lives (default $MSGR2TX_STATE_DIR, "
                                  "else $XDG_STATE_HOME/msgr2tx, else ~/.local/state/msgr2tx)."],
        ["inspect-log", None, None, "With --service inspect: also write JSON lines to this file."],
        ["mode", None, DEFAULT_MODE, "Connection modes in order of preference: crc, secure."],
        ["entity", None, "mon.a", "Our entity TYPE.ID (HELLO carries the type)."],
        ["policy", None, "stateless", "Session policy for clients: stateless (lossy, like a monitor) "
                                      "or stateful (lossless sessions that survive reconnects)."],
        ["keepalive", None, 0.0, "Seconds between KEEPALIVE2 frames to each client (0: none).", float],
        ["idle-timeout", None, 900.0, "Close connections that read nothing and sent no message for this many "
                                      "seconds (Ceph's ms_connection_idle_timeout; 0: never).", float],
        ["service", None, "echo", "The dispatcher, NAME[:ARGS] (see --help-services)."],
        ["max-segment", None, 64 << 20, "Largest segment accepted, in bytes.", int],
        ["max-frame", None, 128 << 20, "Largest MESSAGE frame accepted, in bytes.", int],
        ["max-control", None, 1 << 20, "Largest control frame accepted, in bytes.", int],
        ["handshake-timeout", None, 10.0, "Seconds a client has to reach READY (Ceph's "
                                          "ms_connection_ready_timeout; 0: no limit).", float],
        ["backlog", None, 512, "Listen backlog of tcp, ssl and unix endpoints that do not set their own "
                               "(Ceph's ms_tcp_listen_backlog).", int],
        ["rev", None, "1", "Highest msgr2 revision to offer: 0 or 1."],
        ["compress-mode", None, "none", "On-wire compression towards OSD peers, as Ceph's "
                                        "ms_osd_compress_mode: none or force."],
        ["compress-methods", None, "snappy", "Compression methods in order of preference, as Ceph's "
                                             "ms_osd_compression_algorithm: snappy, zlib, zstd, lz4."],
        ["compress-min-size", None, 1024, "Frames smaller than this many bytes go out uncompressed "
                                          "(Ceph's ms_osd_compress_min_size).", int],
        ["mon", None, None, "Serve a real cluster as its manager: register with the monitor at this "
                            "address (--entity mgr.NAME, whose key --keyring holds for cephx) so that "
                            "Ceph clients find this server in the mgrmap."],
    ]

    optFlags = [
        ["compress-secure", None, "Compress secure connections too (Ceph's ms_compress_secure)."],
        ["no-compression", None, "Do not advertise on-wire compression in the banner."],
        ["no-fast-reconnect", None, "Do not offer msgr2tx's fast reconnect (a private banner bit that stock "
                                    "Ceph ignores; see docs/protocol.md): clients resume with "
                                    "SESSION_RECONNECT after a full cephx exchange."],
    ]

    compData = usage.Completions(optActions={
        "compress-mode": usage.CompleteList(["none", "force"]),
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

    def _compression_options(self):
        if self["compress-mode"] not in COMPRESS_MODES:
            raise usage.UsageError("--compress-mode must be none or force")
        if self["compress-mode"] != "none" and self["no-compression"]:
            raise usage.UsageError("--compress-mode %s needs compression advertised (drop --no-compression)"
                                   % self["compress-mode"])
        if self["compress-min-size"] < 0:
            raise usage.UsageError("--compress-min-size must not be negative")
        try:
            self["compression_methods"] = parse_algorithms(self["compress-methods"])
        except ValueError as e:
            raise usage.UsageError("--compress-methods: %s" % (e,))

    def postOptions(self):
        if not self["listen"]:
            self["listen"] = [DEFAULT_LISTEN]
        for description in self["listen"]:
            check_listen(description)
        check_listen_together(self["listen"])
        self["modes"] = parse_modes(self["mode"])
        try:
            self["entity_name"] = EntityName.parse(self["entity"])
        except ValueError as e:
            raise usage.UsageError("--entity: %s" % (e,))
        if not self["entity_name"].id:
            raise usage.UsageError("--entity %s: give TYPE.ID, e.g. mon.a (the id may not be empty)"
                                   % self["entity"])
        if self["policy"] not in ("stateless", "stateful"):
            raise usage.UsageError("--policy must be stateless or stateful")
        for key in ("keepalive", "idle-timeout", "handshake-timeout"):
            if self[key] < 0:
                raise usage.UsageError("--%s must not be negative (0 turns it off)" % key)
        if self["backlog"] <= 0:
            raise usage.UsageError("--backlog must be positive")
        if self["rev"] not in ("0", "1"):
            raise usage.UsageError("--rev must be 0 or 1")
        self._compression_options()
        specs = [s.strip() for s in self["auth"].split(",") if s.strip()]
        self["generated_keyring"] = None
        self["registration"] = None
        if self["mon"]:
            self._manager_options(specs)
            return self._service_options()
        handlers = []
        wants_state_keyring = any(spec.partition(":")[0].strip() == "cephx" and "keyring=" not in spec
                                  for spec in specs) and not self["keyring"]
        if wants_state_keyring:
            state_dir = self["state-dir"] or default_state_dir()
            try:
                self["keyring"], created = ensure_state_keyring(state_dir, self["entity_name"])
            except OSError as e:
                raise usage.UsageError("cannot create the state keyring in %s: %s" % (state_dir, e))
            self["generated_keyring"] = (self["keyring"], created)
        for spec in specs:
            name, _, args = spec.partition(":")
            if self["keyring"] and name.strip() == "cephx" and "keyring=" not in args:
                spec = ":".join(filter(None, (spec, "keyring=" + self["keyring"])))
            try:
                handlers.append(makeServerHandler(spec))
            except UnknownAuthMethod as e:
                raise usage.UsageError(str(e))
            except (ValueError, OSError) as e:
                raise usage.UsageError("--auth %s: %s" % (spec, e))
        self._check_handlers(handlers)
        self["auth_handlers"] = handlers
        self._service_options()

    def _check_handlers(self, handlers):
        if not handlers:
            raise usage.UsageError("--auth needs at least one method")
        if not any(m in h.allowed_modes for m in self["modes"] for h in handlers):
            raise usage.UsageError("no auth method in --auth %s can key any mode in --mode %s"
                                   % (self["auth"], self["mode"]))

    def _service_options(self):
        for key in ("max-segment", "max-frame", "max-control"):
            if self[key] <= 0:
                raise usage.UsageError("--%s must be positive" % key)
        name, _, args = self["service"].partition(":")
        factory = self["service_factory"] = findService(name)
        if self["inspect-log"]:
            if name != "inspect":
                raise usage.UsageError("--inspect-log works with --service inspect only (this run has "
                                       "--service %s): add --service inspect or drop --inspect-log" % name)
            if args:
                raise usage.UsageError("--inspect-log and --service %s both set the inspect service's "
                                       "arguments: give one of them" % self["service"])
            args = "jsonl=" + self["inspect-log"]
        self["service_args"] = args
        # the receiver is made now, so that a bad argument (an unwritable log,
        # a number that is not one) is a usage error, not a traceback later
        try:
            self["receiver"] = factory.makeReceiver(args)
        except usage.UsageError:
            raise
        except OSError as e:
            flag = "--inspect-log %s" % self["inspect-log"] if self["inspect-log"] else "--service %s" % self["service"]
            raise usage.UsageError("%s: cannot open %s (%s): give a path in an existing, writable directory"
                                   % (flag, e.filename, e.strerror))
        except Exception as e:
            raise usage.UsageError("--service %s: the %s service refused its arguments %r (%s: %s); "
                                   "see --help-services" % (self["service"], name, args, type(e).__name__, e))

    def _manager_options(self, specs):
        """
        --mon: our server is a service of a real cluster.  cephx checks
        authorizers only (no authority role) with the rotating secrets the
        registration fetches; the same methods log us in to the monitor.
        """
        from msgr2tx.auth import findAuthProvider
        from msgr2tx.auth.keyring import Keyring, KeyringError
        from msgr2tx.core.encoding import entity_addrvec_t
        from msgr2tx.client import parse_target

        entity = self["entity_name"]
        if entity.type != EntityType.MGR:
            raise usage.UsageError("--mon registers a manager: --entity must be mgr.NAME, not %s" % entity)
        try:
            parse_target(None, self["mon"], 1.0)
        except (ValueError, Msgr2Error) as e:
            raise usage.UsageError("--mon %s: %s" % (self["mon"], e))
        address = _listen_address(self["listen"][0], strict=True)
        if address is None:
            raise usage.UsageError("--mon needs the first --listen to be tcp with a fixed port and a "
                                   "concrete interface, the address clients will dial")
        try:
            addr = entity_addr_t.parse(address)
        except ValueError as e:
            raise usage.UsageError("--mon needs the first --listen to name an IP address and a valid "
                                   "port, the address clients will dial (%s)" % (e,))
        server_handlers, client_handlers = [], []
        keyring = None
        for spec in specs:
            name, _, args = spec.partition(":")
            name = name.strip()
            try:
                provider = findAuthProvider(name)
            except UnknownAuthMethod as e:
                raise usage.UsageError(str(e))
            kwargs = {}
            if name == "cephx":
                try:
                    path = parseArgString(args).get("keyring") or self["keyring"]
                except ValueError as e:
                    raise usage.UsageError("--auth %s: %s" % (spec, e))
                if not path:
                    raise usage.UsageError("--mon with cephx needs --keyring with %s's key" % entity)
                try:
                    keyring = Keyring.load(path)
                    keyring.get(entity)
                except (KeyringError, OSError) as e:
                    raise usage.UsageError("--keyring %s: %s" % (path, e))
                from msgr2tx.auth.cephx import CephxKeyServer
                kwargs = dict(key_server=CephxKeyServer(keyring, own_name=entity), authority=False,
                              service_ids=(EntityType.MGR,))
                args = ""
            try:
                server_handlers.append(provider.serverHandler(args, **kwargs))
                client_handlers.append(provider.clientHandler(args, name=entity, keyring=keyring))
            except (ValueError, OSError, Msgr2Error) as e:
                raise usage.UsageError("--auth %s: %s" % (spec, e))
        self._check_handlers(server_handlers)
        nonce = int.from_bytes(os.urandom(4), "little") or 1
        self["server_nonce"] = nonce
        self["auth_handlers"] = server_handlers
        self["registration"] = dict(
            mon=self["mon"], auth=client_handlers,
            server_addrs=entity_addrvec_t((entity_addr_t(addr.type, nonce, addr.host, addr.port),)),
            key_server=next((h.key_server for h in server_handlers if hasattr(h, "key_server")), None))


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
        compression=not options["no-compression"],
        compress_mode=options["compress-mode"],
        compression_methods=options["compression_methods"],
        compress_min_size=options["compress-min-size"],
        compress_secure=bool(options["compress-secure"]),
        fast_reconnect=not options["no-fast-reconnect"],
    )
    receiver = options["receiver"]
    top = MultiService()
    auth_handlers = options["auth_handlers"]
    registration = options.get("registration")
    if registration:
        from twisted.internet import reactor

        from msgr2tx.clients.mgr import DaemonSessions, MgrRegistration
        # answer the daemons' (the monitors') MMgrOpen as a manager does
        receiver = DaemonSessions(receiver)
        mon_config = ConnectionConfig(entity_type=name.type, name=name, modes=options["modes"],
                                      revision1=options["rev"] == "1")
        manager = MgrRegistration(reactor, registration["mon"], registration["auth"],
                                  registration["server_addrs"], key_server=registration["key_server"],
                                  config=mon_config)
        manager.setServiceParent(top)
        # cephx fetches the rotating secrets again when a ticket names a newer one
        auth_handlers = [manager.serverHandler(h) if manager.key_server is not None
                         and getattr(h, "key_server", None) is manager.key_server else h
                         for h in auth_handlers]
    factory = Msgr2ServerFactory(auth_handlers, receiver, config,
                                 handshake_timeout=options["handshake-timeout"] or None,
                                 nonce=options.get("server_nonce", 0))
    dial = _dialable_listen(options["listen"])
    for description in options["listen"]:
        service = strports.service(with_backlog(description, options["backlog"]), factory)
        if description == dial and not registration:
            # the commands name the port actually bound (tcp:0 picks one)
            service.endpoint = _ListeningEndpoint(service.endpoint,
                                                  lambda port: _print_how_to_connect(options, port.getHost()))
        service.setServiceParent(top)
    if registration:
        _print_lines(["msgr2: serving as %s of the cluster at %s: Ceph clients find this server in the "
                      "mgrmap, no connect commands" % (options["entity_name"], registration["mon"])])
    elif dial is None:
        _print_lines(_keyring_lines(options) + [
            "msgr2: no connect commands: msgr2tx ping and the ceph CLI dial v2 (tcp) addresses, and no "
            "--listen is tcp or tcp6"])
    return top


def _dialable_listen(descriptions) -> Optional[str]:
    """The first tcp or tcp6 listen description (the one the printed commands dial), else None."""
    for description in descriptions:
        try:
            endpoint = endpoints.serverFromString(None, description)
        except Exception:
            continue
        if isinstance(endpoint, (endpoints.TCP4ServerEndpoint, endpoints.TCP6ServerEndpoint)):
            return description
    return None


@implementer(IStreamServerEndpoint)
class _ListeningEndpoint:
    """A server endpoint that calls C{listening(port)} once it listens."""

    def __init__(self, endpoint, listening) -> None:
        #: the endpoint that listens (its options, e.g. the backlog, are its own)
        self.wrapped = endpoint
        self._listening = listening

    def listen(self, factory):
        def listened(port):
            self._listening(port)
            return port
        return self.wrapped.listen(factory).addCallback(listened)


def _command_path(name: str) -> str:
    """How to run the console script *name* from here: its bare name when the
    shell finds this installation's copy, else its path (e.g. C{.venv/bin/msgr2tx})."""
    path = os.path.join(os.path.dirname(sys.executable), name)
    if not os.path.exists(path) or shutil.which(name) == path:
        return name
    relative = os.path.relpath(path)
    return relative if not relative.startswith("..") else path


def _print_lines(lines) -> None:
    # the terminal twistd started on: once twistd logs, sys.stdout is its log
    out = sys.__stdout__ or sys.stdout
    out.write("\n".join(lines) + "\n")
    out.flush()


def _keyring_lines(options):
    generated = options.get("generated_keyring")
    if not generated:
        return []
    path, created = generated
    if not created:
        return ["msgr2: using keyring %s" % path]
    return ["msgr2: created keyring %s (keys for client.admin and %s)" % (path, options["entity_name"])]


def _admin_keyring(options):
    """(path, None) of a keyring holding client.admin for the cephx commands, else (None, why not)."""
    from msgr2tx.auth.keyring import Keyring, KeyringError

    path = options["keyring"]
    for spec in (s.strip() for s in options["auth"].split(",")):
        name, _, args = spec.partition(":")
        if name.strip() == "cephx" and "keyring=" in args:
            try:
                path = parseArgString(args).get("keyring") or path
            except ValueError:
                pass
    if not path:
        return None, "cephx has no keyring"
    try:
        Keyring.load(path).get(EntityName.parse("client.admin"))
    except (KeyringError, OSError) as e:
        return None, "keyring %s has no usable client.admin key (%s)" % (path, e)
    return os.path.abspath(path), None


def connect_commands(options, host: str, port: int):
    """
    The commands that reach this server as started, and why others are
    left out: (commands, notes).  Each command is (kind, line), kind one of
    C{"ping cephx"}, C{"ping none"}, C{"ceph cephx"}, C{"ceph none"}.
    """
    from msgr2tx.core.constants import AuthMethod

    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    address = "v2:[%s]:%d" % (host, port) if ":" in host else "v2:%s:%d" % (host, port)
    tool = _command_path("msgr2tx")
    modes = options["modes"]
    # (first handler of each method; a plugin's handler may be of a method not listed here)
    handlers = {}
    for h in options["auth_handlers"]:
        handlers.setdefault(getattr(h, "method", None), h)
    entity = options["entity_name"]
    commands, notes = [], []

    def mode_for(handler):
        return next((m for m in modes if m in getattr(handler, "allowed_modes", ())), None)

    cephx_keyring = None
    if AuthMethod.CEPHX in handlers:
        if entity.type != EntityType.MON:
            notes.append("no cephx commands: a client gets a ticket for %s from a monitor, and this server "
                         "(not a monitor) cannot give one; use auth none, or --entity mon.NAME" % entity)
        else:
            cephx_keyring, why = _admin_keyring(options)
            if cephx_keyring and re.search(r"[\s,;]", cephx_keyring):
                # (Ceph reads --keyring as a list of paths split at these)
                why = ("--keyring takes a list of paths separated by spaces, commas or semicolons, as in "
                       "Ceph, so it cannot name %s; use a keyring path without them" % shlex.quote(cephx_keyring))
                cephx_keyring = None
            mode = mode_for(handlers[AuthMethod.CEPHX])
            if why:
                notes.append("no cephx commands: %s" % why)
            elif mode is not None and cephx_keyring:
                commands.append(("ping cephx", "%s ping %s --auth cephx --keyring %s --mode %s"
                                 % (shlex.quote(tool), address, shlex.quote(cephx_keyring),
                                    mode.name.lower())))
    none_mode = mode_for(handlers[AuthMethod.NONE]) if AuthMethod.NONE in handlers else None
    if none_mode is not None:
        commands.append(("ping none", "%s ping %s --auth none --mode %s"
                         % (shlex.quote(tool), address, none_mode.name.lower())))
    if not shutil.which("ceph"):
        notes.append("the ceph CLI can connect too (apt-get install ceph-common; see docs/quickstart.md)")
    elif options["service_factory"].name != "echo":
        notes.append("no ceph CLI commands: ceph pings a monitor and waits for the answer, which the echo "
                     "service gives and --service %s may not" % options["service_factory"].name)
    elif entity.type != EntityType.MON:
        notes.append("no ceph CLI commands: ceph -m dials a monitor, and this server is %s" % entity)
    else:
        if cephx_keyring:
            commands.append(("ceph cephx", "ceph -c /dev/null -m %s -n client.admin --keyring %s "
                             "ping mon.noname-a" % (address, shlex.quote(cephx_keyring))))
        if none_mode is not None:
            commands.append(("ceph none", "ceph -c /dev/null -m %s --auth_client_required none "
                             "ping mon.noname-a" % (address,)))
    return commands, notes


def _print_how_to_connect(options, host) -> None:
    try:
        commands, notes = connect_commands(options, host.host, host.port)
    except Exception as e:
        # (never let the banner stop the server)
        _print_lines(["msgr2: no connect commands (%s: %s)" % (type(e).__name__, e)])
        return
    lines = _keyring_lines(options)
    pings = [line for kind, line in commands if kind.startswith("ping")]
    cephs = [line for kind, line in commands if kind.startswith("ceph")]
    if pings:
        lines.append("msgr2: connect with msgr2tx:")
        lines += ["    " + line for line in pings]
    if cephs:
        lines.append("msgr2: connect with the ceph CLI (each sends one ping, exits 0 and prints None,"
                     " because the echo service returns the ping empty):")
        lines += ["    " + line for line in cephs]
    lines += ["msgr2: " + note for note in notes]
    _print_lines(lines)


__all__ = ["Options", "makeService", "EntityType"]
