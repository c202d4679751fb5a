"""
The msgr2tx command line as a user runs it: a subprocess, its stdout, its
stderr and its exit code.  The keyring subcommand is checked against
Ceph's own ceph-authtool in both directions.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from msgr2tx import cli
from msgr2tx._version import __version__
from msgr2tx.auth.keyring import CryptoKey, Keyring

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(*args, timeout=60):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "msgr2tx"] + list(args), capture_output=True, text=True,
                          timeout=timeout, env=env)


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

    def test_usage_errors_exit_2(self):
        for args in (["nosuch"], [], ["ping"], ["ping", "v2:127.0.0.1:1", "--count", "-1"],
                     ["ping", "v2:127.0.0.1:1", "--timeout", "0"], ["keyring"],
                     ["keyring", "print", "k"], ["keyring", "add", "k", "-n", "nodot", "--gen-key"],
                     ["command", "--mon", "v2:127.0.0.1:1", "not json"]):
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
