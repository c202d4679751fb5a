"""
The C{msgr2tx} command line (also C{python -m msgr2tx})::

    msgr2tx command -c /etc/ceph/ceph.conf '{"prefix": "version"}'
    msgr2tx command --mon v2:127.0.0.1:3300 '{"prefix": "version"}'
    msgr2tx ping v2:127.0.0.1:3300 --count 5
    msgr2tx keyring create ./keyring --name client.admin --gen-key --cap mon 'allow *'
    msgr2tx keyring print ./keyring --name client.admin
    msgr2tx version

The connecting subcommands take the C{ceph} CLI's options (C{-c}, C{-m},
C{-n}, C{--id}, C{-k}, C{--format}, C{--connect-timeout}, also from
C{CEPH_ARGS}) and read ceph.conf as Ceph does (L{msgr2tx.cephconf}).

Every subcommand takes C{--json} for machine-readable output on stdout.
Exit codes: 0 success, 1 the operation failed (refused command, lost
connection, protocol error, unreadable keyring or conf), 2 bad usage, 130
interrupted.  Errors are one line on stderr, C{msgr2tx: error: ...}, saying
what happened, where and what to do (L{msgr2tx.errors.OperatorError}); with
C{--json} a JSON error object goes to stdout as well.  A run that times out
or is interrupted first prints the summary of what it did so far (marked
C{"complete": false} in JSON).
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


#: exit code after Ctrl-C (128 + SIGINT), as shells report it
EXIT_INTERRUPTED = 130

#: seconds each connection attempt (TCP connect and handshake) may take
#: when --connect-timeout is not given (never more than --timeout)
DEFAULT_CONNECT_TIMEOUT = 10.0


def _ceph_options(parser, mon_help="monitor addresses in Ceph's mon_host syntax (default: the conf file's)",
                  mon_aliases=("--mon",)):
    """The options the ceph CLI shares; also read from CEPH_ARGS."""
    parser.add_argument("-c", "--conf", help="ceph.conf to read (default $CEPH_CONF, else /etc/ceph/$cluster.conf, "
                                             "~/.ceph/$cluster.conf, ./$cluster.conf)")
    parser.add_argument("--cluster", help="cluster name for $cluster (default: NAME of -c NAME.conf, else ceph)")
    parser.add_argument("-m", "--mon-host", *mon_aliases, dest="mon_host", metavar="MON_HOST", help=mon_help)
    parser.add_argument("-n", "--name", help="our entity name (default client.admin)")
    parser.add_argument("-i", "--id", "--user", dest="id", help="our client id: --id bob is --name client.bob")
    parser.add_argument("-k", "--keyring", help="Ceph keyring with our key (default: the conf's keyring, else "
                                                "/etc/ceph/$cluster.$name.keyring and Ceph's other defaults)")
    parser.add_argument("--keyfile", help="a file holding just our base64 key")
    parser.add_argument("--key", metavar="KEY", help="our base64 key itself, as Ceph's --key (it shows in the "
                                                     "process list: prefer -k or --keyfile); never printed")
    parser.add_argument("--auth", "--auth-client-required", dest="auth",
                        help="auth methods in order, comma separated, each NAME[:ARGS] "
                             "(default: the conf's auth_client_required, else cephx, none; "
                             "cephx is left out when no key is found)")
    parser.add_argument("--mode", help="connection modes in order of preference: crc, secure (default: the conf's "
                                       "ms_mon_client_mode for monitors, secure crc; ms_client_mode otherwise, "
                                       "crc secure)")
    parser.add_argument("--connect-timeout", type=float, metavar="SECONDS",
                        help="seconds for each connection attempt, TCP connect and handshake (default %g)"
                             % DEFAULT_CONNECT_TIMEOUT)


def _common(parser, **kw):
    _ceph_options(parser, **kw)
    parser.add_argument("--rev", choices=("0", "1"), default="1",
                        help="1 offers msgr2.1; 0 leaves REVISION_1 out of the banner, so the peer uses msgr2.0")
    parser.add_argument("--via", help="dial this address or endpoint instead (a tunnel or proxy); "
                                      "the handshake still names the target")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds for the whole operation")
    parser.add_argument("-f", "--format", choices=("json", "json-pretty", "plain"),
                        help="output format (json and json-pretty: as --json)")
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
    parser.add_argument("--version", action="version", version="msgr2tx %s" % __version__,
                        help="print the msgr2tx version and exit (as msgr2tx version)")
    sub = parser.add_subparsers(dest="cmd", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("command", help="run a monitor command and print its output",
                       description="Run a monitor command, typed as words as for 'ceph' (osd pool ls detail; "
                                   "named arguments as --NAME=VALUE, flags as --yes-i-really-mean-it) "
                                   "or as one JSON object.")
    _common(p)
    p.add_argument("command", nargs="+", metavar="WORD",
                   help="the command as words (status, osd pool create p1 8), checked against the monitor's "
                        "own command descriptions, or as JSON, e.g. '{\"prefix\": \"version\"}'")

    p = sub.add_parser("ping", help="handshake, then KEEPALIVE2 round trips",
                       description="Connect to a msgr2 peer (a monitor, OSD, manager, or an msgr2tx server), "
                                   "complete the handshake, then time KEEPALIVE2 round trips. A daemon other "
                                   "than a monitor needs a service ticket: give the monitors with -m.")
    p.add_argument("target", help="peer address, e.g. v2:127.0.0.1:3300, or a daemon's name (osd.0, mon.a), "
                                   "looked up in the maps of the monitors of -m or the conf file")
    p.add_argument("--count", type=int, default=3, help="number of round trips (default 3)")
    _common(p, mon_help="monitors (mon_host syntax) to log in to first for a service ticket, "
                        "when the target is not a monitor (cephx); not taken from the conf file")

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
    _rados_parser(sub)

    p = sub.add_parser("version", help="print the msgr2tx version")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    _no_abbreviations(parser)
    return parser


def _no_abbreviations(parser):
    """
    allow_abbrev=False on the parser and every subparser: C{--keyr} is not
    C{--keyring} (and C{--key} is Ceph's option, not an ambiguous prefix).
    """
    parser.allow_abbrev = False
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _no_abbreviations(child)


class _Usage:
    """
    C{error()} for a value argparse accepted but we refuse: a one-line usage
    of the subcommand (its positionals; C{--help} lists the options, which
    argparse's own usage spells out over a dozen lines) and the error, with
    the one C{msgr2tx: error:} prefix.
    """

    def __init__(self, parser):
        self.parser = parser

    def error(self, message):
        parser = self.parser
        positionals = [action.metavar or action.dest for action in parser._actions
                       if not action.option_strings and action.dest != argparse.SUPPRESS
                       and not isinstance(action, argparse._SubParsersAction)]
        print("usage: %s [options] %s(%s --help lists the options)"
              % (parser.prog, "".join("%s " % p for p in positionals), parser.prog), file=sys.stderr)
        print("msgr2tx: error: %s" % message, file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def _subparser(parser, args):
    """The parser of the subcommand (and rados operation) C{args} came from, for its usage line."""
    for name in (getattr(args, "cmd", None), getattr(args, "rados_cmd", None), getattr(args, "keyring_cmd", None)):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction) and name in action.choices:
                parser = action.choices[name]
                break
    return parser


def _rados_parser(sub):
    p = sub.add_parser("rados", help="object I/O in the style of the rados tool: put, get, stat, rm, ls",
                       description="Read and write RADOS objects (no librados), as 'rados -p POOL OP ...' does.")
    _common(p)
    pool_help, ns_help = "the pool", "the object namespace (default: none)"
    p.add_argument("-p", "--pool", help=pool_help)
    p.add_argument("-N", "--namespace", default="", help=ns_help)
    ops = p.add_subparsers(dest="rados_cmd", metavar="OP")
    ops.required = True
    for name, help_text, args in (
            ("put", "write FILE (- for stdin) as the object's whole data",
             (("object", None, "the object's name"), ("infile", None, "the file to read; - for stdin"))),
            ("get", "write the object's data to FILE (- for stdout)",
             (("object", None, "the object's name"), ("outfile", None, "the file to write; - for stdout"))),
            ("stat", "print the object's mtime and size", (("object", None, "the object's name"),)),
            ("rm", "remove objects", (("objects", "+", "the objects' names"),)),
            ("ls", "list the pool's objects (in the namespace; --all: in every namespace)", ())):
        q = ops.add_parser(name, help=help_text, description=help_text[:1].upper() + help_text[1:] + ".")
        for arg, nargs, arg_help in args:
            q.add_argument(arg, nargs=nargs, help=arg_help)
        # as with the rados tool, -p, -N and the common options may also
        # follow the operation; given there, they replace what came before
        q.add_argument("-p", "--pool", help=pool_help)
        q.add_argument("-N", "--namespace", help=ns_help)
        _common(q)
        for action in q._actions:
            if action.dest != "help" and action.option_strings:
                action.default = argparse.SUPPRESS
        if name == "ls":
            q.add_argument("--all", action="store_true", dest="all_namespaces",
                           help="every namespace (as rados ls --all: NAMESPACE<tab>NAME)")
        if name == "rm":
            q.add_argument("--force-full", action="store_true",
                           help="remove even while the pool is full (as rados rm --force-full): how space is "
                                "freed in a full pool, whose writes Ceph otherwise holds")


async def _rados(reactor, args):
    """msgr2tx rados OP: one operation through msgr2tx.rados, output as the rados tool prints it."""
    if not args.pool:
        print("msgr2tx: error: rados needs a pool: -p POOL", file=sys.stderr)
        return EXIT_USAGE
    if getattr(args, "via", None):
        print("msgr2tx: error: rados does not take --via: it talks to every OSD of the osdmap directly, which one "
              "tunnel to one address cannot carry (--via is for ping and command)", file=sys.stderr)
        return EXIT_USAGE
    for op, path, stream, verb, which in (("get", "outfile", sys.stdout, "write", "output"),
                                          ("put", "infile", sys.stdin, "read", "input")):
        if args.rados_cmd == op and getattr(args, path) == "-" and stream is None:
            return _fail_file(args, "cannot %s -: standard %s is closed" % (verb, which))
    infile = None
    if args.rados_cmd == "put":
        # before connecting: a file we cannot read fails at once
        try:
            infile = sys.stdin.buffer if args.infile == "-" else open(args.infile, "rb")
        except OSError as e:
            return _fail_file(args, "cannot read %s: %s" % (args.infile, _strerror(e)))
    try:
        return await _rados_op(reactor, args, infile)
    finally:
        if infile is not None and infile is not sys.stdin.buffer:
            infile.close()


#: bytes per write when putting a file (the rados tool's default op size, 4 MiB)
PUT_OP_SIZE = 4 << 20


def _strerror(error: OSError) -> str:
    """An OSError in words: 'no such file or directory', 'is a directory'."""
    text = error.strerror or str(error)
    return text[:1].lower() + text[1:]


async def _rados_op(reactor, args, infile):
    import datetime

    from twisted.internet import defer, threads

    from msgr2tx import errors as E
    from msgr2tx.rados import Rados

    handlers, config = _client_setup(args)
    # the monitor session in ms_mon_client_mode (secure first), the OSD
    # sessions in ms_client_mode (crc first), as Ceph's clients do
    _, mon_config = _client_setup(args, peer_is_mon=True)
    _remember(args, handlers, mon_config)
    monitors = await _mon_targets(reactor, args.settings.mon_hosts())
    rados = Rados(reactor, monitors, auth=handlers, config=config, op_timeout=args.timeout,
                  connect_timeout=_connect_limit(args), mon_config=mon_config)
    args.waiting_for = "a monitor session and the osdmap"
    await _rados_connect(rados, args)
    try:
        io = rados.open_ioctx(args.pool, args.namespace)
        args.waiting_for = "the OSDs to answer"
        objecter = rados.objecter
        op = args.rados_cmd
        if op == "put":
            # as the rados tool puts a file: pieces of its op size, the first
            # with write_full (an empty file makes an empty object), the
            # rest with writes at their offsets
            offset = 0
            while True:
                try:
                    piece = await threads.deferToThread(infile.read, PUT_OP_SIZE)
                except OSError as error:
                    return _fail_file(args, "cannot read %s: %s" % (args.infile, _strerror(error)))
                try:
                    if offset == 0:
                        await io.write_full(args.object, piece)
                    elif piece:
                        await io.write(args.object, piece, offset)
                except E.RadosError as error:
                    if offset:
                        # the rados tool does the same: a put is atomic only up to one piece
                        raise type(error)("%s; the put stopped part way: the object now holds the first %d bytes "
                                          "of %s (perhaps more, if that last write took effect) and none of its "
                                          "old data" % (error, offset, args.infile), error.errno,
                                          pool=error.pool, oid=error.oid) from None
                    raise
                offset += len(piece)
                if len(piece) < PUT_OP_SIZE:
                    break
                args.waiting_for = ("the OSDs to answer (the put stopped part way: the object now holds the first "
                                    "%d bytes of %s and none of its old data)" % (offset, args.infile))
            if _wants_json(args):
                print(json.dumps({"pool": args.pool, "namespace": args.namespace, "object": args.object,
                                  "size": offset}, indent=_json_indent(args)))
        elif op == "get":
            data = await io.read(args.object)
            try:
                if args.outfile == "-":
                    sys.stdout.buffer.write(data)
                    sys.stdout.flush()
                else:
                    with open(args.outfile, "wb") as f:
                        f.write(data)
            except OSError as error:
                return _fail_file(args, "cannot write %s: %s" % (args.outfile, _strerror(error)))
            if _wants_json(args) and args.outfile != "-":
                # (to stdout the data is the output: no JSON after it)
                print(json.dumps({"pool": args.pool, "namespace": args.namespace, "object": args.object,
                                  "size": len(data), "file": args.outfile}, indent=_json_indent(args)))
        elif op == "stat":
            st = await io.stat(args.object)
            # as the rados tool prints it: whole seconds, local time
            when = datetime.datetime.fromtimestamp(int(st.mtime)).astimezone()
            if _wants_json(args):
                print(json.dumps({"pool": args.pool, "namespace": args.namespace, "object": args.object,
                                  "size": st.size, "mtime": st.mtime}, indent=_json_indent(args)))
            else:
                print("%s/%s mtime %s, size %d" % (args.pool, args.object, when.strftime("%Y-%m-%dT%H:%M:%S.%f%z"),
                                                   st.size))
        elif op == "rm":
            for name in args.objects:
                await io.remove(name, force_full=args.force_full)
            if _wants_json(args):
                print(json.dumps({"pool": args.pool, "namespace": args.namespace, "removed": args.objects},
                                 indent=_json_indent(args)))
        elif op == "ls":
            entries = await io.list_objects(all_namespaces=args.all_namespaces)
            if _wants_json(args):
                print(json.dumps([{"namespace": e.nspace, "name": e.oid} for e in entries], indent=_json_indent(args)))
            else:
                for e in entries:
                    print("%s\t%s" % (e.nspace, e.oid) if args.all_namespaces else e.oid)
    except defer.CancelledError:
        # (--timeout or Ctrl-C: what held the request back, before close() fails it)
        args.held = objecter.held_reasons()
        raise
    finally:
        rados.close()
    return EXIT_OK


async def _rados_connect(rados, args):
    """
    L{Rados.connect}, giving up after one round of monitors, with its
    failures explained as C{command}'s are (the same words and JSON kinds).
    """
    from msgr2tx import errors as E

    limit = _connect_limit(args)
    try:
        await rados.connect(give_up_after_round=True)
    except E.AuthError as error:
        found = [addr for addr, e in rados.monclient.last_failures.values() if e is error]
        attempt = _Attempt(str(found[0]) if found else ", ".join(str(a) for _, a in rados.monclient.monitors),
                           limit, "monitor")
        attempt.tcp = True
        attempt.state = "AUTH_CONNECTING"
        raise _explain(error, attempt, args) from None
    except E.NoOSDMap as error:
        raise E.WrongPeerType(str(error), error.monitor, "ready") from None
    except E.NoMonitorSession as error:
        from twisted.internet import error as txerror

        explained = []
        for _, addr, failure in error.failures:
            attempt = _Attempt(str(addr), limit, "monitor")
            attempt.tcp = not isinstance(failure, (txerror.ConnectError, txerror.DNSLookupError))
            explained.append(_explain(failure, attempt, args))
        if len(explained) == 1:
            raise explained[0] from None
        if explained and all(isinstance(e, E.ConnectFailed) for e in explained):
            raise E.ConnectFailed("no monitor answered: " + "; ".join(str(e) for e in explained),
                                  ", ".join(str(a) for _, a, _ in error.failures), "connect") from None
        raise E.PeerSilent(str(error), None, "connect") from None


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
        key_type_option(q)

    def key_type_option(q):
        q.add_argument("--key-type", choices=("aes", "aes256k"), default=None,
                       help="type of a generated key: aes (the default; every release reads it) or aes256k "
                            "(Squid 19.2.6+ and Tentacle 20.2.4+, which new Tentacle clusters require); with "
                            "--key it must be the key's own type")

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
    key_type_option(q)
    q.add_argument("--json", action="store_true", help="print machine-readable JSON")

    for q in ksub.choices.values():
        q.set_defaults(keyring_parser=q)


#: the ceph options, by argparse dest, that CEPH_ARGS may set
_CEPH_ARG_DESTS = ("conf", "cluster", "mon_host", "name", "id", "keyring", "keyfile", "key", "auth", "mode",
                   "connect_timeout")


def _merge_ceph_args(args, env):
    """Fill the ceph options not given on the command line from CEPH_ARGS (unknown ones are ignored)."""
    from msgr2tx.cephconf import ceph_args

    tokens = _dashes(ceph_args(env))
    if not tokens:
        return []
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    _ceph_options(parser)
    known, unknown = parser.parse_known_args(tokens)
    for dest in _CEPH_ARG_DESTS:
        if getattr(args, dest, None) is None and getattr(known, dest, None) is not None:
            setattr(args, dest, getattr(known, dest))
            args.from_ceph_args.add(dest)
    return unknown


def _dashes(argv):
    """C{--mon_host} is C{--mon-host}, as Ceph's option parser has it (the value is left alone)."""
    out = []
    for token in argv:
        if token.startswith("--") and len(token) > 2:
            name, eq, value = token.partition("=")
            token = name.replace("_", "-") + eq + value
        out.append(token)
    return out


def _resolve_settings(args, env):
    """
    Merge the command line, CEPH_ARGS and the conf file into C{args.settings}
    (a L{msgr2tx.cephconf.ClientConf}).  Raises ConfError.
    """
    from msgr2tx import cephconf

    args.from_ceph_args = set()
    args.ignored_ceph_args = _merge_ceph_args(args, env)
    if args.name is None:
        args.name = "client." + args.id if args.id is not None else "client.admin"
    kind, dot, ident = args.name.partition(".")
    if not dot or not kind or not ident:
        raise ValueError("--name %r: give TYPE.ID, e.g. client.admin (the id may not be empty)" % args.name)
    overrides = {"mon_host": args.mon_host, "keyring": args.keyring, "keyfile": args.keyfile,
                 "key": getattr(args, "key", None)}
    args.settings = cephconf.resolve(args.conf, cluster=args.cluster, name=args.name, overrides=overrides, env=env)
    for option in overrides:
        if option in args.from_ceph_args and option in args.settings.sources:
            args.settings.sources[option] = "CEPH_ARGS"
    return args.settings


def _client_setup(args, peer_is_mon=False):
    """
    Auth handlers and connection config from the resolved settings:
    C{--auth} (else auth_client_required, else cephx then none), the key
    from C{key}, C{keyfile} or the keyring (cephx is left out when no key is
    found and another method remains, as Ceph's AuthRegistry does), and
    C{--mode} (else ms_mon_client_mode or ms_client_mode).
    """
    from msgr2tx import cephconf
    from msgr2tx.auth import findAuthProvider, parseAuthSpec
    from msgr2tx.auth.keyring import CryptoKey, Keyring
    from msgr2tx.core.config import ConnectionConfig
    from msgr2tx.core.constants import ConnectionMode
    from msgr2tx.core.encoding import EntityName, EntityType
    from msgr2tx.core.features import CEPH_FEATUREMASK_CRUSH_MSR, CEPH_FEATURES_ALL
    from msgr2tx.errors import ConfError, NoCredentials

    settings = getattr(args, "settings", None) or cephconf.ClientConf(name=args.name or "client.admin")
    name = EntityName.parse(args.name or settings.name)
    if args.auth is not None:
        specs = [s.strip() for s in args.auth.split(",") if s.strip()]
        explicit = True
    else:
        specs = settings.auth_methods()
        explicit = False
    handlers = []
    skipped = []
    for spec in specs:
        method, argstring = parseAuthSpec(spec)
        if method == "cephx" and "keyring=" not in argstring:
            key = _find_key(settings, name, CryptoKey, Keyring)
            if key is None:
                skipped.append("cephx")
                # a keyring the conf (or CEPH_ARGS) names: for the error message
                # if the peer then refuses the remaining methods
                source = settings.sources.get("keyring")
                if source:
                    _, searched = settings.keyring_path()
                    args.cephx_skipped = "no key for %s was found (searched %s; keyring set in %s)" % (
                        name, ", ".join(searched) or "nothing", source)
                continue
            handlers.append(findAuthProvider(method).clientHandler(argstring, name=name, key=key))
            continue
        if not explicit:
            try:
                provider = findAuthProvider(method)
            except Exception:
                skipped.append(method)  # a method of the conf file that msgr2tx has no plugin for
                continue
        else:
            provider = findAuthProvider(method)
        handlers.append(provider.clientHandler(argstring, name=name))
    if not handlers:
        if "cephx" in skipped:
            _, searched = settings.keyring_path()
            raise NoCredentials("cephx needs a key for %s and none was found (searched %s): give -k KEYRING%s"
                                % (name, ", ".join(searched), "" if explicit else ", or --auth none if the "
                                   "cluster allows it"))
        if explicit:
            raise ValueError("--auth needs at least one method")
        raise ConfError("auth_client_required (%s, from %s) names no auth method msgr2tx has (none, cephx): fix "
                        "the conf file or give --auth" % (", ".join(specs) or "empty",
                                                          settings.sources.get("auth_client_required", "the defaults")))
    if args.mode is not None:
        mode_names = [m for m in args.mode.replace(",", " ").split() if m]
        where = "--mode"
    else:
        mode_names = settings.modes(peer_is_mon)
        option = "ms_mon_client_mode" if peer_is_mon else "ms_client_mode"
        where = "%s (from %s)" % (option, settings.sources.get(option, "the defaults"))
    try:
        modes = tuple(ConnectionMode.parse(m) for m in mode_names)
    except ValueError as e:
        if args.mode is not None:
            raise
        raise ConfError("%s: %s: fix the conf file or give --mode" % (where, e)) from None
    if not modes:
        raise ValueError("%s needs at least one of crc, secure" % where)
    # a monitor must say it is one in its HELLO, or the connection ends before auth
    # CRUSH_MSR as Rados and MonClient advertise it: a cluster with MSR rules
    # requires it of every client, even one that only runs commands
    config = ConnectionConfig(entity_type=name.type, name=name, modes=modes, revision1=args.rev == "1",
                              peer_type=EntityType.MON if peer_is_mon else 0,
                              features_supported=CEPH_FEATURES_ALL | CEPH_FEATUREMASK_CRUSH_MSR,
                              **_compression_config(args))
    return handlers, config


def _find_key(settings, name, CryptoKey, Keyring):
    """Our cephx key: C{key}, else C{keyfile}, else the first keyring found; None if there is none."""
    from msgr2tx.cephconf import read_keyfile

    text = settings.get("key")
    key_source = settings.sources.get("key")
    source = "--key" if key_source == "command line" else "the key option (%s)" % key_source
    if not text and settings.get("keyfile"):
        text = read_keyfile(settings.get("keyfile"))
        source = "the keyfile %s" % settings.get("keyfile")
    if text:
        from msgr2tx.auth.keyring import KeyringError
        from msgr2tx.errors import Msgr2Error
        try:
            return CryptoKey.from_base64(text.strip())
        except (Msgr2Error, ValueError):
            message = "%s does not hold a valid cephx key (base64, as 'ceph auth print-key' prints it)" % source
            if source == "--key":
                raise ValueError(message) from None  # a usage error, exit 2, as a malformed --name
            raise KeyringError(message) from None
    explicit = settings.sources.get("keyring") == "command line"
    path, searched = settings.keyring_path()
    if path is None:
        if explicit:
            from msgr2tx.auth.keyring import KeyringError
            import os
            reasons = []
            for p in searched:
                reason = ("no such file" if not os.path.exists(p) else "a directory" if os.path.isdir(p)
                          else "not readable" if not os.access(p, os.R_OK) else "")
                reasons.append("%s%s" % (p, " (%s)" % reason if reason else ""))
            raise KeyringError("cannot read the keyring %s" % ", ".join(reasons))
        return None
    return Keyring.load(path).get(name)


def _fail_file(args, message):
    """A local file that cannot be read or written (kind C{file} in JSON)."""
    from msgr2tx import errors as E

    return _fail_json(args, E.LocalFileError(message))


def _fail(message):
    print("msgr2tx: error: %s" % message, file=sys.stderr)
    return EXIT_FAILED


def _wants_json(args):
    return bool(getattr(args, "json", False) or getattr(args, "format", None) in ("json", "json-pretty"))


def _json_indent(args):
    """json.dumps's indent for -f json-pretty (4, as Ceph's pretty formatter), else None."""
    return 4 if getattr(args, "format", None) == "json-pretty" else None


def _fail_json(args, error):
    """One line on stderr; with --json (or --format json) a JSON error object on stdout as well."""
    if _wants_json(args):
        if hasattr(error, "to_json"):
            obj = error.to_json()
        else:
            obj = {"error": "failed", "message": str(error), "address": None, "stage": None}
        partial = getattr(args, "partial", None)
        if partial is not None:
            # what the subcommand did before it was stopped
            obj["complete"] = False
            obj["partial"] = partial
        print(json.dumps(obj, indent=_json_indent(args)))
    return _fail(str(error))


# ---- connecting, with what we saw kept for the error message ---------------------------

#: the handshake states as the stage words of error messages (client side)
_STAGES = {
    "BANNER_CONNECTING": ("banner", "the msgr2 banner exchange"),
    "HELLO_CONNECTING": ("hello", "the hello exchange"),
    "AUTH_CONNECTING": ("auth", "authentication"),
    "AUTH_CONNECTING_SIGN": ("auth", "authentication"),
    "COMPRESSION_CONNECTING": ("compression", "compression negotiation"),
    "SESSION_CONNECTING": ("session", "session setup"),
    "SESSION_RECONNECTING": ("session", "session setup"),
    "READY": ("ready", "the session"),
}

_MODE_WORDS = {1: "crc", 2: "secure"}


class _MethodWords:
    """Auth methods in words, a plugin's name for its method (msgr2tx.auth.method_name)."""

    def get(self, method, default=None):
        from msgr2tx.auth import method_name
        return method_name(method)


_METHOD_WORDS = _MethodWords()


class _Attempt:
    """One connection attempt, as far as it got: the address, the stage, bytes heard."""

    def __init__(self, address, limit, peer="peer"):
        self.address = address
        self.limit = limit
        self.peer = peer
        self.tcp = False
        self.state = None
        self.received = 0
        self.first = b""
        self.ready = False
        #: the endpoint dialled instead (--via), if any
        self.via = None
        #: the address as error messages name it (with the port dialled when it was not given)
        self.where = address

    @property
    def stage(self):
        if not self.tcp:
            return ("connect", "the TCP connect")
        return _STAGES.get(self.state, ("banner", "the msgr2 banner exchange"))


def _traced(base, attempt):
    class Traced(base):
        def connectionMade(self):
            attempt.tcp = True
            super().connectionMade()
            self._note()

        def dataReceived(self, data):
            attempt.received += len(data)
            if len(attempt.first) < 24:
                attempt.first += data[:24 - len(attempt.first)]
            super().dataReceived(data)
            self._note()

        def _note(self):
            conn = self.conn
            if conn is not None and conn.state.name != "CLOSED":
                attempt.state = conn.state.name

    return Traced


def _connect_limit(args):
    limit = args.connect_timeout if args.connect_timeout is not None else DEFAULT_CONNECT_TIMEOUT
    return min(limit, args.timeout)


async def _dial(reactor, address, handlers, config, args, receiver=None, peer="peer"):
    """
    Connect and handshake with one address; the protocol once READY.
    Failures come out as L{msgr2tx.errors.OperatorError}s.
    """
    from twisted.internet import defer

    from msgr2tx.factory import Msgr2ClientFactory

    limit = _connect_limit(args)
    address = await _resolve_address(reactor, address)
    attempt = args.attempt = _Attempt(address, limit, peer)
    endpoint, target = _parse_address(reactor, address, limit)
    port = getattr(target, "port", None)
    if isinstance(port, int) and ":%d" % port not in address:
        # no port given: say which one was dialled
        attempt.where = "%s (port %d, the default)" % (address, port)
    if args.via is not None:
        endpoint = _parse_address(reactor, args.via, limit, "--via")[0]
        attempt.via = args.via
    factory = Msgr2ClientFactory(handlers, config, target_addr=target, receiver=receiver, reactor=reactor,
                                 handshake_timeout=limit)
    factory.protocol = _traced(factory.protocol, attempt)
    from twisted.internet.error import ConnectingCancelledError

    try:
        protocol = await endpoint.connect(factory)
        await protocol.whenReady()
    except defer.CancelledError:
        raise
    except ConnectingCancelledError:
        raise defer.CancelledError() from None   # our --timeout or Ctrl-C, during the TCP connect
    except Exception as e:
        raise _explain(e, attempt, args) from None
    attempt.ready = True
    return protocol


def _parse_address(reactor, address, limit, what="address"):
    """L{parse_target}, with what cannot be read turned into a usage error that shows the forms."""
    from msgr2tx import errors as E
    from msgr2tx.client import parse_target

    try:
        return parse_target(reactor, address, limit)
    except (ValueError, TypeError) as e:
        if "has no msgr2" in str(e):
            raise E.CommandUsageError("%s has no msgr2 (v2) address: msgr2tx speaks only msgr2 (a monitor "
                                      "listens for it on port 3300)" % address, address, "connect") from None
        raise E.CommandUsageError("%s %r cannot be read (%s): give v2:IP:PORT[/NONCE] (IPv6 as v2:[::1]:3300), "
                                  "an address vector [v2:...,v1:...], HOST:PORT, a Twisted endpoint "
                                  "(tcp:host=...:port=...), or a daemon's name (osd.0, mon.a) with -c ceph.conf"
                                  % (what, address, e), address, "connect") from None
    except OSError as e:
        # a tls: endpoint reads its trustRoots=DIR as it is parsed (Twisted's
        # UnlistableError has no text of its own: the reason is in its cause)
        cause = getattr(e, "originalException", None) or e
        reason = getattr(cause, "strerror", None) or str(cause) or type(cause).__name__
        raise E.CommandUsageError("%s %r cannot be used: a file or directory it names cannot be read (%s): "
                                  "give trustRoots=DIR as an existing directory of PEM CA certificates"
                                  % (what, address, reason), address, "connect") from None


async def _resolve_address(reactor, address):
    """A host name in Ceph's address syntax (v2:name:port, name:port) resolved as mon_host's are."""
    from msgr2tx import cephconf
    from msgr2tx import errors as E

    if address.startswith(("tcp:", "tcp6:", "unix:", "tls:", "ssl:", "host=")):
        return address
    try:
        hosts = cephconf.parse_mon_host(address)
    except Exception:
        return address
    if len(hosts) != 1 or not hosts[0].is_name:
        return address
    try:
        targets = await _mon_targets(reactor, hosts)
    except E.ConnectFailed as e:
        raise E.ConnectFailed(str(e).replace("the monitor host name", "the host name"), address, "connect") from None
    return targets[0] if targets else address


def _explain(error, attempt, args):
    """Turn what went wrong in a connection attempt into an OperatorError that says what to do."""
    from twisted.internet import error as txerror

    from msgr2tx import errors as E

    addr = attempt.address
    stage, stage_words = attempt.stage
    peer = "the %s at %s" % (attempt.peer, addr)
    if isinstance(error, E.OperatorError):
        return error
    # the TCP connect went to --via, not to the address the handshake names
    where = attempt.where if attempt.via is None else "%s (--via, on the way to %s)" % (attempt.via, addr)
    if isinstance(error, txerror.ConnectionRefusedError):
        return E.ConnectFailed("could not connect to %s: connection refused (nothing listens there: check the "
                               "address and port, and that the daemon runs)" % where, addr, stage)
    if isinstance(error, (txerror.TCPTimedOutError, txerror.TimeoutError)):
        return E.ConnectFailed("could not connect to %s: no answer within %gs (check the address, and any "
                               "firewall on the way)" % (where, attempt.limit), addr, stage)
    if isinstance(error, txerror.DNSLookupError):
        return E.ConnectFailed("could not resolve the host name of %s" % where, addr, stage)
    if isinstance(error, (txerror.ConnectError, OSError)) and not attempt.tcp:
        return E.ConnectFailed("could not connect to %s: %s" % (where, getattr(error, "osError", None) or error),
                               addr, stage)
    if isinstance(error, (E.HandshakeTimeout, E.KeepaliveTimeout)) or error == "timeout":
        return _silent(attempt)
    if isinstance(error, E.PeerTypeMismatch):
        # the HELLO named another kind of daemon: we stopped before auth
        from msgr2tx.core.encoding import EntityType
        kinds = {EntityType.MON: ("a", "monitor"), EntityType.OSD: ("an", "OSD"), EntityType.MGR: ("a", "manager"),
                 EntityType.MDS: ("an", "MDS"), EntityType.CLIENT: ("a", "client")}
        actual = kinds.get(error.actual, ("a", "type-%d entity" % error.actual))
        expected = kinds.get(error.expected, ("a", "type-%d entity" % error.expected))
        return E.WrongPeerType("%s is %s %s, not %s %s: give %s %s's address%s"
                               % (addr, actual[0], actual[1], expected[0], expected[1], expected[0], expected[1],
                                  " with -m" if error.expected == EntityType.MON else ""), addr, "hello")
    if isinstance(error, E.Msgr1Banner):
        return E.NotMsgr2Peer("%s speaks only Ceph's legacy msgr1 protocol: give its v2 address (monitors "
                              "listen for msgr2 on port 3300)" % addr, addr, stage)
    if isinstance(error, E.BannerError):
        # (what the peer sent: from our own trace of the connection, or, when
        # a monitor client dialled it, from the error)
        sent = (attempt.first or getattr(error, "received", b""))[:16].decode("ascii", "backslashreplace")
        return E.NotMsgr2Peer("%s does not speak msgr2: it sent %r where the banner 'ceph v2' belongs (is this a "
                              "Ceph daemon's msgr2 port? monitors use 3300)" % (addr, sent), addr, stage)
    if isinstance(error, E.AuthBadMethod):
        return _explain_auth(error, attempt, args, peer)
    if isinstance(error, E.AuthRejected) and "ticket" in str(error) and attempt.peer != "monitor":
        return E.KeyRefused("%s refused us: %s (a daemon other than a monitor wants a service ticket: give the "
                            "monitors with -m, or the daemon's name, e.g. osd.0, with -c ceph.conf)"
                            % (peer, error), addr, stage)
    if isinstance(error, E.AuthRejected):
        return E.KeyRefused("%s refused our credentials for %s: %s (check the keyring)"
                            % (peer, args.name, error), addr, stage)
    if isinstance(error, (E.ConnectionClosed, txerror.ConnectionDone, txerror.ConnectionLost)):
        hint = ""
        if stage == "auth":
            hint = " (a monitor out of quorum does this; try another monitor)"
        elif stage == "banner" and attempt.received == 0:
            hint = " before sending anything (is this a Ceph daemon's msgr2 port?)"
        elif stage == "session" and "/" not in addr:
            hint = (" (a daemon other than a monitor does this when the address lacks its nonce: "
                    "give the address as the map shows it, ADDR:PORT/NONCE)")
        return E.PeerClosed("%s closed the connection during %s%s" % (peer, stage_words, hint), addr, stage)
    if isinstance(error, E.Msgr2Error):
        return E.OperatorError("%s broke the protocol during %s: %s" % (peer, stage_words, error), addr, stage)
    tls = _explain_tls(error, args)
    if tls is not None:
        return E.TLSFailed(tls, addr, "tls")
    return E.OperatorError("%s: %s: %s" % (addr, type(error).__name__, error), addr, stage)


def _explain_tls(error, args):
    """Words for a failure of a C{tls:} endpoint's handshake, or None when it is not one."""
    via = getattr(args, "via", None) or ""
    fields = dict(part.split("=", 1) for part in via.split(":")[1:] if "=" in part)
    where = "%s:%s" % (fields.get("host", "?"), fields.get("port", "?"))
    from service_identity.exceptions import VerificationError  # a dependency of ours
    if isinstance(error, VerificationError):
        return ("the TLS certificate of %s does not name the host %s: check host= in --via (it must be a name "
                "or address the certificate lists), or give the server a certificate for that name"
                % (where, fields.get("host", "?")))
    from OpenSSL import SSL
    if isinstance(error, SSL.Error):
        text = str(error)
        if "certificate verify failed" in text:
            return ("the TLS certificate of %s is not signed by a CA we trust: add trustRoots=DIR to --via (a "
                    "directory of PEM CA certificates), or use a certificate from a CA in the system store"
                    % where)
        return "the TLS handshake with %s failed (%s): is the server listening with ssl:?" % (where, text)
    return None


def _silent(attempt):
    from msgr2tx import errors as E

    stage, stage_words = attempt.stage
    addr = attempt.address
    if not attempt.tcp:
        return E.ConnectFailed("could not connect to %s: no answer within %gs (check the address, and any "
                               "firewall on the way)" % (addr, attempt.limit), addr, stage)
    if attempt.received == 0:
        return E.PeerSilent("%s accepted the connection but sent nothing in %gs (is this a Ceph daemon's msgr2 "
                            "port? monitors use 3300)" % (addr, attempt.limit), addr, stage)
    return E.PeerSilent("the %s at %s stopped answering during %s (%gs)" % (attempt.peer, addr, stage_words,
                                                                            attempt.limit), addr, stage)


def _explain_auth(error, attempt, args, peer):
    from msgr2tx import errors as E

    addr = attempt.address
    ours_methods = [h.method for h in getattr(args, "handlers", ())]
    ours_modes = list(getattr(args, "modes", ()))
    allowed_methods = list(error.allowed_methods)
    allowed_modes = list(error.allowed_modes)
    words = lambda xs, table: ", ".join(table.get(x, str(x)) for x in xs)  # noqa: E731
    if error.method == 2 and error.result == -13 and 2 in allowed_methods:
        return E.KeyRefused("%s refused our key for %s: check the keyring (the key must be the one "
                            "'ceph auth get %s' shows, and %s must exist and have mon caps)"
                            % (peer, args.name, args.name, args.name), addr, "auth")
    if error.result == -13 and error.method in allowed_methods:
        return E.KeyRefused("%s refused %s (auth %s: permission denied): check --name, or have the peer let %s in"
                            % (peer, args.name, _METHOD_WORDS.get(error.method, error.method), args.name),
                            addr, "auth")
    if allowed_methods and error.method in allowed_methods and allowed_modes \
            and not set(ours_modes) & set(allowed_modes):
        if len(allowed_modes) == 1:
            mode = _MODE_WORDS.get(allowed_modes[0], str(allowed_modes[0]))
            return E.ModeMismatch("%s allows only %s mode: use --mode %s" % (peer, mode, mode), addr, "auth")
        return E.ModeMismatch("%s allows modes %s, we offered %s: use --mode %s"
                              % (peer, words(allowed_modes, _MODE_WORDS), words(ours_modes, _MODE_WORDS),
                                 _MODE_WORDS.get(allowed_modes[0])), addr, "auth")
    if not allowed_methods:
        # no mode of ours works with the method we would try
        return E.ModeMismatch("cannot talk to %s: auth %s does not work in mode %s: use --mode crc"
                              % (peer, _METHOD_WORDS.get(error.method, error.method), words(ours_modes, _MODE_WORDS)),
                              addr, "auth")
    first = _METHOD_WORDS.get(allowed_methods[0], str(allowed_methods[0]))
    todo = "use --auth cephx with -k KEYRING" if first == "cephx" else "use --auth %s" % first
    skipped = getattr(args, "cephx_skipped", None)
    if first == "cephx" and skipped:
        todo = "cephx was left out because %s: give -k KEYRING, or fix the keyring path" % skipped
    return E.AuthMethodMismatch("%s does not accept auth %s; it allows %s: %s"
                                % (peer, words(ours_methods or [error.method], _METHOD_WORDS),
                                   words(allowed_methods, _METHOD_WORDS), todo), addr, "auth")


async def _dial_monitors(reactor, args, handlers, config, receiver):
    """
    Try the monitors one at a time, in mon_host order, each for
    --connect-timeout; the first that completes the handshake wins.  A
    refusal of our credentials stops the search (every monitor would say
    the same).  (MonClient's parallel hunting is not used here yet.)
    """
    from msgr2tx import errors as E
    from msgr2tx.core.encoding import EntityType

    targets = await _mon_targets(reactor, args.settings.mon_hosts())
    failures = []
    for address in targets:
        try:
            protocol = await _dial(reactor, address, handlers, config, args, receiver=receiver, peer="monitor")
        except (E.ConnectFailed, E.PeerSilent, E.PeerClosed, E.NotMsgr2Peer) as e:
            failures.append(e)
            continue
        if protocol.info.peer_name.type != EntityType.MON:
            protocol.close()
            raise E.WrongPeerType("%s is %s, not a monitor: give a monitor's address with -m"
                                  % (address, protocol.info.peer_name), address, "ready")
        return protocol
    if len(failures) == 1:
        raise failures[0]
    if not failures:
        raise E.ConfError("mon_host has no v2 (msgr2) address: msgr2tx speaks only msgr2")
    raise E.ConnectFailed("no monitor answered: " + "; ".join(str(f) for f in failures),
                          ", ".join(targets), "connect")


async def _mon_targets(reactor, hosts):
    """The v2 address of each monitor, DNS names resolved (every address of a name, as Ceph does)."""
    import socket

    from twisted.internet import threads

    from msgr2tx import errors as E

    targets = []
    for host in hosts:
        port = host.v2_port
        if port is None:
            continue
        nonce = "/%d" % host.nonce if host.nonce else ""
        if not host.is_name:
            targets.append(("v2:[%s]:%d%s" if ":" in host.host else "v2:%s:%d%s") % (host.host, port, nonce))
            continue
        try:
            infos = await threads.deferToThread(socket.getaddrinfo, host.host, port, 0, socket.SOCK_STREAM)
        except OSError as e:
            raise E.ConnectFailed("could not resolve the monitor host name %s: %s" % (host.host, e.strerror or e),
                                  host.host, "connect") from None
        for family, _, _, _, sockaddr in infos:
            ip = sockaddr[0]
            t = ("v2:[%s]:%d%s" if family == socket.AF_INET6 else "v2:%s:%d%s") % (ip, port, nonce)
            if t not in targets:
                targets.append(t)
    if hosts and not targets:
        raise E.ConfError(_NO_V2 % ", ".join(h.host for h in hosts))
    return targets


#: mon_host named only msgr1 addresses
_NO_V2 = ("mon_host has no v2 (msgr2) address (%s: msgr1 only; as Ceph reads mon_host, a bare address on port "
          "6789 is msgr1's), and msgr2tx speaks only msgr2: give the monitor's v2 address, e.g. v2:HOST:3300")


def _remember(args, handlers, config):
    args.handlers = handlers
    args.modes = config.modes


def _json_command(words):
    """The command as JSON if it is one argument that looks like JSON, else None (words)."""
    if len(words) == 1 and words[0].lstrip().startswith(("{", "[")):
        return json.loads(words[0])
    return None


async def _command(reactor, args):
    from twisted.internet import defer

    from msgr2tx.clients.moncommands import build_command, parse_descriptions
    from msgr2tx.clients.monclient import MonClient

    try:
        cmd = _json_command(args.command)
    except ValueError as e:
        print("msgr2tx: error: the command is not JSON: %s" % e, file=sys.stderr)
        return EXIT_USAGE
    handlers, config = _client_setup(args, peer_is_mon=True)
    _remember(args, handlers, config)
    monclient = MonClient()
    protocol = None
    started = time.perf_counter()
    try:
        protocol = await _dial_monitors(reactor, args, handlers, config, monclient)
        # a command waits for the monmap (it carries the cluster's fsid), which
        # a monitor sends at once: a peer that never does is not a monitor
        args.waiting_for = ("the monmap from %s (a Ceph monitor sends it at once; is this a monitor?)"
                            % args.attempt.address)
        await monclient.whenMonmap()
        args.waiting_for = "the monitor at %s to answer the command" % args.attempt.address
        if cmd is None:
            # words: as the ceph CLI does, match them against the monitor's own command table
            result, status, output = await monclient.command({"prefix": "get_command_descriptions"})
            if result != 0:
                return _fail("the monitor did not describe its commands (%d: %s)" % (result, status))
            cmd = build_command(args.command, parse_descriptions(output))
        if args.format in ("json", "json-pretty") and isinstance(cmd, dict) and "format" not in cmd:
            cmd["format"] = args.format
        result, status, output = await monclient.command(cmd)
    except defer.CancelledError:
        # timed out or interrupted: say how far we got
        info = protocol.info if protocol is not None else None
        no_monmap = info is not None and monclient.monmap is None
        stage = "connecting" if info is None else "waiting for the monmap" if no_monmap else "waiting for the reply"
        seconds = time.perf_counter() - started
        if _wants_json(args):
            args.partial = {"result": None, "stage": stage, "seconds": round(seconds, 3),
                            "peer": str(info.peer_name) if info else None}
        else:
            where = args.attempt.address if args.attempt is not None else ",".join(map(str, args.mon_host or ()))
            if no_monmap:
                print("msgr2tx: connected to %s at %s, but no monmap after %.1fs: the command was not sent"
                      % (info.peer_name, where, seconds), file=sys.stderr)
            elif info is not None:
                print("msgr2tx: sent the command to %s at %s; no reply after %.1fs"
                      % (info.peer_name, where, seconds), file=sys.stderr)
            else:
                print("msgr2tx: no session with %s after %.1fs" % (where, seconds), file=sys.stderr)
        raise
    finally:
        if protocol is not None:
            protocol.close()
    if args.json:
        print(json.dumps({"result": result, "status": status,
                          "output": output.decode("utf-8", "replace")}))
    else:
        sys.stdout.write(output.decode("utf-8", "replace"))
        if args.format in ("json", "json-pretty") and output and not output.endswith(b"\n"):
            sys.stdout.write("\n")
        sys.stdout.flush()
        if status:
            print(status, file=sys.stderr)
    if result != 0:
        return _fail("command returned %d%s" % (result, ": " + status if status else ""))
    return EXIT_OK


async def _ping(reactor, args):
    from twisted.internet import defer

    from msgr2tx import errors as E
    # loaded now, so that the handshake time we print does not include importing them
    from msgr2tx import client, factory  # noqa: F401

    if args.count < 0:
        print("msgr2tx: error: --count must not be negative", file=sys.stderr)
        return EXIT_USAGE
    handlers, config = _client_setup(args)
    _remember(args, handlers, config)
    protocol = None
    handshake = None
    rtts = []

    def summary(complete):
        info = protocol.info if protocol is not None else None
        if not complete and info is None:
            return  # no session: the error says all there is
        if _wants_json(args):
            result = {"peer": str(info.peer_name) if info else None,
                      "mode": info.mode_name if info else None,
                      "revision": info.revision if info else None,
                      "compression": info.compression_name if info else None,
                      "handshake_ms": handshake * 1e3 if handshake is not None else None,
                      "rtt_ms": [r * 1e3 for r in rtts]}
            if not complete:
                args.partial = result   # goes out inside the JSON error object
                return
            print(json.dumps(result, indent=4 if args.format == "json-pretty" else None))
            return
        if info is not None:
            print("connected to %s (%s) mode=%s rev%d handshake %.3f ms" % (
                args.target, info.peer_name, info.mode_name, info.revision, handshake * 1e3))
        for i, rtt in enumerate(rtts, 1):
            print("keepalive %d: %.3f ms" % (i, rtt * 1e3))
        if not complete:
            print("%d of %d keepalives answered" % (len(rtts), args.count))

    try:
        name = _daemon_name(args.target)
        if name is not None or args.mon_host:
            # a daemon named (osd.0, mon.a) is looked up in the maps; a daemon
            # other than a monitor wants an authorizer: get its ticket first
            args.target, handlers = await _from_the_monitors(reactor, args, handlers, name)
        started = time.perf_counter()
        try:
            protocol = await _dial(reactor, args.target, handlers, config, args)
        except E.PeerClosed as e:
            raise await _with_the_map_address(reactor, args, e) from None
        handshake = time.perf_counter() - started
        args.waiting_for = "KEEPALIVE2_ACK from %s" % args.target
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


def _daemon_name(target):
    """C{osd.3} or C{mon.a} as an EntityName; None for an address."""
    from msgr2tx.core.encoding import EntityName, EntityType
    kind, dot, ident = target.partition(".")
    if not dot or kind not in ("osd", "mon") or not ident or ":" in ident:
        return None
    if kind == "osd" and not ident.isdigit():
        return None
    return EntityName(EntityType.by_name[kind], ident)


async def _from_the_monitors(reactor, args, handlers, name):
    """
    Log in to a monitor (tickets for what comes next), and when C{name}
    names a daemon, find its address in the maps: an OSD's public msgr2
    address, nonce included, in the osdmap; a monitor's in the monmap.
    Returns (the address to dial, the auth handlers to dial it with).
    """
    from msgr2tx import errors as E
    from msgr2tx.clients.follower import OSDMapFollower
    from msgr2tx.core.encoding import EntityType
    from msgr2tx.clients.monclient import MonClient

    monclient = MonClient()
    follower = OSDMapFollower(monclient) if name is not None and name.type == EntityType.OSD else None
    _, mon_config = _client_setup(args, peer_is_mon=True)
    mon = await _dial_monitors(reactor, args, handlers, mon_config, monclient)
    address = args.target
    try:
        if follower is not None:
            args.waiting_for = "the osdmap from the monitor at %s" % args.attempt.address
            osdmap = await follower.when_epoch(1)
            osd = int(name.id)
            if not osdmap.exists(osd):
                raise E.OperatorError("there is no %s in osdmap e%d (max_osd %d)" % (name, osdmap.epoch,
                                                                                     osdmap.max_osd))
            if not osdmap.is_up(osd):
                raise E.OperatorError("%s is down in osdmap e%d" % (name, osdmap.epoch))
            v2 = osdmap.osd_addrs[osd].msgr2_addr()
            if v2 is None:
                raise E.OperatorError("%s has no msgr2 address in osdmap e%d (%s)"
                                      % (name, osdmap.epoch, osdmap.osd_addrs[osd]))
            address = str(v2)
        elif name is not None:
            args.waiting_for = "the monmap from the monitor at %s" % args.attempt.address
            monmap = await monclient.whenMonmap()
            info = monmap.mons.get(name.id)
            if info is None or info.addrs.msgr2_addr() is None:
                raise E.OperatorError("there is no %s with a msgr2 address in monmap e%d (monitors: %s)"
                                      % (name, monmap.epoch, ", ".join(sorted(monmap.mons)) or "none"))
            address = str(info.addrs.msgr2_addr())
    finally:
        mon.close()
    return address, [h.spawn() if hasattr(h, "spawn") else h for h in handlers]


async def _with_the_map_address(reactor, args, error):
    """
    A daemon that closed at session setup because the address lacked its
    nonce: when monitors are known, name the address the osdmap has for
    that host and port.  Returns the error to raise.
    """
    from twisted.internet import defer

    from msgr2tx import errors as E
    from msgr2tx.clients.follower import OSDMapFollower
    from msgr2tx.core.encoding import entity_addrvec_t
    from msgr2tx.clients.monclient import MonClient

    if error.stage != "session" or "/" in args.target:
        return error
    try:
        wanted = entity_addrvec_t.parse(args.target).msgr2_addr()
        mon_hosts = args.settings.mon_hosts()
    except (ValueError, E.Msgr2Error):
        return error
    if wanted is None or not mon_hosts:
        return error
    monclient = MonClient()
    follower = OSDMapFollower(monclient)
    handlers = getattr(args, "handlers", None) or []
    try:
        _, mon_config = _client_setup(args, peer_is_mon=True)
        mon = await _dial_monitors(reactor, args, [h.spawn() if hasattr(h, "spawn") else h for h in handlers],
                                   mon_config, monclient)
        try:
            osdmap = await follower.when_epoch(1)
        finally:
            mon.close()
    except (E.Msgr2Error, defer.CancelledError, OSError, ValueError):
        return error
    for osd, addrs in enumerate(osdmap.osd_addrs):
        v2 = addrs.msgr2_addr()
        if v2 is not None and v2.host == wanted.host and v2.port == wanted.port:
            return E.PeerClosed("the peer at %s closed the connection during session setup: it is osd.%d, whose "
                                "address in osdmap e%d is %s, nonce included: give that address, or the name "
                                "osd.%d" % (args.target, osd, osdmap.epoch, v2, osd), error.address, error.stage)
    return error


ECHO_TEST_TYPE = 0x7FF0


async def _probe_tcp(reactor, address):
    """None if a TCP connection to C{address} opens (it is closed at once), else why not, in words."""
    from twisted.internet import error as txerror
    from twisted.internet.protocol import Factory, Protocol

    try:
        endpoint, _ = _parse_address(reactor, address, 2.0)
        protocol = await endpoint.connect(Factory.forProtocol(Protocol))
    except txerror.ConnectionRefusedError:
        return "connection refused"
    except (txerror.ConnectError, OSError) as e:
        return str(e) or type(e).__name__
    protocol.transport.abortConnection()
    return None


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
    # the front segment is the 8-byte sequence number and the payload
    if args.size + 8 > config.max_segment:
        print("msgr2tx: error: --size %d makes a %d-byte segment, over the %d-byte segment limit "
              "(twistd msgr2's default --max-segment, 64 MiB); use --size %d or less"
              % (args.size, args.size + 8, config.max_segment, config.max_segment - 8), file=sys.stderr)
        return EXIT_USAGE
    payload = bytes(args.size)
    progress = sys.stderr.isatty() if args.progress is None else args.progress

    class Downgraded(Exception):
        pass

    class NotEchoing(Exception):
        pass

    class ServerGone(Exception):
        pass

    class SessionWasReset(Exception):
        pass

    #: seconds without a session, reconnects refused, before we call the server gone
    gone_after = min(10.0, args.timeout / 2)

    #: sessions the peer may close while echoing nothing before we call it no echo service
    closes_before_verdict = 3

    class Tally:
        def __init__(self):
            self.seen = set()
            self.received = self.duplicates = self.out_of_order = 0
            self.highest = 0
            self.waiter = None
            #: the PeerInfo of a session granted lossy where we asked for lossless
            self.downgraded = None
            self.peer_name = None
            #: sessions that reached READY and were closed while nothing had come back
            self.closed_silent = 0
            self._ready = False
            #: when the last session was lost (None while one is up)
            self.lost_at = None
            #: why the latest probe of the target failed (None: it accepted)
            self.refused = None
            #: the server answered our reconnect with a full SESSION_RESET
            self.reset = False

        def connectionReady(self, protocol, info):
            self.peer_name = info.peer_name
            self._ready = True
            self.lost_at = None
            if lossless and info.downgraded and self.downgraded is None:
                self.downgraded = info
                self._wake()

        def sessionReset(self, protocol, full):
            # a lossless session the server no longer knows (it restarted):
            # the messages in flight are dropped on both sides, for good
            if lossless and full:
                self.reset = True
                self._wake()

        def connectionLost(self, protocol, reason):
            if self._ready and self.received == 0:
                self.closed_silent += 1
                self._wake()
            if self._ready:
                self.lost_at = time.monotonic()
            self._ready = False

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
                if not d.called:  # the wait's own timer may have fired it
                    d.callback(None)

        def check(self):
            if self.downgraded is not None:
                raise Downgraded()
            if self.received == 0 and self.closed_silent >= closes_before_verdict:
                raise NotEchoing()
            if self.reset:
                raise SessionWasReset()

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
            if self.lost_at is not None and not self._ready:
                # no session: is anything listening there at all?
                self.refused = await _probe_tcp(reactor, args.via or args.target)
                if self.refused is None:
                    self.lost_at = time.monotonic()   # it accepts: a restart under way, keep trying
                elif time.monotonic() - self.lost_at >= gone_after:
                    raise ServerGone()

    _remember(args, handlers, config)
    # the first connection as ping makes it: a peer that refuses, is not a
    # msgr2 server or refuses our auth fails at once, explained, instead of
    # being retried until --timeout
    args.waiting_for = "the first handshake with %s" % args.target
    from msgr2tx import errors as E
    try:
        probe = await _dial(reactor, args.target, handlers, config, args)
        probe.close()
    except (E.PeerClosed, E.PeerSilent):
        # a connection cut or stalled on the way is what echo-test is for: the
        # reconnecting client below retries; only a definite refusal ends the run here
        args.attempt = None
    args.waiting_for = "the echoes from %s" % args.target
    tally = Tally()
    client = ReconnectingClient(reactor, args.target, handlers, config, receiver=tally, timeout=args.timeout,
                                via=args.via)
    client.startService()
    started = time.perf_counter()
    sent = 0
    complete = False
    verdict = None
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
        verdict = ("downgraded",
                   "asked %s (%s) for a lossless session and was granted a lossy one, which loses the "
                   "messages in flight at a fault; a lossless echo test needs a server with a stateful "
                   "policy (twistd msgr2 --policy stateful)" % (args.target, info.peer_name))
    except ServerGone:
        verdict = ("server-gone",
                   "the echo server at %s is gone: the session dropped %.0fs ago and reconnecting fails (%s); "
                   "restart the server, or allow a longer outage with a longer --timeout"
                   % (args.via or args.target, time.monotonic() - tally.lost_at, tally.refused))
    except SessionWasReset:
        verdict = ("reset",
                   "%s (%s) reset our lossless session: it no longer knew it (it restarted?), so the "
                   "messages in flight were dropped; run the test again against a server that stays up"
                   % (args.target, tally.peer_name))
    except NotEchoing:
        verdict = ("not-echoing",
                   "%s (%s) closed the session %d times and echoed nothing back: it is not an echo "
                   "service (Ceph daemons close sessions that send them unknown message types); run "
                   "echo-test against a msgr2tx echo server (twistd msgr2 --service echo)"
                   % (args.target, tally.peer_name, tally.closed_silent))
    finally:
        if progress:
            # the final count, then the line ends
            sys.stderr.write("\rsent %d/%d, received %d\n" % (sent, args.count, tally.received))
        # the run's time ends here, not after the close below
        seconds = time.perf_counter() - started
        # An unfinished run (timed out, interrupted) has nothing left to
        # deliver: abort soon instead of flushing, as the echo server, its
        # send queue full of our echoes, may have stopped reading from us.
        await client.stopService(abort_after=5.0 if complete else 0.5)
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
            print(json.dumps(result, indent=_json_indent(args)))
    if verdict is not None:
        # after the summary, as the verdicts below
        return _echo_fail(args, *verdict)
    lost = args.count - tally.received
    if lossless and (lost or tally.duplicates or tally.out_of_order):
        return _echo_fail(args, "lost",
                          "lossless run lost %d, duplicated %d and reordered %d messages"
                          % (lost, tally.duplicates, tally.out_of_order))
    if lost and client.connections <= 1:
        # a lossy session loses messages at a fault; without one, they are stuck
        return _echo_fail(args, "stalled",
                          "%d of %d echoes did not come back although the session never failed: %s stalled "
                          "(messages this large may fill its receive window; try a smaller --size or --window)"
                          % (lost, args.count, args.target))
    return EXIT_OK


def _echo_fail(args, kind, message):
    """
    An echo-test verdict as every other failure ends: one line on stderr
    and, with --json, a JSON error object (C{error} is C{kind}: downgraded,
    server-gone, not-echoing, reset, lost or stalled) after the summary.
    """
    from msgr2tx.errors import OperatorError
    error = OperatorError(message, address=args.target, stage="ready")
    error.kind = kind
    return _fail_json(args, error)


def _run(coro_fn, args):
    """
    Run a subcommand's coroutine under the reactor; the exit code.  Every
    failure ends as one line on stderr (and a JSON error object on stdout
    with --json); -v logs the traceback of an unexpected one.
    """
    import signal

    from twisted.internet import defer, task

    from msgr2tx import errors as E

    outcome = {"code": EXIT_FAILED, "interrupted": False}
    args.attempt = None
    args.waiting_for = None

    async def main(reactor):
        if args.verbose:
            from twisted.logger import globalLogBeginner, textFileLogObserver
            globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stderr)], redirectStandardIO=False)
            if getattr(args, "settings", None) is not None:
                _log_settings(args)

        running: dict = {}

        def interrupt(*_):
            # the subcommand sees a CancelledError, prints its partial summary and re-raises;
            # a second Ctrl-C stops at once
            if outcome["interrupted"]:
                outcome["code"] = EXIT_INTERRUPTED
                reactor.callFromThread(reactor.stop)
                return
            outcome["interrupted"] = True
            if "d" in running:
                reactor.callFromThread(running["d"].cancel)

        try:
            signal.signal(signal.SIGINT, interrupt)
        except ValueError:
            pass  # not the main thread (an embedding program): its own handler stays
        if _EARLY_INTERRUPT:
            # Ctrl-C while the program was still starting
            outcome["interrupted"] = True
        timer = reactor.callLater(args.timeout, lambda: running["d"].cancel())
        try:
            d = running["d"] = defer.ensureDeferred(coro_fn(reactor, args))
            if outcome["interrupted"]:
                d.cancel()
            outcome["code"] = await d
        except defer.CancelledError:
            if outcome["interrupted"]:
                if _wants_json(args):
                    obj = {"error": "interrupted", "message": "interrupted", "address": None, "stage": None,
                           "complete": False}
                    if getattr(args, "partial", None) is not None:
                        obj["partial"] = args.partial
                    print(json.dumps(obj))
                reasons = getattr(args, "held", None)
                if reasons:
                    print("msgr2tx: interrupted while Ceph held the request back: %s"
                          % "; ".join(why for _, why in reasons), file=sys.stderr)
                else:
                    print("msgr2tx: interrupted", file=sys.stderr)
                outcome["code"] = EXIT_INTERRUPTED
            else:
                outcome["code"] = _fail_json(args, _timed_out(args))
        except E.CommandUsageError as e:
            _fail_json(args, e)
            outcome["code"] = EXIT_USAGE
        except E.OperatorError as e:
            outcome["code"] = _fail_json(args, e)
        except Exception as e:
            # still one line on stderr; -v logs the traceback
            if args.verbose and not isinstance(e, E.Msgr2Error):
                from twisted.logger import Logger
                Logger().failure("msgr2tx %s failed" % args.cmd)
            attempt = args.attempt
            if attempt is not None and not attempt.ready and isinstance(e, (E.Msgr2Error, OSError)):
                e = _explain(e, attempt, args)
            elif attempt is not None and isinstance(e, E.ConnectionClosed):
                e = E.PeerClosed("the %s at %s closed the connection while we waited for %s"
                                 % (attempt.peer, attempt.address, args.waiting_for or "it"),
                                 attempt.address, "ready")
            outcome["code"] = _fail_json(args, e if isinstance(e, E.Msgr2Error) else
                                         E.OperatorError("%s: %s" % (type(e).__name__, e)))
        finally:
            if timer.active():
                timer.cancel()

    def start(reactor):
        return defer.ensureDeferred(main(reactor))

    try:
        task.react(start)
    except SystemExit:
        pass
    except KeyboardInterrupt:
        print("msgr2tx: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return outcome["code"]


def _timed_out(args):
    """The overall --timeout ran out: say while doing what."""
    from msgr2tx import errors as E

    attempt = args.attempt
    if attempt is not None and not attempt.ready:
        connect_limit = args.connect_timeout if args.connect_timeout is not None else DEFAULT_CONNECT_TIMEOUT
        if args.timeout < connect_limit and attempt.tcp and attempt.received:
            # our own --timeout ran out before the peer's time was up: do not blame the peer
            stage, stage_words = attempt.stage
            return E.PeerSilent("timed out after %gs (--timeout) during %s with the %s at %s"
                                % (args.timeout, stage_words, attempt.peer, attempt.address), attempt.address, stage)
        attempt.limit = min(attempt.limit, args.timeout)
        return _silent(attempt)
    reasons = getattr(args, "held", None)
    if reasons:
        import shlex

        from msgr2tx.clients.objecter import HELD_FULL

        words = []
        for kind, why in reasons:
            if kind == HELD_FULL:
                if args.rados_cmd == "rm":
                    why += "; add --force-full to remove anyway (that is how space is freed)"
                else:
                    why += "; free space with 'msgr2tx rados -p %s rm --force-full OBJECT'" % shlex.quote(args.pool)
            words.append(why)
        return E.RequestsHeld("timed out after %gs while Ceph held the request back: %s"
                              % (args.timeout, "; ".join(words)), None, "ready")
    if args.waiting_for:
        address = attempt.address if attempt is not None else None
        return E.PeerSilent("timed out after %gs waiting for %s" % (args.timeout, args.waiting_for),
                            address, "ready")
    return E.PeerSilent("timed out after %gs" % args.timeout)


def _log_settings(args):
    settings = args.settings
    print("msgr2tx: conf %s (searched %s); cluster %s, name %s"
          % (settings.conf_path or "none", settings.sources.get("conf_search"), settings.cluster, args.name),
          file=sys.stderr)
    for option, value in sorted(settings.values.items()):
        if option != "key":
            print("msgr2tx: %s = %s (from %s)" % (option, value, settings.sources.get(option)), file=sys.stderr)
    if args.ignored_ceph_args:
        print("msgr2tx: CEPH_ARGS options ignored: %s" % " ".join(args.ignored_ceph_args), file=sys.stderr)


def _keyring(args):
    import os
    import shlex

    from msgr2tx.auth.cephx_proto import parse_key_type
    from msgr2tx.auth.keyring import CryptoKey, Keyring, KeyringError
    from msgr2tx.core.encoding import EntityName
    from msgr2tx.errors import Msgr2Error

    parser = args.keyring_parser
    action = args.keyring_cmd
    key_type = parse_key_type(getattr(args, "key_type", None) or "aes")
    if action == "gen-key":
        key = CryptoKey.generate(type=key_type).to_base64()
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
            given = getattr(args, "key_type", None)
            if given is not None and parse_key_type(given) != key.type:
                parser.error("--key holds an %s key, but --key-type says %s: a key's type is part of the key "
                             "(leave --key-type out, or give a key of that type)" % (key.type_name, given))
        elif args.gen_key:
            key = CryptoKey.generate(type=key_type)
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
            if not os.path.exists(args.keyring):
                return _fail("keyring %s does not exist: add changes an existing keyring; make it with: "
                             "msgr2tx keyring create %s (add --name and --gen-key to put a key in it at once)"
                             % (args.keyring, shlex.quote(args.keyring)))
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
    return {"entity": str(entry.name), "key": entry.key.to_base64(), "type": entry.key.type_name,
            "caps": dict(entry.caps)}


#: set when Ctrl-C comes while the program is still starting (importing,
#: reading its conf): the run then stops at once, as interrupted
_EARLY_INTERRUPT: list = []


def main(argv=None):
    import signal

    try:
        # not KeyboardInterrupt: code that imports plugins swallows exceptions
        signal.signal(signal.SIGINT, lambda signum, frame: _EARLY_INTERRUPT.append(True))
    except ValueError:
        pass  # not the main thread
    try:
        return _main(argv)
    except KeyboardInterrupt:
        print("msgr2tx: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _main(argv=None):
    import math
    import os

    from msgr2tx.errors import ConfError, Msgr2Error

    parser = build_parser()
    args, unknown = parser.parse_known_args(_dashes(sys.argv[1:] if argv is None else argv))
    if unknown:
        if args.cmd != "command" or not all(u.startswith("--") for u in unknown):
            _Usage(_subparser(parser, args)).error("unrecognized arguments: %s" % " ".join(unknown))
        # a shortened option of ours is refused, not sent to the monitor as a command argument
        ours = [o for a in _subparser(parser, args)._actions for o in a.option_strings if o.startswith("--")]
        for u in unknown:
            meant = [o for o in ours if o.startswith(u.partition("=")[0])]
            if meant:
                _Usage(_subparser(parser, args)).error(
                    "unrecognized arguments: %s (options are not abbreviated: did you mean %s?)"
                    % (u.partition("=")[0], " or ".join(meant)))
        args.command += unknown  # a monitor command's --NAME=VALUE and --flag arguments
    if args.cmd == "version":
        print(json.dumps({"version": __version__}) if args.json else "msgr2tx %s" % __version__)
        return EXIT_OK
    if args.cmd == "keyring":
        return _keyring(args)
    usage = _Usage(_subparser(parser, args))
    if not (math.isfinite(args.timeout) and args.timeout > 0):
        usage.error("--timeout must be a positive number of seconds")
    try:
        _resolve_settings(args, os.environ)
    except ConfError as e:
        return _fail_json(args, e)
    except ValueError as e:
        usage.error(str(e))
    if args.connect_timeout is not None and not (math.isfinite(args.connect_timeout) and args.connect_timeout > 0):
        usage.error("--connect-timeout must be a positive number of seconds")
    from msgr2tx.auth import UnknownAuthMethod
    try:
        _client_setup(args, peer_is_mon=args.cmd == "command")
    except UnknownAuthMethod as e:
        usage.error(str(e))
    except Msgr2Error as e:
        # a keyring or key that cannot be used: the operation fails (1), not the usage
        return _fail_json(args, e)
    except Exception as e:
        usage.error(str(e))
    runner = {"command": _command, "ping": _ping, "echo-test": _echo_test, "rados": _rados}[args.cmd]
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
