"""
cephx interop with real Ceph on loopback, in crc and secure mode, msgr2.0
and msgr2.1, on 16.2 (Pacific, the host's Ceph; the classes named here)
and on 18.2 and 20.2 (their ``...ReefTests`` and ``...TentacleTests``
variants, in chroots; Tentacle with aes keys, see tests/cephlab.py):

- our cephx client -> ceph-mon (auth cephx): ``version`` and ``mon dump``
  are what the ceph CLI prints;
- our authorizer, holding a service ticket from ceph-mon -> a real ceph-osd,
  in-process and through ``msgr2tx ping --mon``;
- service ticket renewal over MAuth against ceph-mon, on demand and by
  MonClient's own renewal loop;
- the ceph CLI with cephx -> our ``twistd msgr2 --auth cephx --keyring K
  --mode secure,crc`` (one server per revision, shared by the module).

Without Ceph and without root the tests skip; in CI a missing Ceph is a failure.
"""

import atexit
import json
import os
import re
import shutil
import subprocess
import tempfile
import time

from twisted.internet import defer, reactor, task
from twisted.trial.unittest import TestCase

from msgr2tx.auth.cephx import CephxAuthProvider, CephxClientHandler
from msgr2tx.auth.cephx_proto import CryptoKey
from msgr2tx.auth.keyring import Keyring
from msgr2tx.client import connect
from msgr2tx.core.config import ConnectionConfig
from msgr2tx.core.constants import ConnectionMode
from msgr2tx.core.encoding import EntityName, EntityType
from msgr2tx.errors import Msgr2Error
from msgr2tx.clients.monclient import MonClient
from tests import cephlab
from tests.test_interop_pacific import TwistdServer, tool

ADMIN = EntityName.parse("client.admin")

#: (mode name, revision) -> client config
CONFIGS = {
    (mode, rev): ConnectionConfig(modes=(ConnectionMode.parse(mode),), revision1=rev == 1)
    for mode in ("crc", "secure") for rev in (0, 1)
}
CRC = CONFIGS["crc", 1]
CRC_REV0 = CONFIGS["crc", 0]
SECURE = CONFIGS["secure", 1]
SECURE_REV0 = CONFIGS["secure", 0]

#: a READY line of a Ceph client's ``--debug_ms 1`` log: (mode, rev1, mon rank)
CEPH_READY_RE = re.compile(
    r"conn\(.* (crc|secure) :-?\d+ s=READY .*rev1=(\d).*\)\.ready entity=mon\.(\d+)")


def ceph_ready(stderr):
    """[(mode, rev)] of every READY a Ceph client logged with --debug_ms 1."""
    return [(mode, int(rev)) for mode, rev, _ in CEPH_READY_RE.findall(stderr)]


def our_ready_entities(log, mode, rev):
    """Entities (client.N) our inspect service saw READY in that mode/revision."""
    return re.findall(r"inspect: READY peer=\S+ entity=(client\.\d+) mode=%s rev%d " % (mode, rev), log)


# ---------------------------------------------------------------------------
# one twistd server per argument list for the whole test process

_twistd = {}
_scratch = []


def _cleanup():
    for server in _twistd.values():
        server.stop()
    _twistd.clear()
    for d in _scratch:
        shutil.rmtree(d, ignore_errors=True)


atexit.register(_cleanup)


def server_keyring():
    """A keyring with client.admin (mon 'allow *'), made once per process."""
    if not _scratch:
        d = tempfile.mkdtemp(prefix="msgr2tx-cephx-")
        _scratch.append(d)
        ring = Keyring()
        ring.add(ADMIN, CryptoKey.generate(), {"mon": "allow *"})
        ring.save(os.path.join(d, "keyring"))
    return os.path.join(_scratch[0], "keyring")


def shared_twistd(*args):
    """``twistd msgr2 ARGS``, started on first use, restarted if it died."""
    server = _twistd.get(args)
    if server is None or server.proc.poll() is not None:
        server = _twistd[args] = TwistdServer(*args).start()
    return server


def cephx_server(rev):
    """Our cephx server (secure preferred, crc allowed, inspect service) for rev 0 or 1."""
    return shared_twistd("--auth", "cephx", "--keyring", server_keyring(), "--mode", "secure,crc",
                         "--service", "inspect", "--rev", str(rev))


def wait_for_log(server, start, predicate, timeout=5.0):
    """The server's log from offset C{start}, once C{predicate(text)} holds (or at timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        text = server.log()[start:]
        if predicate(text) or time.monotonic() > deadline:
            return text
        time.sleep(0.05)


def subscribed_entities(log, mode, rev):
    """Entities READY in C{mode}/C{rev} whose MMonSubscribe (for the monmap) we decoded."""
    return [e for e in our_ready_entities(log, mode, rev)
            if re.search(r"inspect: message from %s: MMonSubscribe\(.*'monmap'" % re.escape(e), log)]


def assert_decoded_subscribe(test, log, mode, rev):
    """Our log has a READY in C{mode}/C{rev} and that client's MMonSubscribe, decoded."""
    entities = our_ready_entities(log, mode, rev)
    test.assertTrue(entities, "no READY mode=%s rev%d in our log:\n%s" % (mode, rev, log[-3000:]))
    subscribed = subscribed_entities(log, mode, rev)
    test.assertTrue(subscribed, "no decoded MMonSubscribe from %s:\n%s" % (entities, log[-3000:]))
    test.assertNotIn("Unhandled Error", log)
    test.assertNotIn("Traceback", log)


# ---------------------------------------------------------------------------


class OurCephxClientToCephMonTests(TestCase):
    """msgr2tx's cephx client against ceph-mon with auth cephx: crc and secure, rev0 and rev1."""

    release = cephlab.DEFAULT_RELEASE
    timeout = 90

    def setUp(self):
        # one monitor per release for the whole process (trial has no setUpClass):
        # the shared cephx monitor, started on first use and stopped at process exit
        self.mon = cephlab.shared_monitor(auth="cephx", release=self.release)

    def _handler(self):
        return CephxAuthProvider().clientHandler("keyring=%s" % self.mon.keyring)

    @defer.inlineCallbacks
    def _session(self, config, handler=None):
        handler = handler or self._handler()
        monclient = MonClient()
        p = yield connect(reactor, self.mon.addr, [handler], config, receiver=monclient, timeout=10)
        self.addCleanup(p.transport.loseConnection)
        self.assertEqual(p.info.rev1, config.revision1)
        self.assertEqual(p.info.mode_name, ConnectionMode(config.modes[0]).name.lower())
        self.assertEqual(str(p.info.peer_name), "mon.0")
        self.assertTrue(p.info.global_id)
        self.assertEqual(handler.global_id, p.info.global_id)
        if p.info.mode_name == "secure":
            # frames really go through AES-GCM both ways
            self.assertIsNotNone(p.conn.writer.cipher)
            self.assertIsNotNone(p.conn.reader.cipher)
        else:
            self.assertIsNone(p.conn.writer.cipher)
        return p, monclient, handler

    @defer.inlineCallbacks
    def _version(self, config):
        p, monclient, handler = yield self._session(config)
        result, status, output = yield monclient.command({"prefix": "version"})
        self.assertEqual(result, 0)
        cli = self.mon.ceph("version")
        self.assertEqual(cli.returncode, 0, cli.stderr)
        self.assertEqual(output.decode(), cli.stdout.decode())
        self.assertIn("ceph version %s." % self.mon.version, output.decode())
        # the monitor gave us the tickets MonClient asks for
        for service in (EntityType.AUTH, EntityType.MON, EntityType.OSD, EntityType.MGR):
            self.assertTrue(handler.tickets.have(service), EntityType.name(service))

    def test_version_crc_rev1(self):
        return self._version(CRC)

    def test_version_crc_rev0(self):
        return self._version(CRC_REV0)

    def test_version_secure_rev1(self):
        return self._version(SECURE)

    def test_version_secure_rev0(self):
        return self._version(SECURE_REV0)

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
        self.assertEqual(status, "dumped monmap epoch %d" % ours["epoch"])

    def test_mon_dump_crc_rev1(self):
        return self._mon_dump(CRC)

    def test_mon_dump_crc_rev0(self):
        return self._mon_dump(CRC_REV0)

    def test_mon_dump_secure_rev1(self):
        return self._mon_dump(SECURE)

    def test_mon_dump_secure_rev0(self):
        return self._mon_dump(SECURE_REV0)

    @defer.inlineCallbacks
    def test_secure_preferred_when_both_offered(self):
        """Offering secure then crc, the monitor (secure, crc allowed) picks secure."""
        config = ConnectionConfig(modes=(ConnectionMode.SECURE, ConnectionMode.CRC))
        p = yield connect(reactor, self.mon.addr, [self._handler()], config, receiver=MonClient(), timeout=10)
        self.addCleanup(p.transport.loseConnection)
        self.assertEqual(p.info.mode_name, "secure")

    @defer.inlineCallbacks
    def _reclaim(self, config):
        """
        The second connection presents the old AUTH ticket (CVE-2021-20288
        fix: the mon runs with auth_allow_insecure_global_id_reclaim=false)
        and keeps its global_id.
        """
        p, monclient, handler = yield self._session(config)
        first = p.info.global_id
        p.transport.loseConnection()
        p2, monclient2, _ = yield self._session(config, handler.spawn())
        self.assertEqual(p2.info.global_id, first)
        result, status, output = yield monclient2.command({"prefix": "version"})
        self.assertEqual(result, 0)
        health = self.mon.ceph("health", "detail", "--format", "json")
        self.assertNotIn(b"AUTH_INSECURE_GLOBAL_ID_RECLAIM", health.stdout)

    def test_reconnect_reclaims_global_id(self):
        return self._reclaim(CRC)

    def test_reconnect_reclaims_global_id_secure(self):
        return self._reclaim(SECURE)

    @defer.inlineCallbacks
    def test_wrong_key_rejected(self):
        for config in (CRC, SECURE):
            handler = CephxClientHandler(ADMIN, CryptoKey.generate())
            d = connect(reactor, self.mon.addr, [handler], config, receiver=MonClient(), timeout=10)
            yield self.assertFailure(d, Msgr2Error)
            self.assertEqual(handler.tickets.tickets, {})

    @defer.inlineCallbacks
    def test_unknown_entity_rejected(self):
        handler = CephxClientHandler(EntityName.parse("client.mallory"), CryptoKey.generate())
        d = connect(reactor, self.mon.addr, [handler], SECURE, receiver=MonClient(), timeout=10)
        yield self.assertFailure(d, Msgr2Error)


cephlab.release_variants(globals(), OurCephxClientToCephMonTests)


class TicketRenewalTests(TestCase):
    """cephx service tickets renewed over MAuth (CEPHX_GET_PRINCIPAL_SESSION_KEY) by ceph-mon."""

    release = cephlab.DEFAULT_RELEASE
    timeout = 90

    def setUp(self):
        self.mon = cephlab.shared_monitor(auth="cephx", osds=1, release=self.release)
        self.osd = self.mon.osds[0]

    @defer.inlineCallbacks
    def _monclient(self, config=SECURE, **kw):
        handler = CephxAuthProvider().clientHandler("keyring=%s" % self.mon.keyring)
        monclient = MonClient(auth_handler=handler, **kw)
        p = yield connect(reactor, self.mon.addr, [handler], config, receiver=monclient, timeout=10)
        self.addCleanup(p.transport.loseConnection)
        yield monclient.whenMonmap()
        return p, monclient, handler

    @defer.inlineCallbacks
    def _renew_on_demand(self, config):
        p, monclient, handler = yield self._monclient(config)
        old = {s: handler.tickets.get(s) for s in (EntityType.OSD, EntityType.MGR, EntityType.MON, EntityType.AUTH)}
        self.assertTrue(all(old.values()))
        mask = yield monclient.renew_tickets(EntityType.OSD | EntityType.MGR)
        self.assertEqual(mask, EntityType.OSD | EntityType.MGR)
        for service in (EntityType.OSD, EntityType.MGR):
            new = handler.tickets.get(service)
            self.assertIsNot(new, old[service])
            self.assertNotEqual(new.blob.blob, old[service].blob.blob)
            self.assertNotEqual(new.session_key, old[service].session_key)
            self.assertGreater(new.expires, old[service].expires)
            self.assertGreater(new.renew_after, old[service].renew_after)
            self.assertGreater(new.validity, 0)
        # what we did not ask for stays as it was
        self.assertIs(handler.tickets.get(EntityType.MON), old[EntityType.MON])
        self.assertIs(handler.tickets.get(EntityType.AUTH), old[EntityType.AUTH])
        # the connection still works, and the renewed OSD ticket opens the OSD
        result, _, _ = yield monclient.command({"prefix": "version"})
        self.assertEqual(result, 0)
        p2 = yield connect(reactor, self.osd.addr, [handler.spawn()], config, timeout=10)
        self.addCleanup(p2.transport.loseConnection)
        self.assertEqual(str(p2.info.peer_name), "osd.0")
        self.assertEqual(p2.conn._session_key, handler.tickets.get(EntityType.OSD).session_key.secret_bytes)

    def test_renew_osd_mgr_secure(self):
        return self._renew_on_demand(SECURE)

    def test_renew_osd_mgr_crc_rev0(self):
        return self._renew_on_demand(CRC_REV0)

    @defer.inlineCallbacks
    def test_renewal_loop_renews_due_ticket(self):
        p, monclient, handler = yield self._monclient(SECURE, renew_check_interval=0.1)
        self.assertEqual(handler.need_tickets(), 0)
        old_osd = handler.tickets.get(EntityType.OSD)
        old_mgr = handler.tickets.get(EntityType.MGR)
        old_mon = handler.tickets.get(EntityType.MON)
        # make the OSD ticket due
        old_osd.renew_after = time.time() - 1
        self.assertEqual(handler.need_tickets(), EntityType.OSD)
        deadline = time.monotonic() + 5
        while handler.tickets.get(EntityType.OSD) is old_osd and time.monotonic() < deadline:
            yield task.deferLater(reactor, 0.05, lambda: None)
        new_osd = handler.tickets.get(EntityType.OSD)
        self.assertIsNot(new_osd, old_osd, "the OSD ticket was not renewed within 5 s")
        self.assertNotEqual(new_osd.blob.blob, old_osd.blob.blob)
        self.assertGreater(new_osd.expires, old_osd.expires)
        self.assertEqual(handler.need_tickets(), 0)
        # only the due ticket was renewed
        self.assertIs(handler.tickets.get(EntityType.MGR), old_mgr)
        self.assertIs(handler.tickets.get(EntityType.MON), old_mon)
        result, _, _ = yield monclient.command({"prefix": "version"})
        self.assertEqual(result, 0)


cephlab.release_variants(globals(), TicketRenewalTests)


class CephCliCephxToOurServerTests(TestCase):
    """
    The real ceph CLI (librados' MonClient) with cephx against ``twistd msgr2
    --auth cephx --keyring K --mode secure,crc``: crc and secure, rev0 (our
    --rev 0) and rev1.  The four cells run in parallel, once per process.
    """

    release = cephlab.DEFAULT_RELEASE
    timeout = 90
    _runs = None

    def setUp(self):
        cephlab.ensure_release(self.release)

    @classmethod
    def _argv(cls, server, keyring, mode):
        return cephlab.ceph_argv(cls.release) + [
                "-c", "/dev/null", "-m", server.addr, "-n", "client.admin", "--keyring", keyring,
                "--auth_client_required", "cephx", "--debug_ms", "1", "--ms_mon_client_mode", mode,
                "--client_mount_timeout", "2", "--connect-timeout", "3", "status"]

    @classmethod
    def _cells(cls):
        if cls.__dict__.get("_runs") is None:
            servers = {rev: cephx_server(rev) for rev in (0, 1)}
            starts = {rev: len(s.log()) for rev, s in servers.items()}
            env = dict(os.environ, CEPH_ARGS="")
            keyring = cephlab.release_copy(cls.release, server_keyring())
            procs = {(mode, rev): subprocess.Popen(cls._argv(servers[rev], keyring, mode), env=env,
                                                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                                   stderr=subprocess.PIPE)
                     for mode in ("crc", "secure") for rev in (0, 1)}
            runs = {}
            for cell, proc in procs.items():
                out, err = proc.communicate(timeout=60)
                runs[cell] = (proc.returncode, err.decode("utf-8", "replace"))
            cls._runs = (runs, servers, starts)
        return cls._runs

    def _check(self, mode, rev):
        runs, servers, starts = self._cells()
        returncode, stderr = runs[mode, rev]
        ready = ceph_ready(stderr)
        self.assertTrue(ready, "no READY line in the ceph client's log:\n" + stderr[-3000:])
        self.assertEqual(set(ready), {(mode, rev)})
        # our server is no real monitor: the CLI gives up after it
        self.assertNotEqual(returncode, 0)
        log = wait_for_log(servers[rev], starts[rev], lambda text: subscribed_entities(text, mode, rev))
        assert_decoded_subscribe(self, log, mode, rev)
        # no key material in our log
        key = Keyring.load(server_keyring()).get(ADMIN)
        self.assertNotIn(key.to_base64(), log)
        self.assertNotIn(key.secret_bytes.hex(), log)

    def test_ceph_cli_cephx_crc_rev1(self):
        self._check("crc", 1)

    def test_ceph_cli_cephx_crc_rev0(self):
        self._check("crc", 0)

    def test_ceph_cli_cephx_secure_rev1(self):
        self._check("secure", 1)

    def test_ceph_cli_cephx_secure_rev0(self):
        self._check("secure", 0)

    def test_ceph_cli_wrong_key_refused(self):
        self._cells()  # not while the parallel runs are going
        d = cephlab.release_tmpdir(self.release, prefix="msgr2tx-cephx-")
        self.addCleanup(cephlab.remove_release_tmpdir, d)
        other = os.path.join(d, "other")
        ring = Keyring()
        ring.add(ADMIN, CryptoKey.generate())
        ring.save(other)
        server = cephx_server(1)
        start = len(server.log())
        proc = subprocess.run(self._argv(server, other, "secure"), capture_output=True, timeout=60,
                              env=dict(os.environ, CEPH_ARGS=""))
        self.assertNotEqual(proc.returncode, 0)
        self.assertFalse(ceph_ready(proc.stderr.decode("utf-8", "replace")))
        log = wait_for_log(server, start, lambda text: "failed the challenge" in text)
        self.assertIn("client.admin failed the challenge", log)
        self.assertNotIn("inspect: READY", log)
        self.assertNotIn("Traceback", log)


cephlab.release_variants(globals(), CephCliCephxToOurServerTests)


class OurAuthorizerToCephOsdTests(TestCase):
    """Tickets from ceph-mon, presented as an authorizer to a real ceph-osd (always challenged)."""

    release = cephlab.DEFAULT_RELEASE
    timeout = 180

    def setUp(self):
        self.mon = cephlab.shared_monitor(auth="cephx", osds=1, release=self.release)
        self.osd = self.mon.osds[0]

    @defer.inlineCallbacks
    def _osd(self, config):
        handler = CephxAuthProvider().clientHandler("keyring=%s" % self.mon.keyring)
        self.assertIsNone(handler.tickets.get(EntityType.OSD))
        p = yield connect(reactor, self.mon.addr, [handler], config, receiver=MonClient(), timeout=10)
        self.addCleanup(p.transport.loseConnection)
        # the OSD ticket came with the monitor's AUTH_DONE
        ticket = handler.tickets.get(EntityType.OSD)
        self.assertIsNotNone(ticket)
        self.assertTrue(ticket.blob.blob)
        osd_handler = handler.spawn()
        p2 = yield connect(reactor, self.osd.addr, [osd_handler], config, timeout=10)
        self.addCleanup(p2.transport.loseConnection)
        mode = ConnectionMode(config.modes[0]).name.lower()
        self.assertEqual(str(p2.info.peer_name), "osd.0")
        self.assertEqual(p2.info.mode_name, mode)
        self.assertEqual(p2.info.rev1, config.revision1)
        self.assertEqual(p2.info.global_id, p.info.global_id)
        # the AUTH_SIGNATUREs verified under the OSD ticket's session key
        self.assertIs(handler.tickets.get(EntityType.OSD), ticket)
        self.assertEqual(p2.conn._session_key, ticket.session_key.secret_bytes)
        if mode == "secure":
            self.assertIsNotNone(p2.conn.reader.cipher)
            self.assertIsNotNone(p2.conn.writer.cipher)
        # and the OSD answers on the READY connection
        rtt = yield p2.keepalive()
        self.assertGreaterEqual(rtt, 0)

    def test_osd_crc_rev1(self):
        return self._osd(CRC)

    def test_osd_crc_rev0(self):
        return self._osd(CRC_REV0)

    def test_osd_secure_rev1(self):
        return self._osd(SECURE)

    def test_osd_secure_rev0(self):
        return self._osd(SECURE_REV0)

    def _cli_ping(self, mode, rev):
        proc = subprocess.run(
            [tool("msgr2tx"), "ping", self.osd.addr, "--auth", "cephx", "--keyring", self.mon.keyring,
             "--mon", self.mon.addr, "--mode", mode, "--rev", rev, "--count", "2", "--json", "--timeout", "20"],
            capture_output=True, timeout=40)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        result = json.loads(proc.stdout)
        self.assertEqual(result["peer"], "osd.0")
        self.assertEqual(result["mode"], mode)
        self.assertEqual(result["revision"], int(rev))
        self.assertEqual(len(result["rtt_ms"]), 2)

    def test_cli_ping_osd_secure(self):
        self._cli_ping("secure", "1")

    def test_cli_ping_osd_secure_rev0(self):
        self._cli_ping("secure", "0")

    def test_cli_ping_osd_crc(self):
        self._cli_ping("crc", "1")


cephlab.release_variants(globals(), OurAuthorizerToCephOsdTests)
