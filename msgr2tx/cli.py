"""
The C{msgr2tx} command line (also C{python -m msgr2tx})::

    msgr2tx command --mon v2:127.0.0.1:3300 '{"prefix": "version"}'
    msgr2tx ping v2:127.0.0.1:3300 --count 5
    msgr2tx keyring create ./keyring --name client.admin --gen-key --cap mon 'allow *'
    msgr2tx keyring print ./keyring --name client.admin
    msgr2tx version

Every subcommand takes C{--json} for machine-readable output on stdout.
Exit codes: 0 success, 1 the operation failed (refused command, lost
connection, protocol error, unreadable keyring, timed out), 2 bad usage,
130 interrupted (Ctrl-C).  Errors are one line on stderr: C{msgr2tx:
error: ...}.  A run that times out or is interrupted first prints the
summary of what it did so far (marked C{"complete": false} in JSON).
"""

import argparse
import json
import sys
import time

from msgr2tx._version import __version__

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
#: interrupted (SIGINT, Ctrl-C), as a shell reports it: 128 + 2
EXIT_INTERRUPTED = 130


def _common(parser):
    parser.add_argument("--auth", default="none",
                        help="auth methods in order, comma separated, each NAME[:ARGS] (default none)")
    parser.add_argument("--mode", default="crc",
                        help="connection modes in order of preference: crc, secure (default crc)")
    parser.add_argument("--rev", choices=("0", "1"), default="1",
                        help="1 offers msgr2.1; 0 leaves REVISION_1 out of the banner, so the peer uses msgr2.0")
    parser.add_argument("--name", default="client.admin", help="our entity name (default client.admin)")
    parser.add_argument("--keyring", help="Ceph keyring with our key (for --auth cephx)")
    parser.add_argument("--via", help="dial this address or endpoint instead (a tunnel or proxy); "
                                      "the handshake still names the target")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds for the whole operation")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.add_argument("-v", "--verbose", action="store_true", help="log protocol events to stderr")
    _compression_args(parser)


def _compression_args(parser):
    """On-wire compression, with Ceph's option names (it applies only when the peer is an OSD)."""
    parser.add_argument("--compress-mode", choices=("none", "force"), default="none",
                        help="compress frames to OSD peers (Ceph's ms_osd_compress_mode; default none)")
    parser.add_argument("--compress-methods", default="snappy",
                        help="methods in order of preference: snappy, zlib, zstd, lz4 "
                             "(Ceph's ms_osd_compression_algorithm; default snappy)")
    parser.add_argument("--compress-min-size", type=int, default=1024,
                        help="smaller frames go out uncompressed (Ceph's ms_osd_compress_min_size; default 1024)")
    parser.add_argument("--compress-secure", action="store_true",
                        help="compress secure connections too (Ceph's ms_compress_secure)")
    parser.add_argument("--no-compression", action="store_true",
                        help="leave the COMPRESSION bit out of the banner")


def _compression_config(args) -> dict:
    """The ConnectionConfig fields of the compression options; ValueError for bad values."""
    from msgr2tx.core.compression import parse_algorithms

    return dict(compression=not args.no_compression, compress_mode=args.compress_mode,
                compression_methods=parse_algorithms(args.compress_methods),
                compress_min_size=args.compress_min_size, compress_secure=args.compress_secure)


def build_parser():
    parser = argparse.ArgumentParser(prog="msgr2tx", description="Talk Ceph msgr2 from the command line.")
    sub = parser.add_subparsers(dest="cmd", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("command", help="run a monitor command and print its output")
    p.add_argument("--mon", required=True, help="monitor address, e.g. v2:127.0.0.1:3300")
    _common(p)
    p.add_argument("command", help="the command as JSON, e.g. '{\"prefix\": \"version\"}'")

    p = sub.add_parser("ping", help="handshake, then KEEPALIVE2 round trips")
    p.add_argument("target", help="peer address, e.g. v2:127.0.0.1:3300")
    p.add_argument("--count", type=int, default=3, help="number of round trips (default 3)")
    p.add_argument("--mon", help="monitor to get a service ticket from first, when the target is not a monitor")
    _common(p)

    p = sub.add_parser("echo-test", help="send numbered messages to an echo server and check the echoes")
    p.add_argument("--target", required=True, help="the echo server, e.g. v2:127.0.0.1:3300")
    p.add_argument("--count", type=int, default=1000, help="messages to send (default 1000)")
    p.add_argument("--size", type=int, default=4096, help="payload bytes per message (default 4096)")
    p.add_argument("--window", type=int, default=16, help="messages in flight (default 16)")
    p.add_argument("--policy", choices=("lossless", "lossy"), default="lossless",
                   help="lossless reconnects and replays; lossy gives up on what a fault lost")
    p.add_argument("--progress", action="store_true", default=None,
                   help="show progress on stderr (default: when stderr is a terminal)")
    _common(p)

    _keyring_parser(sub)

    p = sub.add_parser("version", help="print the msgr2tx version")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    return parser


def _keyring_parser(sub):
    p = sub.add_parser("keyring", help="create, edit and read Ceph keyrings (ceph-authtool's format)",
                       description="Create, edit and read Ceph keyring files. They are written in "
                                   "ceph-authtool's format, mode 0600, replaced atomically.")
    ksub = p.add_subparsers(dest="keyring_cmd", metavar="ACTION")
    ksub.required = True

    def key_options(q, required_name=True):
        q.add_argument("-n", "--name", required=required_name, help="the entity, e.g. client.admin")
        how = q.add_mutually_exclusive_group()
        how.add_argument("--gen-key", action="store_true", help="generate a new random key for the entity")
        how.add_argument("--key", metavar="BASE64", help="use this key (as printed by 'keyring print' "
                                                         "or ceph-authtool --gen-print-key)")
        q.add_argument("--cap", nargs=2, action="append", metavar=("SERVICE", "CAPS"), default=[],
                       help="set the entity's caps for a service, e.g. --cap mon 'allow *' (repeatable)")

    q = ksub.add_parser("create", help="create a new keyring, optionally with a first entity")
    q.add_argument("keyring", help="the keyring file to create")
    q.add_argument("--force", action="store_true", help="replace the file if it exists")
    key_options(q, required_name=False)
    q.add_argument("--json", action="store_true", help="print machine-readable JSON")

    q = ksub.add_parser("add", help="add an entity (or replace its key and caps) in an existing keyring")
    q.add_argument("keyring", help="the keyring file")
    key_options(q)
    q.add_argument("--json", action="store_true", help="print machine-readable JSON")

    q = ksub.add_parser("print", help="print an entity's key (like ceph-authtool -p -n NAME)")
    q.add_argument("keyring", help="the keyring file")
    q.add_argument("-n", "--name", required=True, help="the entity, e.g. client.admin")
    q.add_argument("--json", action="store_true", help="print machine-readable JSON (entity, key, caps)")

    q = ksub.add_parser("list", help="print every entity with its key and caps (like ceph-authtool -l)")
    q.add_argument("keyring", help="the keyring file")
    q.add_argument("--json", action="store_true", help="print machine-readable JSON")

    q = ksub.add_parser("gen-key", help="print a new random key (like ceph-authtool --gen-print-key)")
    q.add_argument("--json", action="store_true", help="print machine-readable JSON")

    for q in ksub.choices.values():
        q.set_defaults(keyring_parser=q)


def _client_setup(args):
    from msgr2tx.auth import findAuthProvider, parseAuthSpec
    from msgr2tx.core.config import ConnectionConfig
    from msgr2tx.core.encoding import EntityName
    from msgr2tx.tap import parse_modes

    name = EntityName.parse(args.name)
    handlers = []
    for spec in filter(None, (s.strip() for s in args.auth.split(","))):
        method, argstring = parseAuthSpec(spec)
        if args.keyring and "keyring=" not in argstring and method == "cephx":
            argstring = ":".join(filter(None, (argstring, "keyring=" + args.keyring)))
        handlers.append(findAuthProvider(method).clientHandler(argstring, name=name))
    if not handlers:
        raise ValueError("--auth needs at least one method")
    config = ConnectionConfig(entity_type=name.type, name=name, modes=parse_modes(args.mode),
                              revision1=args.rev == "1", **_compression_config(args))
    return handlers, config


def _fail(message):
    print("msgr2tx: error: %s" % message, file=sys.stderr)
    return EXIT_FAILED


async def _command(reactor, args):
    import dataclasses
    from twisted.internet import defer

    from msgr2tx.client import connect
    from msgr2tx.core.encoding import EntityType
    from msgr2tx.monclient import MonClient

    try:
        cmd = json.loads(args.command)
    except ValueError as e:
        print("msgr2tx: error: the command is not JSON: %s" % e, file=sys.stderr)
        return EXIT_USAGE
    handlers, config = _client_setup(args)
    # --mon must name a monitor: another daemon's HELLO ends the connection at once
    config = dataclasses.replace(config, peer_type=EntityType.MON)
    monclient = MonClient()
    started = time.perf_counter()
    protocol = None
    try:
        protocol = await connect(reactor, args.mon, handlers, config, receiver=monclient, timeout=args.timeout,
                                 via=args.via)
        result, status, output = await monclient.command(cmd)
    except defer.CancelledError:
        # timed out or interrupted: say how far we got
        info = protocol.info if protocol is not None else None
        stage = "waiting for the reply" if info is not None else "connecting"
        seconds = time.perf_counter() - started
        if args.json:
            print(json.dumps({"result": None, "complete": False, "stage": stage, "seconds": round(seconds, 3),
                              "peer": str(info.peer_name) if info else None}))
        elif info is not None:
            print("msgr2tx: sent the command to %s at %s; no reply after %.1fs"
                  % (info.peer_name, args.mon, seconds), file=sys.stderr)
        else:
            print("msgr2tx: no session with %s after %.1fs" % (args.mon, seconds), file=sys.stderr)
        raise
    finally:
        if protocol is not None:
            protocol.close()
    if args.json:
        print(json.dumps({"result": result, "status": status,
                          "output": output.decode("utf-8", "replace")}))
    else:
        sys.stdout.write(output.decode("utf-8", "replace"))
        sys.stdout.flush()
        if status:
            print(status, file=sys.stderr)
    if result != 0:
        return _fail("command returned %d%s" % (result, ": " + status if status else ""))
    return EXIT_OK


async def _ping(reactor, args):
    import dataclasses
    from twisted.internet import defer

    from msgr2tx.client import connect
    from msgr2tx.core.encoding import EntityType

    if args.count < 0:
        print("msgr2tx: error: --count must not be negative", file=sys.stderr)
        return EXIT_USAGE
    handlers, config = _client_setup(args)
    protocol = None
    handshake = None
    rtts = []

    def summary(complete):
        info = protocol.info if protocol is not None else None
        if args.json:
            result = {"peer": str(info.peer_name) if info else None,
                      "mode": info.mode_name if info else None,
                      "revision": info.revision if info else None,
                      "compression": info.compression_name if info else None,
                      "handshake_ms": handshake * 1e3 if handshake is not None else None,
                      "rtt_ms": [r * 1e3 for r in rtts]}
            if not complete:
                result["complete"] = False
            print(json.dumps(result))
            return
        if info is not None:
            print("connected to %s (%s) mode=%s rev%d handshake %.3f ms" % (
                args.target, info.peer_name, info.mode_name, info.revision, handshake * 1e3))
        for i, rtt in enumerate(rtts, 1):
            print("keepalive %d: %.3f ms" % (i, rtt * 1e3))
        if not complete:
            print("%d of %d keepalives answered%s" % (
                len(rtts), args.count, "" if info is not None else " (no session with %s)" % args.target))

    try:
        if args.mon:
            # a daemon other than a monitor wants an authorizer: get its ticket first
            from msgr2tx.monclient import MonClient
            monclient = MonClient()
            mon = await connect(reactor, args.mon, handlers, dataclasses.replace(config, peer_type=EntityType.MON),
                                receiver=monclient, timeout=args.timeout)
            mon.close()
            handlers = [h.spawn() if hasattr(h, "spawn") else h for h in handlers]
        started = time.perf_counter()
        protocol = await connect(reactor, args.target, handlers, config, timeout=args.timeout, via=args.via)
        handshake = time.perf_counter() - started
        for _ in range(args.count):
            rtts.append(await protocol.keepalive())
    except defer.CancelledError:
        summary(complete=False)  # timed out or interrupted
        raise
    finally:
        if protocol is not None:
            protocol.close()
    summary(complete=True)
    return EXIT_OK


ECHO_TEST_TYPE = 0x7FF0


async def _echo_test(reactor, args):
    import dataclasses
    import struct

    from twisted.internet import defer

    from msgr2tx.client import ReconnectingClient
    from msgr2tx.core.messages import GenericMessage

    if args.count < 0 or args.size < 0 or args.window < 1:
        print("msgr2tx: error: --count and --size must not be negative, --window must be positive",
              file=sys.stderr)
        return EXIT_USAGE
    lossless = args.policy == "lossless"
    handlers, config = _client_setup(args)
    # keepalives as a Ceph MonClient sends them (mon_client_ping_interval,
    # 10 s); the default timeout is then mon_client_ping_timeout's 30 s
    config = dataclasses.replace(config, lossy=not lossless, keepalive_interval=10.0)
    payload = bytes(args.size)
    progress = sys.stderr.isatty() if args.progress is None else args.progress

    class Downgraded(Exception):
        pass

    class Tally:
        def __init__(self):
            self.seen = set()
            self.received = self.duplicates = self.out_of_order = 0
            self.highest = 0
            self.waiter = None
            #: the PeerInfo of a session granted lossy where we asked for lossless
            self.downgraded = None

        def connectionReady(self, protocol, info):
            if lossless and info.downgraded and self.downgraded is None:
                self.downgraded = info
                self._wake()

        def connectionLost(self, protocol, reason):
            pass

        def messageReceived(self, protocol, message):
            if message.TYPE != ECHO_TEST_TYPE or len(message.front) < 8:
                return
            (n,) = struct.unpack_from("<Q", message.front)
            if n in self.seen:
                self.duplicates += 1
                return
            self.seen.add(n)
            self.received += 1
            if n < self.highest:
                self.out_of_order += 1
            self.highest = max(self.highest, n)
            self._wake()

        def _wake(self):
            if self.waiter is not None:
                d, self.waiter = self.waiter, None
                d.callback(None)

        def check(self):
            if self.downgraded is not None:
                raise Downgraded()

        async def wait(self, timeout):
            self.check()
            d = self.waiter = defer.Deferred()
            call = reactor.callLater(timeout, lambda: d.called or d.callback(None))
            try:
                await d  # a cancellation (--timeout, Ctrl-C) goes on up
            finally:
                if call.active():
                    call.cancel()
            self.check()

    tally = Tally()
    client = ReconnectingClient(reactor, args.target, handlers, config, receiver=tally, timeout=args.timeout,
                                via=args.via)
    client.startService()
    started = time.perf_counter()
    sent = 0
    complete = False
    try:
        await client.whenReady()
        tally.check()
        for n in range(1, args.count + 1):
            while n - 1 - tally.received >= args.window:
                before = tally.received
                await tally.wait(5.0)
                if not lossless and tally.received == before:
                    break  # a lossy fault ate some: go on
            await client.whenWritable()
            client.sendMessage(GenericMessage(ECHO_TEST_TYPE, struct.pack("<Q", n) + payload))
            sent = n
            if progress and n % 100 == 0:
                sys.stderr.write("\rsent %d/%d, received %d" % (n, args.count, tally.received))
        deadline = time.perf_counter() + (args.timeout if lossless else 5.0)
        while tally.received < args.count and time.perf_counter() < deadline:
            before = tally.received
            await tally.wait(1.0)
            if not lossless and tally.received == before:
                break
        complete = True
    except Downgraded:
        info = tally.downgraded
        return _fail("asked %s (%s) for a lossless session and was granted a lossy one, which loses the "
                     "messages in flight at a fault; a lossless echo test needs a server with a stateful "
                     "policy (twistd msgr2 --policy stateful)" % (args.target, info.peer_name))
    finally:
        if progress:
            sys.stderr.write("\n")
        await client.stopService()
        seconds = time.perf_counter() - started
        if tally.downgraded is None:
            # the summary, partial when timed out or interrupted
            result = {
                "sent": sent,
                "received": tally.received,
                "duplicates": tally.duplicates,
                "out_of_order": tally.out_of_order,
                "reconnects": max(0, client.connections - 1),
                "seconds": round(seconds, 3),
                "MB/s": round(tally.received * args.size / seconds / 1e6, 3) if seconds else 0.0,
            }
            if not complete:
                result["complete"] = False
            print(json.dumps(result))
    lost = args.count - tally.received
    if lossless and (lost or tally.duplicates or tally.out_of_order):
        return _fail("lossless run lost %d, duplicated %d and reordered %d messages"
                     % (lost, tally.duplicates, tally.out_of_order))
    return EXIT_OK


def _run(coro_fn, args):
    from twisted.internet import defer, task
    from twisted.internet.error import ConnectError, TimeoutError as TxTimeoutError

    from msgr2tx.errors import Msgr2Error

    outcome = {"code": EXIT_FAILED}
    stopped: list = []  # what cancelled the run first: "timeout" or "interrupt"

    async def main(reactor):
        if args.verbose:
            from twisted.logger import globalLogBeginner, textFileLogObserver
            globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stderr)], redirectStandardIO=False)

        def stop(reason):
            # the subcommand sees a CancelledError, prints its partial summary and re-raises
            if not stopped:
                stopped.append(reason)
                d.cancel()
            elif reason == "interrupt":
                outcome["code"] = EXIT_INTERRUPTED  # a second Ctrl-C: no more waiting
                reactor.stop()

        timer = reactor.callLater(args.timeout, stop, "timeout")
        reactor.callWhenRunning(_on_sigint, reactor, lambda: stop("interrupt"))
        try:
            d = defer.ensureDeferred(coro_fn(reactor, args))
            outcome["code"] = await d
        except defer.CancelledError:
            if stopped == ["interrupt"]:
                print("msgr2tx: interrupted", file=sys.stderr)
                outcome["code"] = EXIT_INTERRUPTED
            else:
                outcome["code"] = _fail("timed out after %gs" % args.timeout)
        except (Msgr2Error, ConnectError, TxTimeoutError, ValueError, OSError) as e:
            outcome["code"] = _fail("%s: %s" % (type(e).__name__, e))
        except Exception as e:
            # still one line on stderr; -v logs the traceback
            if args.verbose:
                from twisted.logger import Logger
                Logger().failure("msgr2tx %s failed" % args.cmd)
            outcome["code"] = _fail("%s: %s" % (type(e).__name__, e))
        finally:
            if timer.active():
                timer.cancel()

    def start(reactor):
        return defer.ensureDeferred(main(reactor))

    try:
        task.react(start)
    except SystemExit:
        pass
    return outcome["code"]


def _on_sigint(reactor, callback) -> None:
    """Ctrl-C (SIGINT) calls C{callback} in the reactor instead of stopping it."""
    import signal
    signal.signal(signal.SIGINT, lambda signum, frame: reactor.callFromThread(callback))


def _keyring(args):
    import os

    from msgr2tx.auth.keyring import CryptoKey, Keyring, KeyringError
    from msgr2tx.core.encoding import EntityName
    from msgr2tx.errors import Msgr2Error

    parser = args.keyring_parser
    action = args.keyring_cmd
    if action == "gen-key":
        key = CryptoKey.generate().to_base64()
        print(json.dumps({"key": key}) if args.json else key)
        return EXIT_OK

    # usage problems first (exit code 2), before touching any file
    name = None
    if getattr(args, "name", None) is not None:
        try:
            name = EntityName.parse(args.name)
        except ValueError as e:
            parser.error("--name: %s" % e)
    key = None
    caps = {}
    if action in ("create", "add"):
        if name is None and (args.gen_key or args.key or args.cap):
            parser.error("--gen-key, --key and --cap need --name")
        if name is not None and not (args.gen_key or args.key):
            parser.error("--name needs --gen-key or --key")
        if args.key:
            try:
                key = CryptoKey.from_base64(args.key.strip())
            except (Msgr2Error, ValueError):
                parser.error("--key is not a valid base64 cephx key")
        elif args.gen_key:
            key = CryptoKey.generate()
        for service, cap in args.cap:
            caps[service] = cap

    try:
        if action == "create":
            if os.path.exists(args.keyring) and not args.force:
                return _fail("%s exists (use --force to replace it)" % args.keyring)
            ring = Keyring(args.keyring)
            if name is not None:
                ring.add(name, key, caps)
            ring.save()
            result = {"keyring": args.keyring, "created": True, "entities": [str(n) for n in ring.entities()]}
            if not args.json:
                print("created keyring %s" % args.keyring, file=sys.stderr)
        elif action == "add":
            ring = Keyring.load(args.keyring)
            replaced = name in ring
            ring.add(name, key, caps)
            ring.save()
            result = {"keyring": args.keyring, "entity": str(name), "replaced": replaced}
            if not args.json:
                print("%s %s in %s" % ("replaced" if replaced else "added", name, args.keyring), file=sys.stderr)
        elif action == "print":
            entry = Keyring.load(args.keyring).entry(name)
            if args.json:
                result = _entry_json(entry)
            else:
                print(entry.key.to_base64())
                return EXIT_OK
        else:  # list
            ring = Keyring.load(args.keyring)
            if args.json:
                result = {"keyring": args.keyring, "entities": [_entry_json(ring.entry(n)) for n in ring.entities()]}
            else:
                sys.stdout.write(ring.to_text())
                return EXIT_OK
    except KeyringError as e:
        return _fail(str(e))
    if args.json:
        print(json.dumps(result))
    return EXIT_OK


def _entry_json(entry):
    return {"entity": str(entry.name), "key": entry.key.to_base64(), "caps": dict(entry.caps)}


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.cmd == "version":
        print(json.dumps({"version": __version__}) if args.json else "msgr2tx %s" % __version__)
        return EXIT_OK
    if args.cmd == "keyring":
        return _keyring(args)
    if args.timeout <= 0:
        parser.error("--timeout must be positive")
    try:
        _client_setup(args)
    except Exception as e:
        parser.error(str(e))
    runner = {"command": _command, "ping": _ping, "echo-test": _echo_test}[args.cmd]
    return _run(runner, args)


def regen_plugins(argv=None):
    """
    The C{msgr2tx-regen-plugins} script: rebuild Twisted's plugin cache
    (C{dropin.cache}) in every C{twisted/plugins} directory, as root after a
    system-wide install.  Exit code 1 if a directory holding msgr2tx's
    plugins could not be written.
    """
    import glob
    import os

    parser = argparse.ArgumentParser(
        prog="msgr2tx-regen-plugins",
        description="Rebuild Twisted's plugin cache (dropin.cache) after installing msgr2tx or a plugin.")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    args = parser.parse_args(argv)

    from twisted.plugin import IPlugin, getPlugins
    import twisted.plugins

    from msgr2tx.interfaces import IAuthProviderFactory, IMsgr2ServiceFactory

    list(getPlugins(IPlugin))
    stale = []
    dirs = []
    for directory in dict.fromkeys(os.path.realpath(d) for d in twisted.plugins.__path__):
        ours = glob.glob(os.path.join(directory, "msgr2tx_*.py"))
        if not ours:
            continue
        dirs.append(directory)
        cache = os.path.join(directory, "dropin.cache")
        if not os.path.exists(cache) or os.path.getmtime(cache) < max(os.path.getmtime(f) for f in ours):
            stale.append(directory)
    result = {
        "directories": dirs,
        "auth": sorted(p.name for p in getPlugins(IAuthProviderFactory)),
        "services": sorted(p.name for p in getPlugins(IMsgr2ServiceFactory)),
        "not_writable": stale,
    }
    if args.json:
        print(json.dumps(result))
    else:
        for d in dirs:
            print("plugin cache: %s" % os.path.join(d, "dropin.cache"))
        print("auth plugins: %s" % ", ".join(result["auth"]))
        print("services: %s" % ", ".join(result["services"]))
    if stale:
        return _fail("could not write the plugin cache in %s (run this as the user who installed msgr2tx)"
                     % ", ".join(stale))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
