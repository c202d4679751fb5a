"""
The msgr2tx command line as a user runs it: a subprocess, its stdout, its
stderr and its exit code.  The keyring subcommand is checked against
Ceph's own ceph-authtool in both directions.
"""

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from msgr2tx import cli
from msgr2tx._version import __version__
from msgr2tx.auth.keyring import CryptoKey, Keyring

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(*args, timeout=60, env=None, cwd=None):
    """Run msgr2tx; CEPH_CONF and CEPH_ARGS come only from C{env} (not from the test runner's environment)."""
    full = {k: v for k, v in os.environ.items() if k not in ("CEPH_CONF", "CEPH_ARGS")}
    full.update(env or {})
    full["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, full.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "msgr2tx"] + list(args), capture_output=True, text=True,
                          timeout=timeout, env=full, cwd=cwd)


def authtool(*args):
    return subprocess.run(["ceph-authtool"] + list(args), capture_output=True, text=True, timeout=60)


class _TempDir:
    def mktemp_dir(self):
        path = tempfile.mkdtemp(prefix="msgr2tx-cli-")
        self.addCleanup(shutil.rmtree, path, True)
        return path


class ConventionsTests(SynchronousTestCase, _TempDir):
    """Exit codes 0/1/2, one-line errors on stderr, --json everywhere."""

    def test_every_subcommand_takes_json(self):
        parser = cli.build_parser()
        sub = next(a for a in parser._actions if isinstance(getattr(a, "choices", None), dict))
        missing = []
        for name, p in sub.choices.items():
            nested = [a for a in p._actions if isinstance(getattr(a, "choices", None), dict)]
            parsers = list(nested[0].choices.items()) if nested else [("", p)]
            for action_name, q in parsers:
                if "--json" not in q._option_string_actions:
                    missing.append(("%s %s" % (name, action_name)).strip())
        self.assertEqual(missing, [])

    def test_version(self):
        p = run("version")
        self.assertEqual((p.returncode, p.stdout, p.stderr), (0, "msgr2tx %s\n" % __version__, ""))
        p = run("version", "--json")
        self.assertEqual(p.returncode, 0)
        self.assertEqual(json.loads(p.stdout), {"version": __version__})
        p = run("--version")
        self.assertEqual((p.returncode, p.stdout, p.stderr), (0, "msgr2tx %s\n" % __version__, ""))

    def test_echo_test_size_over_the_segment_limit(self):
        # refused before any connection or allocation: nothing listens on port 1
        for size in ("200000000", "1000000000000"):
            p = run("echo-test", "--target", "v2:127.0.0.1:1", "--size", size, timeout=30)
            self.assertEqual(p.returncode, cli.EXIT_USAGE, p.stderr)
            lines = p.stderr.strip().splitlines()
            self.assertEqual(len(lines), 1, p.stderr)
            self.assertIn("--size %s" % size, lines[0])
            self.assertIn("segment limit", lines[0])

    def test_usage_errors_exit_2(self):
        for args in (["nosuch"], [], ["ping"], ["ping", "v2:127.0.0.1:1", "--count", "-1"],
                     ["ping", "v2:127.0.0.1:1", "--timeout", "0"], ["keyring"],
                     ["keyring", "print", "k"], ["keyring", "add", "k", "-n", "nodot", "--gen-key"],
                     ["command", "--mon", "v2:127.0.0.1:1", "{not json"]):
            p = run(*args)
            self.assertEqual(p.returncode, cli.EXIT_USAGE, (args, p.stderr))
            self.assertEqual(p.stdout, "", args)
            self.assertIn("error:", p.stderr.strip().splitlines()[-1], args)

    def test_failure_exit_1_one_line(self):
        with socket_closed_port() as port:
            p = run("ping", "v2:127.0.0.1:%d" % port, "--timeout", "5")
        self.assertEqual(p.returncode, cli.EXIT_FAILED, p.stderr)
        self.assertEqual(p.stdout, "")
        lines = p.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, p.stderr)
        self.assertTrue(lines[0].startswith("msgr2tx: error: "), lines)

    def test_keyring_failure_exit_1_one_line(self):
        d = self.mktemp_dir()
        for args in (["keyring", "print", os.path.join(d, "missing"), "-n", "client.admin"],
                     ["keyring", "list", os.path.join(d, "missing")]):
            p = run(*args)
            self.assertEqual(p.returncode, cli.EXIT_FAILED)
            self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)
            self.assertTrue(p.stderr.startswith("msgr2tx: error: "))


class socket_closed_port:
    """A local TCP port that nothing listens on (bound, then closed)."""

    def __enter__(self):
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        return port

    def __exit__(self, *exc):
        return False


class SmallUsageTests(SynchronousTestCase, _TempDir):
    """Usage mistakes refused in words, with the subcommand's usage line (exit 2); no peer needed."""

    def test_timeout_zero_shows_the_subcommands_usage(self):
        for argv, usage in ((["ping", "v2:127.0.0.1:1", "--timeout", "0"], "usage: msgr2tx ping "),
                            (["rados", "-m", "v2:127.0.0.1:1", "-p", "x", "ls", "--timeout", "0"],
                             "usage: msgr2tx rados ls ")):
            p = run(*argv)
            self.assertEqual(p.returncode, 2)
            self.assertTrue(p.stderr.startswith(usage), p.stderr)
            self.assertIn("--timeout must be a positive number of seconds", p.stderr)

    def test_msgr1_only_monitor_address_in_words(self):
        for argv in (["rados", "-m", "127.0.0.1:6789", "--auth", "none", "-p", "x", "ls"],
                     ["command", "-m", "v1:127.0.0.1:6789/0", "--auth", "none", "version"]):
            p = run(*argv)
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn("mon_host has no v2 (msgr2) address (127.0.0.1: msgr1 only", p.stderr)
            self.assertIn("v2:HOST:3300", p.stderr)

    def test_rados_refuses_via_and_closed_standard_streams(self):
        p = run("rados", "-m", "v2:127.0.0.1:1", "-p", "x", "--via", "tcp:host=127.0.0.1:port=1", "ls")
        self.assertEqual(p.returncode, 2)
        self.assertIn("rados does not take --via", p.stderr)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
        for op, redirect, words in (("get o -", ">&-", "cannot write -: standard output is closed"),
                                    ("put o -", "<&-", "cannot read -: standard input is closed")):
            q = subprocess.run("%s -m msgr2tx rados -m v2:127.0.0.1:1 -p x %s %s" % (
                shlex.quote(sys.executable), op, redirect), shell=True, capture_output=True, text=True, timeout=60,
                env=env)
            self.assertEqual(q.returncode, 1, q.stderr)
            self.assertIn(words, q.stderr)

    def test_empty_id_refused(self):
        for argv in (["--name", "client."], ["--id", ""], ["--name", "client"]):
            p = run("ping", "v2:127.0.0.1:1", "--auth", "none", *argv)
            self.assertEqual(p.returncode, 2, (argv, p.stderr))
            self.assertIn("give TYPE.ID, e.g. client.admin", p.stderr)

    def test_unknown_auth_argument_refused(self):
        p = run("ping", "v2:127.0.0.1:1", "--auth", "cephx:keyring=/nonexistent:bogus=1")
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("auth cephx: unknown argument bogus (it takes keyring, name)", p.stderr)
        p = run("ping", "v2:127.0.0.1:1", "--auth", "none:nmae=client.x")
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("auth none: unknown argument nmae (it takes name)", p.stderr)

    def test_key_type_must_match_the_key(self):
        d = self.mktemp_dir()
        key = CryptoKey.generate().to_base64()
        p = run("keyring", "create", os.path.join(d, "k"), "-n", "client.x", "--key", key, "--key-type", "aes256k")
        self.assertEqual(p.returncode, 2)
        self.assertIn("--key holds an aes key, but --key-type says aes256k", p.stderr)
        self.assertNotIn(key, p.stderr)
        self.assertFalse(os.path.exists(os.path.join(d, "k")))
        p = run("keyring", "create", os.path.join(d, "k"), "-n", "client.x", "--key", key, "--key-type", "aes")
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_add_to_a_missing_keyring_says_create(self):
        path = os.path.join(self.mktemp_dir(), "new keyring")
        p = run("keyring", "add", path, "-n", "client.x", "--gen-key")
        self.assertEqual(p.returncode, 1)
        hint = p.stderr.split("make it with: ", 1)[1].split(" (", 1)[0]
        self.assertFalse(os.path.exists(path))
        # the printed command works as printed
        argv = shlex.split(hint)
        self.assertEqual(argv[:3], ["msgr2tx", "keyring", "create"])
        self.assertEqual(run(*argv[1:]).returncode, 0)
        self.assertEqual(run("keyring", "add", path, "-n", "client.x", "--gen-key").returncode, 0)

    def test_ping_names_the_default_port(self):
        # 127.0.0.2: nothing listens on its port 3300 (the tests' monitors use 127.0.0.1)
        p = run("ping", "v2:127.0.0.2", "--auth", "none", "--count", "1")
        self.assertEqual(p.returncode, 1)
        self.assertIn("could not connect to v2:127.0.0.2 (port 3300, the default): connection refused", p.stderr)

    def test_via_tls_with_an_unreadable_trust_roots_dir(self):
        # Twisted reads trustRoots=DIR as it parses the endpoint; its error has no text
        d = self.mktemp_dir()
        for path, reason in ((os.path.join(d, "missing"), "No such file or directory"),
                             (os.path.join(d, "file"), "Not a directory")):
            if path.endswith("file"):
                open(path, "w").close()
            via = "tls:host=localhost:port=1:trustRoots=%s" % path
            p = run("ping", "v2:127.0.0.1:1", "--auth", "none", "--via", via)
            self.assertEqual((p.returncode, p.stdout), (2, ""), p.stderr)
            self.assertEqual(p.stderr, "msgr2tx: error: --via %r cannot be used: a file or directory it names cannot "
                                       "be read (%s): give trustRoots=DIR as an existing directory of PEM CA "
                                       "certificates\n" % (via, reason))

    def test_help_texts(self):
        p = run("ping", "--help")
        self.assertIn("time KEEPALIVE2 round trips", p.stdout)
        p = run("rados", "put", "--help")
        self.assertIn("the file to read; - for stdin", p.stdout)
        p = run("rados", "get", "--help")
        self.assertIn("the file to write; - for stdout", p.stdout)


class PluginMethodNameTests(SynchronousTestCase):
    """A refusal of a plugin's auth method names the plugin, not its number."""

    def test_refusal_names_the_plugin(self):
        import argparse
        import msgr2tx.auth
        from msgr2tx import errors as E

        class Token:
            name = "token"
            methodID = 112
        self.patch(msgr2tx.auth, "findAuthProviders", lambda: [Token()])
        self.assertEqual(msgr2tx.auth.method_name(112), "token")
        self.assertEqual(msgr2tx.auth.method_name(113), "method 113")
        self.assertEqual(msgr2tx.auth.method_name(2), "cephx")
        error = E.AuthBadMethod("refused", 112, -13, (112,), (1, 2))
        attempt = cli._Attempt("v2:127.0.0.1:1", 5.0)
        explained = cli._explain_auth(error, attempt, argparse.Namespace(name="client.bob"), "the peer")
        self.assertIsInstance(explained, E.KeyRefused)
        self.assertEqual(str(explained), "the peer refused client.bob (auth token: permission denied): check --name, "
                                         "or have the peer let client.bob in")


class KeyringCommandTests(SynchronousTestCase, _TempDir):
    def setUp(self):
        self.dir = self.mktemp_dir()
        self.path = os.path.join(self.dir, "keyring")

    def test_create_add_print_list(self):
        p = run("keyring", "create", self.path, "-n", "client.admin", "--gen-key", "--cap", "mon", "allow *")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(os.stat(self.path).st_mode & 0o777, 0o600)
        key = CryptoKey.generate().to_base64()
        p = run("keyring", "add", self.path, "-n", "client.bob", "--key", key, "--json")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(json.loads(p.stdout), {"keyring": self.path, "entity": "client.bob", "replaced": False})
        p = run("keyring", "print", self.path, "-n", "client.bob")
        self.assertEqual((p.returncode, p.stdout), (0, key + "\n"))
        p = run("keyring", "list", self.path, "--json")
        entities = json.loads(p.stdout)["entities"]
        self.assertEqual([e["entity"] for e in entities], ["client.admin", "client.bob"])
        self.assertEqual(entities[0]["caps"], {"mon": "allow *"})
        ring = Keyring.load(self.path)
        self.assertEqual(ring.get("client.admin").to_base64(), entities[0]["key"])
        p = run("keyring", "list", self.path)
        self.assertEqual(p.stdout, ring.to_text())

    def test_create_refuses_to_overwrite(self):
        self.assertEqual(run("keyring", "create", self.path).returncode, 0)
        p = run("keyring", "create", self.path)
        self.assertEqual(p.returncode, cli.EXIT_FAILED)
        self.assertEqual(run("keyring", "create", self.path, "--force").returncode, 0)

    def test_gen_key(self):
        p = run("keyring", "gen-key", "--json")
        self.assertEqual(p.returncode, 0)
        key = CryptoKey.from_base64(json.loads(p.stdout)["key"])
        self.assertEqual(len(key.secret_bytes), 16)


class CephAuthtoolTests(SynchronousTestCase, _TempDir):
    """What we write ceph-authtool reads, and the other way round."""

    def setUp(self):
        from tests import cephlab
        cephlab.ensure_ceph()
        if shutil.which("ceph-authtool") is None:
            cephlab._unavailable("ceph-authtool is missing")
        self.dir = self.mktemp_dir()

    def test_authtool_reads_ours(self):
        path = os.path.join(self.dir, "ours")
        self.assertEqual(run("keyring", "create", path, "-n", "client.admin", "--gen-key",
                             "--cap", "mon", "allow *", "--cap", "osd", 'allow rw pool="a b"').returncode, 0)
        self.assertEqual(run("keyring", "add", path, "-n", "mon.", "--gen-key").returncode, 0)
        for name in ("client.admin", "mon."):
            ours = run("keyring", "print", path, "-n", name).stdout
            theirs = authtool(path, "-p", "-n", name)
            self.assertEqual(theirs.returncode, 0, theirs.stderr)
            self.assertEqual(theirs.stdout, ours)
        listing = authtool("-l", path)
        self.assertEqual(listing.returncode, 0, listing.stderr)
        self.assertIn('caps mon = "allow *"', listing.stdout)
        self.assertIn('caps osd = "allow rw pool=\\"a b\\""', listing.stdout)
        # and ceph-authtool can edit it, after which we still read it
        p = authtool(path, "--gen-key", "-n", "client.carol", "--cap", "mgr", "allow r")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(Keyring.load(path).caps("client.carol"), {"mgr": "allow r"})

    def test_we_read_authtools(self):
        path = os.path.join(self.dir, "theirs")
        p = authtool("--create-keyring", path, "--gen-key", "-n", "client.y", "--cap", "osd", "allow rw",
                     "--cap", "mon", "allow r")
        self.assertEqual(p.returncode, 0, p.stderr)
        key = authtool("--gen-print-key").stdout.strip()
        p = authtool(path, "--add-key", key, "-n", "client.z")
        self.assertEqual(p.returncode, 0, p.stderr)
        for name in ("client.y", "client.z"):
            theirs = authtool(path, "-p", "-n", name).stdout
            ours = run("keyring", "print", path, "-n", name)
            self.assertEqual((ours.returncode, ours.stdout), (0, theirs))
        self.assertEqual(run("keyring", "print", path, "-n", "client.z").stdout.strip(), key)
        listed = json.loads(run("keyring", "list", path, "--json").stdout)
        self.assertEqual({e["entity"]: e["caps"] for e in listed["entities"]},
                         {"client.y": {"osd": "allow rw", "mon": "allow r"}, "client.z": {}})
        # a key ceph-authtool generated is accepted by 'keyring add --key'
        self.assertEqual(run("keyring", "add", path, "-n", "client.w", "--key", key).returncode, 0)
        self.assertEqual(authtool(path, "-p", "-n", "client.w").stdout.strip(), key)


class ReadyFiresOnceTests(SynchronousTestCase):
    """
    A handshake waiter cancelled by an overall timeout has fired: the
    handshake timeout (or the connection dropping) that comes next must not
    fire it again (it used to raise AlreadyCalledError from _fail_ready).
    """

    def make(self):
        from twisted.internet import defer, task
        from twisted.internet.testing import StringTransport

        from msgr2tx.auth.none import NoneClientHandler
        from msgr2tx.core.config import ConnectionConfig
        from msgr2tx.core.connection import Role
        from msgr2tx.core.encoding import EntityName
        from msgr2tx.protocol import Msgr2Protocol

        clock = task.Clock()
        handler = NoneClientHandler(EntityName.parse("client.admin"))
        p = Msgr2Protocol(Role.CLIENT, ConnectionConfig(), [handler], clock=clock, handshake_timeout=10.0)
        p.makeConnection(StringTransport())
        d = p.whenReady()
        errors = []
        d.addErrback(errors.append)
        return p, d, clock, errors, defer

    def test_cancel_then_handshake_timeout(self):
        p, d, clock, errors, defer = self.make()
        d.cancel()
        self.assertEqual(len(errors), 1)
        self.assertTrue(errors[0].check(defer.CancelledError))
        clock.advance(11)  # the handshake timer fires into no waiter
        p.connectionLost(None)
        self.assertEqual(len(errors), 1)

    def test_cancel_then_connection_lost(self):
        p, d, clock, errors, defer = self.make()
        d.cancel()
        p.connectionLost(None)
        clock.advance(11)
        self.assertEqual(len(errors), 1)

    def test_timeout_then_cancel(self):
        from msgr2tx.errors import HandshakeTimeout
        p, d, clock, errors, defer = self.make()
        clock.advance(11)
        d.cancel()  # already fired: a no-op
        p.connectionLost(None)
        self.assertEqual(len(errors), 1)
        self.assertTrue(errors[0].check(HandshakeTimeout))


class FakePeer:
    """
    A TCP listener on loopback that answers each connection with fixed
    bytes (None: never says anything), in a thread, for peers that are not
    Ceph daemons: a silent socket, an HTTP server, a msgr1 daemon.
    """

    def __init__(self, reply=None, close=False):
        import socket
        import threading
        self.reply = reply
        self.close_after = close
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def addr(self):
        return "v2:127.0.0.1:%d" % self.port

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            if self.reply is not None:
                conn.sendall(self.reply)
            if self.close_after:
                conn.close()

    def stop(self):
        import socket
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        for c in self.conns:
            c.close()


class ErrorMessageTests(SynchronousTestCase):
    """
    Each failure as the user reads it: one line on stderr, exit 1, the
    address and the stage, what to do; with --json a JSON error object on
    stdout.  These peers need no Ceph.
    """

    def peer(self, reply=None, close=False):
        p = FakePeer(reply, close)
        self.addCleanup(p.stop)
        return p

    def check(self, p, message):
        self.assertEqual((p.returncode, p.stdout, p.stderr), (cli.EXIT_FAILED, "", "msgr2tx: error: %s\n" % message))

    def test_connection_refused(self):
        with socket_closed_port() as port:
            p = run("ping", "v2:127.0.0.1:%d" % port, "--auth", "none")
        self.check(p, "could not connect to v2:127.0.0.1:%d: connection refused (nothing listens there: check "
                      "the address and port, and that the daemon runs)" % port)

    def test_silent_peer(self):
        # the overall --timeout and the handshake timeout both end at 2s:
        # whichever fires first, one line and no AlreadyCalledError
        peer = self.peer()
        for args in (["--timeout", "2"], ["--connect-timeout", "2"]):
            p = run("ping", peer.addr, "--auth", "none", *args)
            self.check(p, "%s accepted the connection but sent nothing in 2s (is this a Ceph daemon's msgr2 "
                          "port? monitors use 3300)" % peer.addr)

    def test_http_peer(self):
        peer = self.peer(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        p = run("ping", peer.addr, "--auth", "none")
        self.check(p, "%s does not speak msgr2: it sent 'HTTP/1.1 400 Bad' where the banner 'ceph v2' belongs "
                      "(is this a Ceph daemon's msgr2 port? monitors use 3300)" % peer.addr)

    def test_http_peer_as_monitor_of_rados(self):
        # (rados dials its monitors through the monitor client, not the
        # CLI's own traced connection: what the peer sent comes from the error)
        peer = self.peer(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        p = run("rados", "-m", peer.addr, "--auth", "none", "-p", "data", "stat", "x")
        self.check(p, "%s/0 does not speak msgr2: it sent 'HTTP/1.1 400 Bad' where the banner 'ceph v2' belongs "
                      "(is this a Ceph daemon's msgr2 port? monitors use 3300)" % peer.addr)

    def test_msgr1_peer(self):
        peer = self.peer(b"ceph v027" + bytes(136))
        p = run("ping", peer.addr, "--auth", "none")
        self.check(p, "%s speaks only Ceph's legacy msgr1 protocol: give its v2 address (monitors listen for "
                      "msgr2 on port 3300)" % peer.addr)

    def test_closed_during_banner(self):
        peer = self.peer(close=True)
        p = run("ping", peer.addr, "--auth", "none")
        self.check(p, "the peer at %s closed the connection during the msgr2 banner exchange before sending "
                      "anything (is this a Ceph daemon's msgr2 port?)" % peer.addr)

    def test_json_error_object(self):
        peer = self.peer()
        p = run("ping", peer.addr, "--auth", "none", "--connect-timeout", "1", "--json")
        self.assertEqual(p.returncode, cli.EXIT_FAILED)
        message = ("%s accepted the connection but sent nothing in 1s (is this a Ceph daemon's msgr2 port? "
                   "monitors use 3300)" % peer.addr)
        self.assertEqual(json.loads(p.stdout), {"error": "timeout", "message": message, "address": peer.addr,
                                                "stage": "banner"})
        self.assertEqual(p.stderr, "msgr2tx: error: %s\n" % message)

    def test_every_monitor_tried_in_order(self):
        silent, http = self.peer(), self.peer(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        with socket_closed_port() as port:
            p = run("command", "-m", "%s,%s 127.0.0.1:%d" % (silent.addr, http.addr, port), "--auth", "none",
                    "--connect-timeout", "1", '{"prefix": "version"}')
        self.check(p, "no monitor answered: %s accepted the connection but sent nothing in 1s (is this a Ceph "
                      "daemon's msgr2 port? monitors use 3300); %s does not speak msgr2: it sent "
                      "'HTTP/1.1 400 Bad' where the banner 'ceph v2' belongs (is this a Ceph daemon's msgr2 "
                      "port? monitors use 3300); could not connect to v2:127.0.0.1:%d: connection refused "
                      "(nothing listens there: check the address and port, and that the daemon runs)"
                      % (silent.addr, http.addr, port))

    def test_no_monitor_address(self):
        d = tempfile.mkdtemp(prefix="msgr2tx-cli-")
        self.addCleanup(shutil.rmtree, d, True)
        conf = os.path.join(d, "ceph.conf")
        with open(conf, "w") as f:
            f.write("[global]\nfsid = 11111111-1111-1111-1111-111111111111\n")
        p = run("command", "-c", conf, "--auth", "none", '{"prefix": "version"}')
        self.check(p, "no monitor address: give -m/--mon-host, or -c a ceph.conf with mon_host (searched %s)" % conf)
        p = run("command", "-c", os.path.join(d, "missing.conf"), '{"prefix": "version"}')
        self.check(p, "cannot read the conf file %s" % os.path.join(d, "missing.conf"))

    def test_no_answer_to_the_command(self):
        # our echo server completes the handshake as mon.a but sends no monmap,
        # so the command is never sent
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, env.get("PYTHONPATH")]))
        server = subprocess.Popen([sys.executable, os.path.join(ROOT, "examples", "echo_server.py"), "--listen",
                                   "tcp:0:interface=127.0.0.1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, env=env)
        self.addCleanup(lambda: (server.poll() is None and server.kill(), server.wait(), server.stdout.close(),
                                 server.stderr.close()))
        line = server.stdout.readline()
        self.assertTrue(line.startswith("listening on v2:127.0.0.1:"), line)
        address = line.split()[-1]
        p = run("command", "-m", address, "--auth", "none", "--timeout", "3", '{"prefix": "version"}', "--json")
        message = ("timed out after 3s waiting for the monmap from %s (a Ceph monitor sends it at once; "
                   "is this a monitor?)" % address)
        self.assertEqual((p.returncode, p.stderr), (cli.EXIT_FAILED, "msgr2tx: error: %s\n" % message))
        self.assertEqual(json.loads(p.stdout), {"error": "timeout", "message": message, "address": address,
                                                "stage": "ready", "complete": False,
                                                "partial": {"result": None, "stage": "waiting for the monmap",
                                                            "seconds": json.loads(p.stdout)["partial"]["seconds"],
                                                            "peer": "mon.0"}})

    def test_bad_key_material_is_not_echoed(self):
        d = tempfile.mkdtemp(prefix="msgr2tx-cli-")
        self.addCleanup(shutil.rmtree, d, True)
        keyfile = os.path.join(d, "key")
        with open(keyfile, "w") as f:
            f.write("AQBnotbase64!secretish\n")
        p = run("command", "-m", "v2:127.0.0.1:1", "--keyfile", keyfile, '{"prefix": "version"}')
        self.check(p, "the keyfile %s does not hold a valid cephx key (base64, as 'ceph auth print-key' prints it)"
                   % keyfile)
        self.assertNotIn("secretish", p.stderr)

    def test_ctrl_c(self):
        import signal
        import time
        peer = self.peer()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, env.get("PYTHONPATH")]))
        proc = subprocess.Popen([sys.executable, "-m", "msgr2tx", "ping", peer.addr, "--auth", "none"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        deadline = time.monotonic() + 20
        while not peer.conns and time.monotonic() < deadline:
            time.sleep(0.05)  # wait until it is connected and waiting
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
        self.assertEqual((proc.returncode, out, err), (cli.EXIT_INTERRUPTED, "", "msgr2tx: interrupted\n"))


class SecureOnlyMonitor:
    """A cephlab monitor that serves clients in secure mode only (ms_mon_service_mode = secure)."""

    def __new__(cls):
        from tests import cephlab

        class Mon(cephlab.CephMonitor):
            def _conf_text(self):
                return super()._conf_text().replace("[mon]\n", "[mon]\nms mon service mode = secure\n", 1)

        return Mon(auth="cephx")


class RealMonitorTests(SynchronousTestCase, _TempDir):
    """ceph.conf, CEPH_ARGS and Ceph's options against a real Ceph 16.2 monitor (cephx)."""

    def setUp(self):
        from tests import cephlab
        self.mon = cephlab.shared_monitor("cephx")
        self.version = ["{\"prefix\": \"version\"}"]

    def test_conf_finds_monitor_and_keyring(self):
        p = run("command", "-c", self.mon.conf, *self.version)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(p.stdout.startswith("ceph version 16.2"), p.stdout)

    def test_ceph_conf_env_and_ceph_args(self):
        p = run("command", *self.version, env={"CEPH_CONF": self.mon.conf})
        self.assertEqual(p.returncode, 0, p.stderr)
        p = run("command", *self.version, env={"CEPH_ARGS": "-c %s --id admin" % self.mon.conf})
        self.assertEqual(p.returncode, 0, p.stderr)
        # the command line wins over CEPH_ARGS
        with socket_closed_port() as port:
            p = run("command", "-m", self.mon.addr, *self.version,
                    env={"CEPH_ARGS": "-c %s -m v2:127.0.0.1:%d" % (self.mon.conf, port)})
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_default_search_path_dot_conf(self):
        # ./$cluster.conf is the last place Ceph looks; its keyring path uses $cluster and $name
        d = self.mktemp_dir()
        shutil.copy(self.mon.keyring, os.path.join(d, "ceph.client.admin.keyring"))
        with open(os.path.join(d, "ceph.conf"), "w") as f:
            f.write("[global]\n\tmon host = %s\n[client]\n  keyring = %s/$cluster.$name.keyring ; ours\n"
                    % (self.mon.addr.replace("v2:", ""), d))
        p = run("command", *self.version, cwd=d, env={"HOME": d})
        self.assertEqual(p.returncode, 0, p.stderr)
        p = run("command", "--cluster", "other", *self.version, cwd=d, env={"HOME": d})
        self.assertEqual(p.returncode, 1)
        self.assertIn("no monitor address", p.stderr)

    def test_mon_host_and_keyring_flags(self):
        p = run("command", "-m", self.mon.addr, "-k", self.mon.keyring, "-n", "client.admin", *self.version)
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_key_and_keyfile(self):
        d = self.mktemp_dir()
        key = Keyring.load(self.mon.keyring).get("client.admin").to_base64()
        conf = os.path.join(d, "ceph.conf")
        with open(conf, "w") as f:
            f.write("[global]\nmon host = %s\nkeyring = %s/none\n[client.admin]\nkey = %s\n" % (self.mon.addr, d, key))
        p = run("command", "-c", conf, *self.version)
        self.assertEqual(p.returncode, 0, p.stderr)
        keyfile = os.path.join(d, "admin.key")
        with open(keyfile, "w") as f:
            f.write(key + "\n")
        p = run("command", "-m", self.mon.addr, "--keyfile", keyfile, *self.version, cwd=d, env={"HOME": d})
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_key_option_as_ceph_has_it(self):
        # Ceph's --key: the secret itself, on the command line or in CEPH_ARGS; never echoed
        d = self.mktemp_dir()
        key = Keyring.load(self.mon.keyring).get("client.admin").to_base64()
        p = run("command", "-m", self.mon.addr, "--key", key, "-v", *self.version, cwd=d, env={"HOME": d})
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(p.stdout.startswith("ceph version 16.2"), p.stdout)
        self.assertNotIn(key, p.stdout + p.stderr)
        p = run("command", *self.version, "-v", cwd=d,
                env={"HOME": d, "CEPH_ARGS": "-m %s --key %s --log-file /dev/null --debug-ms 1" % (self.mon.addr, key)})
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertNotIn(key, p.stdout + p.stderr)
        # -v names where each option came from: CEPH_ARGS, not the command line
        self.assertIn("mon_host = %s (from CEPH_ARGS)" % self.mon.addr, p.stderr)
        self.assertIn("CEPH_ARGS options ignored: --log-file /dev/null --debug-ms 1", p.stderr)
        # a wrong key given so: refused in words, the key not shown
        wrong = CryptoKey.generate().to_base64()
        p = run("command", "-m", self.mon.addr, "--key", wrong, *self.version, cwd=d, env={"HOME": d})
        self.assertEqual(p.returncode, 1)
        self.assertIn("refused our key for client.admin", p.stderr)
        self.assertNotIn(wrong, p.stderr)
        # a malformed --key is a usage error (exit 2, as a malformed --name), named as the option
        p = run("command", "-m", self.mon.addr, "--key", "notbase64", *self.version, cwd=d, env={"HOME": d})
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("msgr2tx: error: --key does not hold a valid cephx key", p.stderr)

    def test_conf_keyring_that_is_missing_is_named(self):
        d = self.mktemp_dir()
        conf = os.path.join(d, "ceph.conf")
        with open(conf, "w") as f:
            f.write("[global]\nmon host = %s\nkeyring = /nonexistent/$name\n" % self.mon.addr)
        p = run("command", "-c", conf, *self.version, cwd=d, env={"HOME": d})
        self.assertEqual(p.returncode, 1)
        self.assertIn("does not accept auth none; it allows cephx: cephx was left out because no key for "
                      "client.admin was found (searched /nonexistent/client.admin; keyring set in %s)" % conf,
                      p.stderr)

    def test_no_abbreviated_options(self):
        for argv in (["command", "-m", self.mon.addr, "--keyr", self.mon.keyring] + self.version,
                     ["ping", self.mon.addr, "--cou", "1"],
                     ["rados", "-m", self.mon.addr, "-p", "data", "ls", "--conn", "1"]):
            p = run(*argv)
            self.assertEqual(p.returncode, 2, (argv, p.stderr))
            self.assertIn("unrecognized arguments", p.stderr)
        # abbreviations in CEPH_ARGS are unknown options there: ignored, as Ceph ignores what it does not know
        p = run("command", "-m", self.mon.addr, "-k", self.mon.keyring, *self.version,
                env={"CEPH_ARGS": "--keyr /nonexistent"})
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_mon_host_dns_name(self):
        p = run("command", "-m", "localhost:%d" % self.mon.port, "-k", self.mon.keyring, *self.version)
        self.assertEqual(p.returncode, 0, p.stderr)
        p = run("command", "-m", "nosuch.invalid:%d" % self.mon.port, "-k", self.mon.keyring, *self.version)
        self.assertEqual((p.returncode, p.stdout), (1, ""))
        self.assertTrue(p.stderr.startswith("msgr2tx: error: could not resolve the monitor host name "
                                            "nosuch.invalid: "), p.stderr)

    def test_format_json_prints_the_monitors_json(self):
        p = run("command", "-c", self.mon.conf, '{"prefix": "mon dump"}', "--format", "json")
        self.assertEqual(p.returncode, 0, p.stderr)
        dump = json.loads(p.stdout)
        self.assertEqual(dump["fsid"], self.mon.fsid)
        theirs = self.mon.ceph_json("mon", "dump")
        self.assertEqual(dump["mons"], theirs["mons"])

    def test_wrong_key(self):
        ring = os.path.join(self.mktemp_dir(), "keyring")
        self.assertEqual(run("keyring", "create", ring, "-n", "client.admin", "--gen-key").returncode, 0)
        p = run("command", "-m", self.mon.addr, "-k", ring, *self.version)
        self.assertEqual((p.returncode, p.stdout), (1, ""))
        self.assertEqual(p.stderr, "msgr2tx: error: the monitor at %s refused our key for client.admin: check the "
                                   "keyring (the key must be the one 'ceph auth get client.admin' shows, and "
                                   "client.admin must exist and have mon caps)\n" % self.mon.addr)

    def test_unknown_entity(self):
        ring = os.path.join(self.mktemp_dir(), "keyring")
        self.assertEqual(run("keyring", "create", ring, "-n", "client.nobody", "--gen-key").returncode, 0)
        p = run("command", "-m", self.mon.addr, "--id", "nobody", "-k", ring, "--json", *self.version)
        self.assertEqual(p.returncode, 1)
        message = ("the monitor at %s refused our key for client.nobody: check the keyring (the key must be the "
                   "one 'ceph auth get client.nobody' shows, and client.nobody must exist and have mon caps)"
                   % self.mon.addr)
        self.assertEqual(json.loads(p.stdout), {"error": "key-refused", "message": message,
                                                "address": self.mon.addr, "stage": "auth"})
        self.assertEqual(p.stderr, "msgr2tx: error: %s\n" % message)

    def test_auth_none_against_cephx(self):
        for args in (["--auth", "none"], []):  # no keyring found: cephx is left out, as Ceph does
            p = run("command", "-m", self.mon.addr, *args, *self.version, env={"HOME": self.mktemp_dir()},
                    cwd=self.mktemp_dir())
            self.assertEqual((p.returncode, p.stdout), (1, ""))
            self.assertEqual(p.stderr, "msgr2tx: error: the monitor at %s does not accept auth none; it allows "
                                       "cephx: use --auth cephx with -k KEYRING\n" % self.mon.addr)

    def test_auth_none_in_secure_mode(self):
        p = run("ping", self.mon.addr, "--auth", "none", "--mode", "secure")
        self.assertEqual((p.returncode, p.stdout), (1, ""))
        self.assertEqual(p.stderr, "msgr2tx: error: cannot talk to the peer at %s: auth none does not work in mode "
                                   "secure: use --mode crc\n" % self.mon.addr)

    def test_cephx_required_without_a_key(self):
        p = run("command", "-m", self.mon.addr, "--auth", "cephx", *self.version, cwd=self.mktemp_dir(),
                env={"HOME": self.mktemp_dir()})
        self.assertEqual((p.returncode, p.stdout), (1, ""))
        self.assertEqual(p.stderr, "msgr2tx: error: cephx needs a key for client.admin and none was found "
                                   "(searched /etc/ceph/ceph.client.admin.keyring, /etc/ceph/ceph.keyring, "
                                   "/etc/ceph/keyring, /etc/ceph/keyring.bin): give -k KEYRING\n")

    def test_keyring_means_cephx(self):
        # no --auth: the keyring makes cephx the first method (auth_client_required's default)
        p = run("ping", self.mon.addr, "-k", self.mon.keyring, "--count", "1", "--json")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(json.loads(p.stdout)["peer"], "mon.0")


class ModeMismatchTests(SynchronousTestCase):
    """A real Ceph 16.2 monitor with ms_mon_service_mode = secure refuses crc."""

    def setUp(self):
        from tests import cephlab
        cephlab.ensure_ceph()
        self.mon = SecureOnlyMonitor()
        self.mon.start()
        self.addCleanup(self.mon.stop)

    def test_crc_refused(self):
        p = run("command", "-m", self.mon.addr, "-k", self.mon.keyring, "--mode", "crc", '{"prefix": "version"}')
        self.assertEqual((p.returncode, p.stdout), (1, ""))
        self.assertEqual(p.stderr, "msgr2tx: error: the monitor at %s allows only secure mode: use --mode secure\n"
                         % self.mon.addr)
        # Ceph's default for monitors (secure crc) works
        p = run("command", "-c", self.mon.conf, '{"prefix": "version"}')
        self.assertEqual(p.returncode, 0, p.stderr)


class WrongPeerTests(SynchronousTestCase):
    """A real Ceph 16.2 OSD (auth none) given where a monitor belongs, or without its nonce."""

    def setUp(self):
        from tests import cephlab
        self.mon = cephlab.shared_monitor("none", osds=1)
        self.osd = self.mon.osds[0]

    def test_osd_is_not_a_monitor(self):
        p = run("command", "-m", self.osd.addr, "--auth", "none", '{"prefix": "version"}', "--json")
        self.assertEqual(p.returncode, 1)
        # its HELLO says it is an OSD: we stop before auth
        message = "%s is an OSD, not a monitor: give a monitor's address with -m" % self.osd.addr
        self.assertEqual(json.loads(p.stdout), {"error": "wrong-peer", "message": message,
                                                "address": self.osd.addr, "stage": "hello"})
        self.assertEqual(p.stderr, "msgr2tx: error: %s\n" % message)

    def test_address_without_nonce(self):
        bare = self.osd.addr.rpartition("/")[0]
        p = run("ping", bare, "--auth", "none")
        self.assertEqual((p.returncode, p.stdout), (1, ""))
        self.assertEqual(p.stderr, "msgr2tx: error: the peer at %s closed the connection during session setup (a "
                                   "daemon other than a monitor does this when the address lacks its nonce: give "
                                   "the address as the map shows it, ADDR:PORT/NONCE)\n" % bare)
        p = run("ping", self.osd.addr, "--auth", "none", "--count", "1")
        self.assertEqual(p.returncode, 0, p.stderr)


class CommandWordsTests(SynchronousTestCase):
    """
    Monitor commands typed as words, matched against a real Ceph 16.2
    monitor's own command descriptions, compared with what the ceph CLI
    prints for the same words.
    """

    _descriptions = {}

    def setUp(self):
        from tests import cephlab
        self.mon = cephlab.shared_monitor("cephx")
        if self.mon.addr not in self._descriptions:
            p = run("command", "-c", self.mon.conf, '{"prefix": "get_command_descriptions"}')
            self.assertEqual(p.returncode, 0, p.stderr)
            self._descriptions[self.mon.addr] = p.stdout
        from msgr2tx.clients.moncommands import parse_descriptions
        self.sigs = parse_descriptions(self._descriptions[self.mon.addr])

    def build(self, *words):
        from msgr2tx.clients.moncommands import build_command
        return build_command(words, self.sigs)

    def test_build_against_the_real_table(self):
        self.assertEqual(self.build("status"), {"prefix": "status"})
        self.assertEqual(self.build("osd", "pool", "ls", "detail"), {"prefix": "osd pool ls", "detail": "detail"})
        self.assertEqual(self.build("osd", "pool", "ls"), {"prefix": "osd pool ls"})
        self.assertEqual(self.build("osd", "pool", "create", "p1", "8"),
                         {"prefix": "osd pool create", "pool": "p1", "pg_num": 8})
        self.assertEqual(self.build("osd", "pool", "create", "p1", "8", "8", "erasure"),
                         {"prefix": "osd pool create", "pool": "p1", "pg_num": 8, "pgp_num": 8,
                          "pool_type": "erasure"})
        self.assertEqual(self.build("osd", "pool", "rm", "p1", "p1", "--yes-i-really-really-mean-it"),
                         {"prefix": "osd pool rm", "pool": "p1", "pool2": "p1",
                          "yes_i_really_really_mean_it": True})
        self.assertEqual(self.build("mon", "dump", "--epoch=1"), {"prefix": "mon dump", "epoch": 1})
        self.assertEqual(self.build("osd", "down", "osd.3", "4"), {"prefix": "osd down", "ids": ["osd.3", "4"]})

    def test_build_refusals(self):
        from msgr2tx.errors import CommandUsageError
        e = self.assertRaises(CommandUsageError, self.build, "osd", "pool", "create")
        self.assertTrue(str(e).startswith("invalid arguments for 'osd pool create': <pool> is missing; usage: "
                                          "osd pool create <pool> [<pg_num:int>] [<pgp_num:int>] "
                                          "[replicated|erasure] "), str(e))
        e = self.assertRaises(CommandUsageError, self.build, "mon", "dump", "-1")
        self.assertEqual(str(e), "invalid arguments for 'mon dump': unexpected '-1'; usage: mon dump [<epoch:int>]")
        e = self.assertRaises(CommandUsageError, self.build, "nosuch")
        self.assertEqual(str(e), "'nosuch' is not a command of this monitor")
        e = self.assertRaises(CommandUsageError, self.build, "mon", "dumpp")
        self.assertTrue(str(e).startswith("'mon dumpp' is not a command of this monitor; commands beginning with "
                                          "'mon': "), str(e))

    def test_status_as_ceph_prints_it(self):
        p = run("command", "-c", self.mon.conf, "status")
        self.assertEqual(p.returncode, 0, p.stderr)
        theirs = self.mon.ceph("status").stdout.decode()
        # the first lines (cluster id, health) are the same; ages and counters may move
        self.assertEqual(p.stdout.splitlines()[:3], theirs.splitlines()[:3])
        self.assertIn("id:     %s" % self.mon.fsid, p.stdout)

    def test_format_json_matches_ceph(self):
        name = "words%d" % os.getpid()
        p = run("command", "-c", self.mon.conf, "osd", "pool", "create", name, "8")
        self.assertEqual((p.returncode, p.stderr), (0, "pool '%s' created\n" % name))
        self.addCleanup(self.mon.ceph, "osd", "pool", "rm", name, name, "--yes-i-really-really-mean-it")
        for fmt in ("json", "json-pretty"):
            ours = run("command", "-c", self.mon.conf, "osd", "pool", "ls", "detail", "--format", fmt)
            self.assertEqual(ours.returncode, 0, ours.stderr)
            theirs = self.mon.ceph("osd", "pool", "ls", "detail", "--format", fmt).stdout.decode()
            # ceph writes a newline before the monitor's output; we end it with one instead
            self.assertTrue(theirs.startswith("\n"), theirs[:20])
            self.assertEqual(ours.stdout, theirs[1:] + ("" if theirs.endswith("\n") else "\n"))
            self.assertIn(name, [pool["pool_name"] for pool in json.loads(ours.stdout)])
        plain = run("command", "-c", self.mon.conf, "osd", "pool", "ls", "detail")
        self.assertEqual(plain.stdout, self.mon.ceph("osd", "pool", "ls", "detail").stdout.decode())
        # JSON still works and says the same
        p = run("command", "-c", self.mon.conf, '{"prefix": "osd pool ls", "detail": "detail", "format": "json"}')
        self.assertEqual(json.loads(p.stdout), json.loads(ours.stdout))

    def test_words_usage_error_exit_2(self):
        p = run("command", "-c", self.mon.conf, "osd", "pool", "lsx", "--json")
        self.assertEqual(p.returncode, cli.EXIT_USAGE)
        self.assertEqual(json.loads(p.stdout)["error"], "usage")
        self.assertTrue(p.stderr.startswith("msgr2tx: error: 'osd pool lsx' is not a command of this monitor; "
                                            "commands beginning with 'osd pool': "), p.stderr)


class UnderscoreOptionTests(SynchronousTestCase):
    """Ceph's options take underscores or dashes on the command line and in CEPH_ARGS."""

    def test_underscores(self):
        from tests import cephlab
        mon = cephlab.shared_monitor("cephx")
        p = run("command", "--mon_host", mon.addr, "--keyring", mon.keyring, "--connect_timeout=5",
                '{"prefix": "version"}')
        self.assertEqual(p.returncode, 0, p.stderr)
        p = run("command", '{"prefix": "version"}', env={"CEPH_ARGS": "--mon_host=%s --auth_client_required=none"
                                                                      % mon.addr})
        self.assertEqual(p.returncode, 1)
        self.assertEqual(p.stderr, "msgr2tx: error: the monitor at %s does not accept auth none; it allows cephx: "
                                   "use --auth cephx with -k KEYRING\n" % mon.addr)


def out_of_quorum_monitor():
    """
    A real Ceph 16.2 monitor whose monmap names a second monitor that never
    runs, so it never forms a quorum (and drops clients during auth).
    """
    import time

    from tests import cephlab

    class OutOfQuorum(cephlab.CephMonitor):
        def _conf_text(self):
            return super()._conf_text().replace("mon initial members = a", "mon initial members = a, b")

        def _create(self):
            real_run = cephlab._run
            absent = "[v2:127.0.0.1:%d]" % cephlab.free_port()

            def run(cmd, *a, **kw):
                if cmd[0] == "monmaptool":
                    cmd = cmd[:-1] + ["--addv", "b", absent, cmd[-1]]
                return real_run(cmd, *a, **kw)

            cephlab._run = run
            try:
                super()._create()
            finally:
                cephlab._run = real_run

        def _wait_ready(self, deadline):
            # no quorum, so no 'ceph status': listening is all we wait for
            while not cephlab.port_open(self.port):
                self._check_alive()
                if time.monotonic() > deadline:
                    raise cephlab.CephLabError("ceph-mon did not listen on %s in time" % self.addr)
                time.sleep(0.02)

    return OutOfQuorum(auth="cephx")


class OutOfQuorumTests(SynchronousTestCase):
    """A monitor out of quorum closes the connection during auth: said so, and the next monitor is tried."""

    def setUp(self):
        from tests import cephlab
        cephlab.ensure_ceph()
        self.lonely = out_of_quorum_monitor()
        self.lonely.start()
        self.addCleanup(self.lonely.stop)

    def test_closed_during_auth(self):
        p = run("command", "-m", self.lonely.addr, "-k", self.lonely.keyring, "status", "--json")
        message = ("the monitor at %s closed the connection during authentication (a monitor out of quorum does "
                   "this; try another monitor)" % self.lonely.addr)
        self.assertEqual((p.returncode, p.stderr), (1, "msgr2tx: error: %s\n" % message))
        self.assertEqual(json.loads(p.stdout), {"error": "closed", "message": message,
                                                "address": self.lonely.addr, "stage": "auth"})

    def test_next_monitor_is_tried(self):
        from tests import cephlab
        good = cephlab.shared_monitor("cephx")
        p = run("command", "-m", "%s,%s" % (self.lonely.addr, good.addr), "-k", good.keyring,
                '{"prefix": "version"}')
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(p.stdout.startswith("ceph version 16.2"), p.stdout)
