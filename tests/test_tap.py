"""
``twistd msgr2`` options and its embedded defaults: a generated keyring in
the state directory, cephx and none, secure and crc, and the printed
instructions that really connect.
"""

import os
import re
import shlex
import socket
import stat
import subprocess
import tempfile

from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase, TestCase

from msgr2tx.auth.keyring import Keyring
from msgr2tx.core.constants import AuthMethod, ConnectionMode
from msgr2tx.core.encoding import EntityName
from msgr2tx.tap import Options, _listen_address, makeService
from tests import cephlab
from tests.test_interop_pacific import READY_RE, TwistdServer, tool


class OptionTests(SynchronousTestCase):

    def setUp(self):
        self.state = tempfile.mkdtemp(prefix="msgr2tx-state-")
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", self.state]))

    def parse(self, *args):
        options = Options()
        options.parseOptions(["--state-dir", os.path.join(self.state, "s")] + list(args))
        return options

    def test_defaults(self):
        options = self.parse()
        self.assertEqual(options["listen"], ["tcp:3300:interface=127.0.0.1"])
        self.assertEqual([h.method for h in options["auth_handlers"]], [AuthMethod.CEPHX, AuthMethod.NONE])
        self.assertEqual(options["modes"], (ConnectionMode.SECURE, ConnectionMode.CRC))
        self.assertEqual(str(options["entity_name"]), "mon.a")
        path, created = options["generated_keyring"]
        self.assertTrue(created)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        ring = Keyring.load(path)
        self.assertEqual(sorted(str(n) for n in ring.entities()), ["client.admin", "mon.a"])
        # the second run keeps the keys
        again = self.parse()
        self.assertEqual(again["generated_keyring"], (path, False))
        self.assertEqual(Keyring.load(path).get(EntityName.parse("client.admin")).to_base64(),
                         ring.get(EntityName.parse("client.admin")).to_base64())

    def test_no_keyring_for_auth_none(self):
        options = self.parse("--auth", "none", "--mode", "crc")
        self.assertIsNone(options["generated_keyring"])
        self.assertFalse(os.path.exists(os.path.join(self.state, "s")))

    def test_explicit_keyring_is_used(self):
        path = os.path.join(self.state, "given")
        subprocess.run(["ceph-authtool", "--create-keyring", path, "--gen-key", "-n", "client.admin"],
                       check=True, capture_output=True) if _has("ceph-authtool") else _write_keyring(path)
        options = self.parse("--keyring", path)
        self.assertIsNone(options["generated_keyring"])

    def test_usage_errors(self):
        for args in (["--mode", "fast"], ["--auth", "kerberos"], ["--entity", "nodot"], ["--rev", "2"],
                     ["--policy", "sometimes"], ["--auth", "none", "--mode", "secure"],
                     ["--max-frame", "0"], ["--keepalive", "-1"], ["--service", "nosuch"]):
            self.assertRaises(usage.UsageError, self.parse, *args)

    def test_make_service(self):
        options = self.parse("--listen", "tcp:0:interface=127.0.0.1", "--listen", "tcp:0:interface=127.0.0.1")
        service = makeService(options)
        self.assertEqual(len(list(service)), 2)

    def test_listen_address(self):
        self.assertEqual(_listen_address("tcp:3300:interface=127.0.0.1"), "v2:127.0.0.1:3300")
        self.assertEqual(_listen_address("tcp:port=4000"), "v2:127.0.0.1:4000")
        self.assertEqual(_listen_address("tcp6:3300:interface=\\:\\:1"), "v2:[::1]:3300")


def _has(name):
    from shutil import which
    return which(name) is not None


def _write_keyring(path):
    from msgr2tx.auth.cephx_proto import CryptoKey
    ring = Keyring()
    ring.add(EntityName.parse("client.admin"), CryptoKey.generate())
    ring.save(path)


class EmbeddedDefaultsTests(TestCase):
    """twistd -n msgr2 with nothing but a port: the printed commands work."""

    timeout = 90

    def test_printed_instructions_connect(self):
        server = TwistdServer().start()
        self.addCleanup(server.stop)
        # the instructions come first on stdout
        out = b""
        while b"--auth_client_required none" not in out:
            chunk = server.proc.stdout.readline()
            if not chunk:
                break
            out += chunk
        text = out.decode()
        self.assertIn("created keyring", text)
        commands = [line.strip() for line in text.splitlines() if line.startswith("    ")]
        self.assertEqual(len(commands), 4, text)
        ping_cephx, ping_none, ceph_cephx, ceph_none = commands
        self.assertIn(server.addr, ping_cephx)
        for ping in (ping_cephx, ping_none):
            argv = shlex.split(ping.split("#")[0])
            argv[0] = tool("msgr2tx")
            p = subprocess.run(argv + ["--json"], capture_output=True, timeout=30)
            self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(b'"mode": "secure"', subprocess.run(
            [tool("msgr2tx")] + shlex.split(ping_cephx)[1:] + ["--json"], capture_output=True).stdout)
        cephlab.ensure_ceph()
        for command, mode in ((ceph_cephx, "secure"), (ceph_none, "crc")):
            p = subprocess.run(shlex.split(command) + ["--client_mount_timeout", "2", "--connect-timeout", "3"],
                               capture_output=True, timeout=60, env=dict(os.environ, CEPH_ARGS=""))
            stderr = p.stderr.decode("utf-8", "replace")
            self.assertTrue(re.search(r"conn\(.* %s .*s=READY " % mode, stderr),
                            "no %s READY line:\n%s" % (mode, stderr[-2000:]))
        self.assertTrue(READY_RE)

    def test_default_port(self):
        """On the true defaults (port 3300), when that port is free here."""
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", 3300))
            except OSError:
                self.skipTest("port 3300 is in use on this machine")
        server = TwistdServer()
        server.port = 3300
        server.argv = [a for a in server.argv if not a.startswith("tcp:")]
        server.argv.remove("--listen")
        server.start()
        self.addCleanup(server.stop)
        p = subprocess.run([tool("msgr2tx"), "ping", "v2:127.0.0.1:3300", "--count", "2"], capture_output=True,
                           timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
