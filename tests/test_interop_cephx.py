"""
cephx interop with real Ceph 16.2 (Pacific) on loopback, crc mode:

- our cephx client -> ceph-mon (auth cephx), msgr2.0 and msgr2.1;
- the ceph CLI with cephx -> our ``twistd msgr2 --auth cephx:keyring=K``.

Without Ceph and without root the tests skip; in CI a missing Ceph is a failure.
"""

import json
import os
import shutil
import subprocess
import tempfile
import time

from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase

from msgr2tx.auth.cephx import CephxAuthProvider, CephxClientHandler
from msgr2tx.auth.cephx_proto import CryptoKey
from msgr2tx.auth.keyring import Keyring
from msgr2tx.client import connect
from msgr2tx.core.config import ConnectionConfig
from msgr2tx.core.constants import ConnectionMode
from msgr2tx.core.encoding import EntityName, EntityType
from msgr2tx.errors import Msgr2Error
from msgr2tx.monclient import MonClient
from tests import cephlab
from tests.test_interop_pacific import READY_RE, TwistdServer

ADMIN = EntityName.parse("client.admin")
CRC = ConnectionConfig(modes=(ConnectionMode.CRC,))
CRC_REV0 = ConnectionConfig(modes=(ConnectionMode.CRC,), revision1=False)


class OurCephxClientToCephMonTests(TestCase):
    """msgr2tx's cephx client against ceph-mon 16.2 with auth cephx."""

    timeout = 90

    def setUp(self):
        # one monitor for the whole class (trial has no setUpClass): the shared
        # cephx monitor, started on first use and stopped at process exit
        self.mon = cephlab.shared_monitor(auth="cephx")

    def _handler(self):
        return CephxAuthProvider().clientHandler("keyring=%s" % self.mon.keyring)

    @defer.inlineCallbacks
    def _session(self, config, handler=None):
        handler = handler or self._handler()
        monclient = MonClient()
        p = yield connect(reactor, self.mon.addr, [handler], config, receiver=monclient, timeout=10)
        self.addCleanup(p.transport.loseConnection)
        self.assertEqual(p.info.rev1, config.revision1)
        self.assertEqual(p.info.mode_name, "crc")
        self.assertEqual(str(p.info.peer_name), "mon.0")
        self.assertTrue(p.info.global_id)
        self.assertEqual(handler.global_id, p.info.global_id)
        return p, monclient, handler

    @defer.inlineCallbacks
    def _version(self, config):
        p, monclient, handler = yield self._session(config)
        result, status, output = yield monclient.command({"prefix": "version"})
        self.assertEqual(result, 0)
        cli = self.mon.ceph("version")
        self.assertEqual(cli.returncode, 0, cli.stderr)
        self.assertEqual(output.decode(), cli.stdout.decode())
        # the monitor gave us the tickets MonClient asks for
        for service in (EntityType.AUTH, EntityType.MON, EntityType.OSD, EntityType.MGR):
            self.assertTrue(handler.tickets.have(service), EntityType.name(service))

    def test_version_rev1(self):
        return self._version(CRC)

    def test_version_rev0(self):
        return self._version(CRC_REV0)

    @defer.inlineCallbacks
    def _mon_dump(self, config):
        p, monclient, _ = yield self._session(config)
        result, status, output = yield monclient.command({"prefix": "mon dump", "format": "json"})
        self.assertEqual(result, 0)
        ours = json.loads(output)
        cli = self.mon.ceph("mon", "dump", "--format", "json")
        self.assertEqual(cli.returncode, 0, cli.stderr)
        self.assertEqual(ours, json.loads(cli.stdout))
        self.assertEqual(ours["fsid"], self.mon.fsid)

    def test_mon_dump_rev1(self):
        return self._mon_dump(CRC)

    def test_mon_dump_rev0(self):
        return self._mon_dump(CRC_REV0)

    @defer.inlineCallbacks
    def test_reconnect_reclaims_global_id(self):
        """
        The second connection presents the old AUTH ticket (CVE-2021-20288
        fix: the mon runs with auth_allow_insecure_global_id_reclaim=false)
        and keeps its global_id.
        """
        p, monclient, handler = yield self._session(CRC)
        first = p.info.global_id
        p.transport.loseConnection()
        p2, monclient2, _ = yield self._session(CRC, handler.spawn())
        self.assertEqual(p2.info.global_id, first)
        result, status, output = yield monclient2.command({"prefix": "version"})
        self.assertEqual(result, 0)
        health = self.mon.ceph("health", "detail", "--format", "json")
        self.assertNotIn(b"AUTH_INSECURE_GLOBAL_ID_RECLAIM", health.stdout)

    @defer.inlineCallbacks
    def test_wrong_key_rejected(self):
        handler = CephxClientHandler(ADMIN, CryptoKey.generate())
        d = connect(reactor, self.mon.addr, [handler], CRC, receiver=MonClient(), timeout=10)
        yield self.assertFailure(d, Msgr2Error)
        self.assertEqual(handler.tickets.tickets, {})

    @defer.inlineCallbacks
    def test_unknown_entity_rejected(self):
        handler = CephxClientHandler(EntityName.parse("client.mallory"), CryptoKey.generate())
        d = connect(reactor, self.mon.addr, [handler], CRC, receiver=MonClient(), timeout=10)
        yield self.assertFailure(d, Msgr2Error)


class CephCliCephxToOurServerTests(TestCase):
    """The real ceph CLI (librados' MonClient), cephx in crc mode, against twistd msgr2."""

    timeout = 90

    def setUp(self):
        cephlab.ensure_ceph()
        self.dir = tempfile.mkdtemp(prefix="msgr2tx-cephx-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.keyring = os.path.join(self.dir, "keyring")
        ring = Keyring()
        ring.add(ADMIN, CryptoKey.generate(), {"mon": "allow *"})
        ring.save(self.keyring)

    def _ceph_status(self, server, keyring):
        return subprocess.run(
            ["ceph", "-c", "/dev/null", "-m", server.addr, "-n", "client.admin", "--keyring", keyring,
             "--auth_client_required", "cephx", "--debug_ms", "1", "--ms_mon_client_mode", "crc",
             "--client_mount_timeout", "2", "--connect-timeout", "3", "status"],
            capture_output=True, timeout=60, env=dict(os.environ, CEPH_ARGS=""))

    def _check(self, rev, server_args):
        server = TwistdServer("--auth", "cephx:keyring=%s" % self.keyring, "--service", "inspect",
                              *server_args).start()
        self.addCleanup(server.stop)
        proc = self._ceph_status(server, self.keyring)
        stderr = proc.stderr.decode("utf-8", "replace")
        ready = READY_RE.findall(stderr)
        self.assertTrue(ready, "no READY line in the ceph client's log:\n" + stderr[-3000:])
        self.assertTrue(all(r == (rev, "0") for r in ready), ready)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and "MMonSubscribe(" not in server.log():
            time.sleep(0.05)
        log = server.log()
        self.assertIn("inspect: READY", log)
        self.assertIn("mode=crc rev%s" % rev, log)
        self.assertRegex(log, r"inspect: message from client\.\d+: MMonSubscribe\(")
        self.assertNotIn("Unhandled Error", log)
        self.assertNotIn("Traceback", log)
        # no key material in our log
        ring = Keyring.load(self.keyring)
        key = ring.get(ADMIN)
        self.assertNotIn(key.to_base64(), log)
        self.assertNotIn(key.secret_bytes.hex(), log)

    def test_ceph_cli_cephx_rev1(self):
        self._check("1", [])

    def test_ceph_cli_cephx_rev0(self):
        self._check("0", ["--rev", "0"])

    def test_ceph_cli_wrong_key_refused(self):
        other = os.path.join(self.dir, "other")
        ring = Keyring()
        ring.add(ADMIN, CryptoKey.generate())
        ring.save(other)
        server = TwistdServer("--auth", "cephx:keyring=%s" % self.keyring, "--service", "inspect").start()
        self.addCleanup(server.stop)
        proc = self._ceph_status(server, other)
        self.assertNotEqual(proc.returncode, 0)
        self.assertFalse(READY_RE.findall(proc.stderr.decode("utf-8", "replace")))
        log = server.log()
        self.assertIn("client.admin failed the challenge", log)
        self.assertNotIn("inspect: READY", log)
        self.assertNotIn("Traceback", log)


class OurAuthorizerToCephOsdTests(TestCase):
    """Tickets from ceph-mon, presented as an authorizer to a real ceph-osd (always challenged)."""

    timeout = 180

    def setUp(self):
        self.mon = cephlab.shared_monitor(auth="cephx")
        osd = self.mon.osds.get(0)
        if osd is None or not osd.running:
            if osd is not None:
                del self.mon.osds[0]
            osd = self.mon.add_osd(0)
        self.osd = osd

    @defer.inlineCallbacks
    def _osd(self, config):
        handler = CephxAuthProvider().clientHandler("keyring=%s" % self.mon.keyring)
        p = yield connect(reactor, self.mon.addr, [handler], config, receiver=MonClient(), timeout=10)
        self.addCleanup(p.transport.loseConnection)
        osd_handler = handler.spawn()
        p2 = yield connect(reactor, self.osd.addr, [osd_handler], config, timeout=10)
        self.addCleanup(p2.transport.loseConnection)
        self.assertEqual(str(p2.info.peer_name), "osd.0")
        self.assertEqual(p2.info.mode_name, "crc")
        self.assertEqual(p2.info.rev1, config.revision1)
        # the AUTH_SIGNATUREs verified under the OSD ticket's session key
        self.assertEqual(p2.conn._session_key,
                         handler.tickets.get(EntityType.OSD).session_key.secret_bytes)

    def test_osd_rev1(self):
        return self._osd(CRC)

    def test_osd_rev0(self):
        return self._osd(CRC_REV0)
