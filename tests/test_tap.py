"""
``twistd msgr2`` options and its embedded defaults: a generated keyring in
the state directory, cephx and none, secure and crc, and the printed
instructions that really connect.
"""

import base64
import os
import shlex
import socket
import stat
import subprocess
import tempfile
import time

from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase, TestCase

from msgr2tx.auth.cephx import CephxClientHandler, CephxServerHandler
from msgr2tx.auth.cephx_proto import CryptoKey
from msgr2tx.auth.keyring import Keyring
from msgr2tx.core.constants import AuthMethod, ConnectionMode
from msgr2tx.core.encoding import AddrType, EntityName, EntityType
from msgr2tx.clients.mgr import FetchingServiceHandler, MgrRegistration
from msgr2tx import tap
from msgr2tx.tap import Options, _listen_address, makeService
from tests import cephlab
from tests.test_interop_pacific import TwistdServer, tool


class OptionTests(SynchronousTestCase):

    def setUp(self):
        self.state = tempfile.mkdtemp(prefix="msgr2tx-state-")
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", self.state]))
        # these parse the default --listen; port 3300 may be busy here
        self.patch(tap, "check_listen", lambda description: None)

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
        for args in (["--mode", "fast"], ["--auth", "kerberos"], ["--entity", "nodot"], ["--entity", "mon."],
                     ["--rev", "2"],
                     ["--policy", "sometimes"], ["--auth", "none", "--mode", "secure"],
                     ["--max-frame", "0"], ["--keepalive", "-1"], ["--service", "nosuch"]):
            self.assertRaises(usage.UsageError, self.parse, *args)

    def test_make_service(self):
        options = self.parse("--listen", "tcp:0:interface=127.0.0.1", "--listen", "tcp:0:interface=127.0.0.1")
        service = makeService(options)
        self.assertEqual(len(list(service)), 2)

    def test_fast_reconnect_switch(self):
        from msgr2tx.core.features import MSGR2TX_FEATURE_FAST_RECONNECT

        def banner_bits(*args):
            top = makeService(self.parse("--listen", "tcp:0:interface=127.0.0.1", *args))
            (server,) = [s for s in top if hasattr(s, "endpoint")]
            return server.factory.config.msgr2_supported

        self.assertTrue(banner_bits() & MSGR2TX_FEATURE_FAST_RECONNECT)
        self.assertFalse(banner_bits("--no-fast-reconnect") & MSGR2TX_FEATURE_FAST_RECONNECT)

    def test_listen_address(self):
        self.assertEqual(_listen_address("tcp:3300:interface=127.0.0.1"), "v2:127.0.0.1:3300")
        self.assertEqual(_listen_address("tcp:port=4000"), "v2:127.0.0.1:4000")
        self.assertEqual(_listen_address("tcp6:3300:interface=\\:\\:1"), "v2:[::1]:3300")


class ListenCheckTests(SynchronousTestCase):
    """Each --listen is checked before twistd starts: one line, no traceback."""

    def parse(self, *args):
        options = Options()
        options.parseOptions(["--auth", "none", "--mode", "crc"] + list(args))
        return options

    def error(self, *args):
        return str(self.assertRaises(usage.UsageError, self.parse, *args))

    def test_not_an_endpoint(self):
        for bad in ("garbage", "tcp:abc", "tcp:port=x"):
            message = self.error("--listen", bad)
            self.assertIn("--listen %s is not an endpoint description" % bad, message)
            self.assertNotIn("\n", message)

    def test_port_out_of_range(self):
        self.assertIn("out of range", self.error("--listen", "tcp:70000:interface=127.0.0.1"))

    def test_address_in_use(self):
        with socket.socket() as holder:
            holder.bind(("127.0.0.1", 0))
            holder.listen(1)
            port = holder.getsockname()[1]
            message = self.error("--listen", "tcp:%d:interface=127.0.0.1" % port)
        self.assertIn("cannot listen on 127.0.0.1:%d: address already in use" % port, message)
        self.assertIn("--listen tcp:PORT:interface=127.0.0.1", message)

    def test_not_our_address(self):
        self.assertIn("is not an address of this host",
                      self.error("--listen", "tcp:0:interface=192.0.2.1"))

    def test_free_port_and_other_types(self):
        self.assertEqual(self.parse("--listen", "tcp:0:interface=127.0.0.1")["listen"],
                         ["tcp:0:interface=127.0.0.1"])
        path = os.path.join(tempfile.mkdtemp(prefix="msgr2tx-sock-"), "s")
        self.assertEqual(self.parse("--listen", "unix:" + path)["listen"], ["unix:" + path])

    def test_twistd_in_use_is_one_line(self):
        """twistd itself: the usage error and a non-zero exit, no traceback."""
        with socket.socket() as holder:
            holder.bind(("127.0.0.1", 0))
            holder.listen(1)
            port = holder.getsockname()[1]
            p = subprocess.run([tool("twistd"), "-n", "msgr2", "--auth", "none", "--mode", "crc",
                                "--listen", "tcp:%d:interface=127.0.0.1" % port],
                               capture_output=True, timeout=60, cwd=tempfile.gettempdir())
        err = (p.stdout + p.stderr).decode()
        self.assertNotEqual(p.returncode, 0)
        self.assertNotIn("Traceback", err)
        self.assertIn("cannot listen on 127.0.0.1:%d: address already in use" % port, err)


MGR_SECRET = b"MGRTAPSECRET-012"
ADMIN_SECRET = b"ADMTAPSECRET-345"


class ManagerOptionTests(SynchronousTestCase):
    """--mon: options for serving a real cluster as its manager (nothing started)."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="msgr2tx-mgr-")
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", self.dir]))
        self.state = os.path.join(self.dir, "state")
        # the listen addresses here are examples, possibly busy on this machine
        self.patch(tap, "check_listen", lambda description: None)

    def keyring(self, *names):
        path = os.path.join(self.dir, "keyring-" + "-".join(names or ("empty",)))
        ring = Keyring()
        ring.add(EntityName.parse("client.admin"), CryptoKey(ADMIN_SECRET))
        for name in names:
            ring.add(EntityName.parse(name), CryptoKey(MGR_SECRET), {"mon": "allow profile mgr"})
        ring.save(path)
        return path

    def parse(self, *args, listen="tcp:6800:interface=127.0.0.1", entity="mgr.x", mon="v2:127.0.0.1:3300"):
        argv = ["--state-dir", self.state]
        if entity:
            argv += ["--entity", entity]
        if mon:
            argv += ["--mon", mon]
        if listen:
            argv += ["--listen", listen]
        options = Options()
        options.parseOptions(argv + list(args))
        return options

    def assertUsageError(self, *args, **kwargs):
        e = self.assertRaises(usage.UsageError, self.parse, *args, **kwargs)
        text = str(e)
        for secret in (MGR_SECRET, ADMIN_SECRET):
            for form in (secret.hex(), base64.b64encode(secret).decode(), CryptoKey(secret).to_base64(),
                         secret.decode()):
                self.assertNotIn(form, text)
        return text

    def test_needs_mgr_entity(self):
        self.assertIn("mgr.NAME", self.assertUsageError("--auth", "none", entity=None))  # default mon.a
        self.assertUsageError("--auth", "none", entity="client.x")
        self.assertUsageError("--auth", "none", entity="osd.1")

    def test_cephx_needs_keyring(self):
        text = self.assertUsageError("--auth", "cephx")
        self.assertIn("--keyring", text)
        # the default auth includes cephx too; no state keyring is generated for --mon
        self.assertUsageError()
        self.assertFalse(os.path.exists(self.state))

    def test_keyring_without_our_entity(self):
        text = self.assertUsageError("--auth", "cephx", "--keyring", self.keyring("mgr.y"))
        self.assertIn("mgr.x", text)
        self.assertUsageError("--auth", "cephx", "--keyring", self.keyring())
        self.assertUsageError("--auth", "cephx", "--keyring", os.path.join(self.dir, "missing"))

    def test_listen_must_be_dialable(self):
        for listen in ("tcp:0:interface=127.0.0.1", "tcp:6800", "tcp:6800:interface=0.0.0.0",
                       "tcp6:6800:interface=\\:\\:", "unix:%s" % os.path.join(self.dir, "sock"),
                       "tcp:port=0:interface=127.0.0.1"):
            self.assertUsageError("--auth", "none", listen=listen)

    def test_listen_must_be_an_address(self):
        # a hostname or an impossible port is a usage error, not a traceback
        for listen in ("tcp:6800:interface=localhost", "tcp:70000:interface=127.0.0.1"):
            self.assertUsageError("--auth", "none", listen=listen)

    def test_only_the_first_listen_counts(self):
        options = self.parse("--auth", "none", "--listen", "tcp:0")
        self.assertEqual(options["registration"]["server_addrs"].addrs[0].port, 6800)
        self.assertUsageError("--auth", "none", "--listen", "tcp:6800:interface=127.0.0.1", listen="tcp:0")

    def test_bad_monitor_address(self):
        for mon in ("nonsense", "v1:127.0.0.1:6789", "v2:127.0.0.1:99999"):
            self.assertUsageError("--auth", "none", mon=mon)

    def test_unknown_auth(self):
        self.assertUsageError("--auth", "kerberos")

    def assertRegistration(self, options, host, port):
        reg = options["registration"]
        self.assertEqual(reg["mon"], "v2:127.0.0.1:3300")
        (addr,) = reg["server_addrs"].addrs
        self.assertEqual(addr.type, AddrType.MSGR2)
        self.assertEqual((str(addr.host), addr.port), (host, port))
        self.assertNotEqual(options["server_nonce"], 0)
        self.assertEqual(addr.nonce, options["server_nonce"])
        self.assertIsNone(options["generated_keyring"])
        return reg

    def test_auth_none(self):
        options = self.parse("--auth", "none")
        reg = self.assertRegistration(options, "127.0.0.1", 6800)
        self.assertIsNone(reg["key_server"])
        self.assertEqual([h.method for h in options["auth_handlers"]], [AuthMethod.NONE])
        self.assertEqual([h.method for h in reg["auth"]], [AuthMethod.NONE])
        self.assertEqual(str(options["entity_name"]), "mgr.x")

    def test_cephx_with_keyring(self):
        path = self.keyring("mgr.x")
        options = self.parse("--auth", "cephx,none", "--keyring", path, "--mode", "crc")
        reg = self.assertRegistration(options, "127.0.0.1", 6800)
        server, none = options["auth_handlers"]
        self.assertIsInstance(server, CephxServerHandler)
        self.assertEqual(none.method, AuthMethod.NONE)
        # a service: authorizers for MGR only, no monitor role, our own entity
        self.assertIsNone(server.authority)
        self.assertEqual(server.service.service_ids, frozenset([EntityType.MGR]))
        self.assertIs(reg["key_server"], server.key_server)
        self.assertEqual(server.key_server.own_name, EntityName.parse("mgr.x"))
        client = reg["auth"][0]
        self.assertIsInstance(client, CephxClientHandler)
        self.assertEqual(client.name, EntityName.parse("mgr.x"))
        self.assertEqual(client._key, CryptoKey(MGR_SECRET))
        self.assertEqual([h.method for h in reg["auth"]], [AuthMethod.CEPHX, AuthMethod.NONE])

    def test_cephx_keyring_in_auth_spec(self):
        options = self.parse("--auth", "cephx:keyring=%s" % self.keyring("mgr.x"))
        self.assertIsNotNone(self.assertRegistration(options, "127.0.0.1", 6800)["key_server"])

    def test_ipv6(self):
        options = self.parse("--auth", "none", listen="tcp6:6801:interface=\\:\\:1")
        self.assertRegistration(options, "::1", 6801)

    def test_nonce_is_random(self):
        nonces = {self.parse("--auth", "none")["server_nonce"] for _ in range(4)}
        self.assertGreater(len(nonces), 1)

    def test_make_service(self):
        options = self.parse("--auth", "cephx", "--keyring", self.keyring("mgr.x"), "--mode", "crc")
        top = makeService(options)
        children = list(top)
        registrations = [s for s in children if isinstance(s, MgrRegistration)]
        self.assertEqual(len(registrations), 1)
        self.assertEqual(len(children), 2)  # the listener and the registration
        reg = registrations[0]
        self.assertFalse(reg.running)
        self.assertEqual(reg.entity, EntityName.parse("mgr.x"))
        self.assertEqual(reg.server_addrs, options["registration"]["server_addrs"])
        self.assertIs(reg.key_server, options["registration"]["key_server"])
        listener = [s for s in children if not isinstance(s, MgrRegistration)][0]
        self.assertEqual(listener.factory.nonce, options["server_nonce"])
        # cephx refetches the rotating secrets for tickets naming a newer one
        [handler] = listener.factory.auth_handlers
        self.assertIsInstance(handler, FetchingServiceHandler)
        self.assertIs(handler.registration, reg)
        self.assertIs(handler.key_server, reg.key_server)

    def test_make_service_without_mon(self):
        options = self.parse("--auth", "none", "--mode", "crc", entity="mon.a", mon=None,
                             listen="tcp:0:interface=127.0.0.1")
        self.assertIsNone(options["registration"])
        self.assertFalse([s for s in makeService(options) if isinstance(s, MgrRegistration)])


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

    timeout = 300

    def start(self, *args, listen=None):
        """twistd -n msgr2 ARGS on a free port (or *listen*): (its stdout's instructions, log path)."""
        import select
        import time

        root = tempfile.mkdtemp(prefix="msgr2tx-tap-")
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", root]))
        logfile = os.path.join(root, "twistd.log")
        listen = listen or "tcp:%d:interface=127.0.0.1" % cephlab.free_port()
        proc = subprocess.Popen([tool("twistd"), "-n", "--pidfile=", "--logfile", logfile, "msgr2",
                                 "--listen", listen, *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, cwd=root,
                                env=dict(os.environ, MSGR2TX_STATE_DIR=os.path.join(root, "state")))

        def stop():
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
            proc.stdout.close()
        self.addCleanup(stop)
        # the instructions: one write once listening, then twistd logs to its file
        out, deadline = b"", time.monotonic() + 20
        while time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 1.0 if out.endswith(b"\n") else 0.2)
            if ready:
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    break
                out += chunk
            elif out.endswith(b"\n"):
                break
        return out.decode(), logfile, root

    def run_printed(self, text, logfile, expected):
        """Run every printed command; *expected* lists their kinds in order; returns their outputs."""
        commands = [line.strip() for line in text.splitlines() if line.startswith("    ")]
        kinds = [("ping " if c.split()[0].endswith("msgr2tx") else "ceph ")
                 + ("cephx" if "--auth cephx" in c or "-n client.admin" in c else "none") for c in commands]
        self.assertEqual(kinds, expected, text)
        for command, kind in zip(commands, kinds):
            argv = shlex.split(command)
            if kind.startswith("ping"):
                argv[0] = tool("msgr2tx")
                p = subprocess.run(argv + ["--json", "--count", "1"], capture_output=True, timeout=30)
                self.assertEqual(p.returncode, 0, (command, p.stdout, p.stderr))
                mode = argv[argv.index("--mode") + 1]
                self.assertIn(b'"mode": "%s"' % mode.encode(), p.stdout, command)
            else:
                cephlab.ensure_ceph()
                # Ceph's own client (librados' monitor pinger): one MPing
                # round trip, exit status 0, and a session in our log
                with open(logfile) as f:
                    before = f.read().count("READY: entity=client.")
                p = subprocess.run(argv, capture_output=True, timeout=60, env=dict(os.environ, CEPH_ARGS=""))
                self.assertEqual(p.returncode, 0, (command, p.stderr.decode("utf-8", "replace")[-2000:]))
                self.assertEqual(p.stdout.strip(), b"None")
                with open(logfile) as f:
                    self.assertEqual(f.read().count("READY: entity=client."), before + 1)
        return commands

    def test_printed_instructions_connect(self):
        """The embedded defaults: cephx in secure mode and none in crc, with msgr2tx and with ceph."""
        text, logfile, _ = self.start()
        self.assertIn("created keyring", text)
        if not _has("ceph"):
            self.skipTest("no ceph CLI here")
        cephx_ping = self.run_printed(text, logfile, ["ping cephx", "ping none", "ceph cephx", "ceph none"])[0]
        self.assertIn("--mode secure", cephx_ping)

    def test_printed_instructions_follow_the_options(self):
        """Each command printed for a server started with other options works against it."""
        cases = [
            (("--mode", "crc"), ["ping cephx", "ping none", "ceph cephx", "ceph none"], None),
            (("--auth", "cephx"), ["ping cephx", "ceph cephx"], None),
            (("--service", "inspect"), ["ping cephx", "ping none"], "which the echo service gives"),
            (("--entity", "osd.3"), ["ping none"], "no cephx commands"),
            (("--auth", "none", "--mode", "crc"), ["ping none", "ceph none"], None),
        ]
        if not _has("ceph"):
            self.skipTest("no ceph CLI here")
        for args, expected, note in cases:
            text, logfile, _ = self.start(*args)
            commands = self.run_printed(text, logfile, expected)
            if "--mode" in args and "crc" in args:
                self.assertFalse([c for c in commands if "--mode secure" in c], text)
            if note:
                self.assertIn(note, text)

    def test_printed_instructions_with_keyring(self):
        """--keyring K holding client.admin: the commands use K; without client.admin, a line says why."""
        root = tempfile.mkdtemp(prefix="msgr2tx-ring-")
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", root]))
        # a quote in the path: the printed commands quote it for the shell
        path = os.path.join(root, "admin's-keyring")
        _write_keyring(path)
        text, logfile, _ = self.start("--keyring", path, "--auth", "cephx")
        commands = self.run_printed(text, logfile, ["ping cephx", "ceph cephx"] if _has("ceph") else ["ping cephx"])
        self.assertIn("--keyring %s" % shlex.quote(path), commands[0])
        other = os.path.join(root, "other")
        ring = Keyring()
        ring.add(EntityName.parse("client.bob"), CryptoKey.generate())
        ring.save(other)
        text, logfile, _ = self.start("--keyring", other, "--auth", "cephx")
        self.run_printed(text, logfile, [])
        self.assertIn("no cephx commands: keyring %s has no usable client.admin key" % other, text)
        # a path with a space cannot be given to --keyring (a list, as in Ceph): a line says so
        spaced = os.path.join(root, "key ring")
        _write_keyring(spaced)
        text, logfile, _ = self.start("--keyring", spaced, "--auth", "cephx")
        self.run_printed(text, logfile, [])
        self.assertIn("no cephx commands: --keyring takes a list of paths", text)

    def test_printed_port_is_the_bound_one(self):
        """--listen tcp:0 prints the port the kernel picked; a unix listen prints why there is none."""
        text, logfile, _ = self.start("--auth", "none", "--mode", "crc", listen="tcp:0:interface=127.0.0.1")
        commands = self.run_printed(text, logfile, ["ping none", "ceph none"] if _has("ceph") else ["ping none"])
        self.assertNotIn("v2:127.0.0.1:0 ", commands[0] + " ")
        sock = os.path.join(tempfile.mkdtemp(prefix="msgr2tx-sock-"), "s")
        text, logfile, _ = self.start("--auth", "none", "--mode", "crc", listen="unix:" + sock)
        self.run_printed(text, logfile, [])
        self.assertIn("no connect commands", text)
        self.assertNotIn("3300", text)

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


def _twistd(*args, env=None, cwd=None):
    """twistd -n msgr2 ARGS to its end (it is expected to refuse to start): (exit status, output)."""
    p = subprocess.run([tool("twistd"), "-n", "--pidfile=", "msgr2", *args], capture_output=True, timeout=60,
                       cwd=cwd or tempfile.gettempdir(), env=dict(os.environ, **(env or {})))
    return p.returncode, (p.stdout + p.stderr).decode("utf-8", "replace")


class StartupErrorTests(TestCase):
    """Bad startup arguments: twistd exits non-zero with one line naming the option, no traceback."""

    timeout = 120

    def assertOneLine(self, args, *expected, env=None, cwd=None):
        status, out = _twistd("--auth", "none", "--mode", "crc", *args, env=env, cwd=cwd)
        self.assertNotEqual(status, 0, out)
        self.assertNotIn("Traceback", out)
        (line,) = [line for line in out.splitlines() if line.startswith(tool("twistd"))]
        for text in expected:
            self.assertIn(text, line)
        return line

    def test_inspect_log_unwritable(self):
        self.assertOneLine(["--listen", "tcp:0:interface=127.0.0.1", "--service", "inspect",
                            "--inspect-log", "/nonexistent/dir/log"],
                           "--inspect-log /nonexistent/dir/log: cannot open", "No such file or directory")

    def test_ssl_without_key(self):
        port = cephlab.free_port()
        cwd = tempfile.mkdtemp(prefix="msgr2tx-ssl-")
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", cwd]))
        self.assertOneLine(["--listen", "ssl:%d:interface=127.0.0.1" % port],
                           "--listen ssl:%d" % port, "server.pem", "privateKey=PATH", cwd=cwd)
        self.assertOneLine(["--listen", "ssl:%d:interface=127.0.0.1:privateKey=/nonexist.key" % port],
                           "cannot read /nonexist.key")

    def test_unix_in_missing_directory(self):
        self.assertOneLine(["--listen", "unix:/nonexistent/sock"],
                           "--listen unix:/nonexistent/sock: directory /nonexistent does not exist")

    def test_unix_path_taken(self):
        """A plain file at the path, or a live server's socket there, is refused; a stale socket is not."""
        path = os.path.join(tempfile.mkdtemp(prefix="msgr2tx-sock-"), "s")
        open(path, "w").close()
        self.assertOneLine(["--listen", "unix:" + path], "%s already exists" % path)
        self.assertOneLine(["--listen", "unix:%s:lockfile=0" % path], "%s already exists" % path)
        os.unlink(path)
        # a live twistd msgr2 on the socket: a second one is refused in one line
        server = subprocess.Popen([tool("twistd"), "-n", "--pidfile=", "msgr2", "--auth", "none", "--mode", "crc",
                                   "--listen", "unix:" + path], stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 15
            while not os.path.exists(path) and server.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            self.assertOneLine(["--listen", "unix:" + path], "process %d holds %s.lock" % (server.pid, path))
        finally:
            server.terminate()
            server.wait(10)
        # what it left behind (if anything) is stale: Twisted's lock handles it
        Options().parseOptions(["--auth", "none", "--mode", "crc", "--listen", "unix:" + path])

    def test_same_listen_twice(self):
        port = cephlab.free_port()
        listen = "tcp:%d:interface=127.0.0.1" % port
        self.assertOneLine(["--listen", listen, "--listen", listen], "both bind port %d" % port)
        # a wildcard interface clashes with a concrete one of the same port
        self.assertOneLine(["--listen", listen, "--listen", "tcp:%d" % port], "both bind port %d" % port)

    def test_address_in_use_hint_under_make(self):
        with socket.socket() as holder:
            holder.bind(("127.0.0.1", 0))
            holder.listen(1)
            port = holder.getsockname()[1]
            self.assertOneLine(["--listen", "tcp:%d:interface=127.0.0.1" % port],
                               'make run ARGS="--listen tcp:PORT:interface=127.0.0.1"', env={"MAKELEVEL": "1"})

    def test_third_party_service_argument(self):
        """docs/service-plugins.md's count plugin, installed on PYTHONPATH: a bad every= is a usage error."""
        root = tempfile.mkdtemp(prefix="msgr2tx-plugin-")
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", root]))
        with open(os.path.join(os.path.dirname(__file__), "..", "docs", "service-plugins.md")) as f:
            page = f.read()
        for path in ("msgr2count/service.py", "twisted/plugins/msgr2count_plugin.py"):
            block = page.split("<!-- sample: %s module -->" % path)[1].split("```python\n", 1)[1].split("```")[0]
            os.makedirs(os.path.join(root, os.path.dirname(path)), exist_ok=True)
            with open(os.path.join(root, path), "w") as f:
                f.write(block)
        open(os.path.join(root, "msgr2count", "__init__.py"), "w").close()
        env = {"PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
        self.assertOneLine(["--listen", "tcp:0:interface=127.0.0.1", "--service", "count:every=abc"],
                           "--service count:every=abc: the count service refused its arguments",
                           "ValueError", env=env)


class SmallOptionErrorTests(SynchronousTestCase):
    """Each message names the option that is wrong, by its flag."""

    def error(self, *args):
        options = Options()
        return str(self.assertRaises(usage.UsageError, options.parseOptions,
                                     ["--auth", "none", "--mode", "crc", "--listen", "tcp:0:interface=127.0.0.1"]
                                     + list(args)))

    def test_negative_numbers(self):
        self.assertIn("--compress-min-size must not be negative", self.error("--compress-min-size", "-5"))
        for flag in ("--keepalive", "--idle-timeout", "--handshake-timeout"):
            message = self.error(flag, "-1")
            self.assertTrue(message.startswith("%s must not be negative" % flag), message)
            others = {"--keepalive", "--idle-timeout", "--handshake-timeout"} - {flag}
            self.assertFalse([o for o in others if o in message], message)

    def test_inspect_log_needs_inspect(self):
        self.assertIn("--inspect-log works with --service inspect only", self.error("--inspect-log", "/tmp/x"))
        self.assertIn("give one of them", self.error("--service", "inspect:jsonl=/tmp/y", "--inspect-log", "/tmp/x"))

    def test_inspect_log_written(self):
        path = os.path.join(tempfile.mkdtemp(prefix="msgr2tx-inspect-"), "log")
        options = Options()
        options.parseOptions(["--auth", "none", "--mode", "crc", "--listen", "tcp:0:interface=127.0.0.1",
                              "--service", "inspect", "--inspect-log", path])
        options["receiver"]._record(event="test")
        with open(path) as f:
            self.assertIn('"event": "test"', f.read())


class ManagerRetryLogTests(TestCase):
    """--mon: each failed attempt to reach the monitor is logged with its address and why."""

    timeout = 120

    def manager_log(self, mon):
        import time

        root = tempfile.mkdtemp(prefix="msgr2tx-mgrlog-")
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", root]))
        logfile = os.path.join(root, "twistd.log")
        proc = subprocess.Popen([tool("twistd"), "-n", "--pidfile=", "--logfile", logfile, "msgr2",
                                 "--mon", mon, "--entity", "mgr.x", "--auth", "none", "--mode", "crc",
                                 "--listen", "tcp:%d:interface=127.0.0.1" % cephlab.free_port()],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                cwd=root)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                with open(logfile) if os.path.exists(logfile) else open(os.devnull) as f:
                    text = f.read()
                if text.count("Scheduling retry") >= 2:
                    return text
                time.sleep(0.2)
            self.fail("no second retry in 30 s:\n" + text[-3000:])
        finally:
            proc.terminate()
            proc.wait(10)

    def test_connection_refused(self):
        mon = "v2:127.0.0.1:%d" % cephlab.free_port()
        text = self.manager_log(mon)
        self.assertIn("msgr2 peer %s: cannot connect (Connection was refused" % mon, text)
        self.assertIn("Scheduling retry 1 to connect %s in" % mon, text)
        self.assertNotIn("ClientEndpoint object at", text)

    def test_auth_refused(self):
        """A monitor (our own twistd msgr2) that allows cephx only refuses a manager with auth none."""
        monitor = TwistdServer("--auth", "cephx").start()
        self.addCleanup(monitor.stop)
        text = self.manager_log(monitor.addr)
        self.assertIn("msgr2 peer %s: the handshake failed (the server refused auth none" % monitor.addr, text)


class MakeRunTests(TestCase):
    """make run ARGS="...": the options reach twistd msgr2."""

    timeout = 120

    def test_args_reach_twistd(self):
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        if not (_has("make") and os.path.exists(os.path.join(root, ".venv", ".stamp"))):
            self.skipTest("needs make and the .venv that make venv builds")
        with socket.socket() as holder:
            holder.bind(("127.0.0.1", 0))
            holder.listen(1)
            port = holder.getsockname()[1]
            p = subprocess.run(["make", "-s", "-C", root, "run",
                                "ARGS=--listen tcp:%d:interface=127.0.0.1 --auth none --mode crc" % port],
                               capture_output=True, timeout=100)
        out = (p.stdout + p.stderr).decode("utf-8", "replace")
        self.assertNotEqual(p.returncode, 0, out)
        self.assertNotIn("Traceback", out)
        self.assertIn("cannot listen on 127.0.0.1:%d: address already in use" % port, out)
        self.assertIn('use make run ARGS="--listen tcp:PORT:interface=127.0.0.1" with a free PORT', out)
