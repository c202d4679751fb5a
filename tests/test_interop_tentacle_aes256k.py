"""
cephx aes256k against real Ceph 20.2.4 (Tentacle), a cluster made with its
defaults: every key (``mon.``, ``client.admin``, ``osd.0``, ``mgr.*``) and
every rotating service secret is of type 2, and the monmap allows only
aes256k (``auth_allowed_ciphers aes256k``).

- our client -> the monitor (crc/secure x rev0/rev1): tickets with aes256k
  session keys, ``version`` as the CLI prints it, the monmap's cipher
  policy, a reconnect that reclaims its global_id with the encrypted ticket,
  ticket renewal; then our authorizer -> the memstore OSD;
- the monitor's cipher policy: an imported aes key is refused and we say
  why in words; once ``auth_allowed_ciphers aes,aes256k`` allows it, the
  monitor hands that client aes session keys for every service;
- our manager (MgrRegistration, ``mgr.y`` with an aes256k key) reads the
  type-2 rotating secrets, becomes available and answers Tentacle's CLI
  through aes256k authorizers, in crc and secure; ``twistd msgr2 --mon
  --entity mgr.x`` does the same and Tentacle's monitor and OSD connect to
  it;
- keyrings: Tentacle's ceph-authtool and msgr2tx read each other's, key
  type by key type;
- Tentacle's ceph CLI and librados (inside the chroot) -> our authority
  (``twistd msgr2 --auth cephx --keyring K`` with an aes256k keyring).

The Tentacle chroot comes from tests/cephlab.py (built on first use as
root; without it the tests skip, in CI they fail).
"""

import atexit
import base64
import json
import os
import re
import struct
import subprocess
import threading
import time

from twisted.internet import defer, reactor, task, utils
from twisted.trial.unittest import TestCase

from msgr2tx.auth import cephx_proto as P
from msgr2tx.auth.cephx import CephxAuthProvider, CephxClientHandler, CephxKeyServer
from msgr2tx.auth.keyring import Keyring
from msgr2tx.client import connect
from msgr2tx.core.config import ConnectionConfig
from msgr2tx.core.constants import ConnectionMode
from msgr2tx.core.encoding import EntityName, EntityType, entity_addr_t, entity_addrvec_t
from msgr2tx.errors import AuthBadMethod
from msgr2tx.factory import Msgr2ServerFactory
from msgr2tx.clients.mgr import MgrRegistration
from msgr2tx.clients.monclient import MonClient
from tests import cephlab
from tests.test_interop_cephx import ceph_ready, subscribed_entities, wait_for_log
from tests.test_interop_mgr import _Answerer, ceph_mgr_ready
from tests.test_interop_pacific import TwistdServer, tool

RELEASE = "tentacle"
ADMIN = EntityName.parse("client.admin")
LEGACY = EntityName.parse("client.legacy")

CONFIGS = {
    (mode, rev): ConnectionConfig(modes=(ConnectionMode.parse(mode),), revision1=rev == 1)
    for mode in ("crc", "secure") for rev in (0, 1)
}


def key_blob(text):
    """The raw CryptoKey bytes of a base64 keyring key."""
    return base64.b64decode(text)


def assert_type_two(test, key):
    """C{key} (a CryptoKey) is aes256k and encodes as 02 00, 8 bytes of time, 20 00, 32 bytes."""
    test.assertEqual(key.type, P.CRYPTO_AES256KRB5)
    raw = key.to_bytes()
    test.assertEqual(len(raw), 2 + 8 + 2 + 32)
    test.assertEqual(raw[:2], b"\x02\x00")
    test.assertEqual(raw[10:12], b"\x20\x00")


class RecordingClientHandler(CephxClientHandler):
    """A cephx client that keeps the AUTH_DONE payloads it was given."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.done_payloads = []

    def handle_done(self, global_id, con_mode, payload):
        self.done_payloads.append(bytes(payload))
        return super().handle_done(global_id, con_mode, payload)


def first_service_ticket_size(payload):
    """
    The length of the first encrypted CephXServiceTicket in a monitor's
    AUTH_DONE payload: u16 request type, i32 status, u8 1, u32 count, u32
    service id, u8 1, then the ciphertext as a bufferlist.
    """
    request_type, status, v, count, service_id, tv, size = struct.unpack_from("<HiBIIBI", payload)
    assert (request_type, status, v, tv) == (P.CEPHX_GET_AUTH_SESSION_KEY, 0, 1, 1)
    assert service_id == EntityType.AUTH
    return size


# ---------------------------------------------------------------------------
# one default-Tentacle cluster (monitor + memstore OSD) per test process

_clusters = {}
_lock = threading.Lock()


def tentacle_cluster(name="defaults"):
    """
    A Tentacle monitor with aes256k keys and service secrets (cephlab's
    key_type="aes256k") whose monmap then allows only aes256k, as a fresh
    Tentacle cluster does; plus one memstore OSD.  Shared per C{name}.
    """
    with _lock:
        mon = _clusters.get(name)
        if mon is None or not mon.running:
            mon = cephlab.CephMonitor(auth="cephx", release=RELEASE, key_type="aes256k").start()
            _clusters[name] = mon
            mon.ceph_checked("mon", "set", "auth_allowed_ciphers", "aes256k")
            mon.add_osd()
        return mon


def _cleanup():
    for mon in _clusters.values():
        mon.stop()
    _clusters.clear()


atexit.register(_cleanup)


class OurClientToTentacleTests(TestCase):
    """Our cephx client with an aes256k key against Tentacle's monitor and OSD."""

    timeout = 180

    def setUp(self):
        self.mon = tentacle_cluster()
        self.osd = self.mon.osds[0]

    def test_cluster_is_aes256k_everywhere(self):
        ring = Keyring.load(self.mon.keyring)
        for name in ("mon.", "client.admin"):
            assert_type_two(self, ring.get(name))
        osd_key = self.mon.ceph_checked("auth", "print-key", "osd.0").stdout.decode().strip()
        assert_type_two(self, P.CryptoKey.from_base64(osd_key))
        self.assertEqual(key_blob(osd_key)[:2], b"\x02\x00")
        dump = self.mon.ceph_json("mon", "dump")
        self.assertEqual(dump["auth_allowed_ciphers"], [{"name": "aes256k", "value": 2}])
        self.assertEqual(dump["auth_service_cipher"], {"name": "aes256k", "value": 2})
        self.assertEqual(dump["auth_preferred_cipher"], {"name": "aes256k", "value": 2})

    @defer.inlineCallbacks
    def _session(self, config, handler=None):
        if handler is None:
            handler = RecordingClientHandler(ADMIN, Keyring.load(self.mon.keyring).get(ADMIN))
        monclient = MonClient(auth_handler=handler)
        p = yield connect(reactor, self.mon.addr, [handler], config, receiver=monclient, timeout=15)
        self.addCleanup(p.transport.loseConnection)
        self.assertEqual(str(p.info.peer_name), "mon.0")
        self.assertEqual(p.info.rev1, config.revision1)
        self.assertEqual(p.info.con_mode, config.modes[0])
        return p, monclient, handler

    @defer.inlineCallbacks
    def _mon_and_osd(self, mode, rev):
        config = CONFIGS[mode, rev]
        p, monclient, handler = yield self._session(config)
        # every session key the monitor handed us is aes256k, 32 bytes
        for service in (EntityType.AUTH, EntityType.MON, EntityType.OSD, EntityType.MGR):
            ticket = handler.tickets.get(service)
            self.assertIsNotNone(ticket, EntityType.name(service))
            self.assertEqual(ticket.session_key.type, P.CRYPTO_AES256KRB5, EntityType.name(service))
            self.assertEqual(len(ticket.session_key), 32)
        # on the wire: CephXServiceTicket (u8 1, CryptoKey of 2+8+2+32 bytes,
        # utime_t validity) in the envelope (9 bytes), plus the confounder
        # and the tag (40 bytes)
        self.assertEqual(first_service_ticket_size(handler.done_payloads[0]), 9 + 1 + 44 + 8 + 40)
        # the AUTH_SIGNATUREs verified under the 32-byte AUTH session key
        self.assertEqual(p.conn._session_key, handler.tickets.get(EntityType.AUTH).session_key.secret_bytes)
        result, _, output = yield monclient.command({"prefix": "version"})
        self.assertEqual(result, 0)
        cli = self.mon.ceph("version")
        self.assertEqual(output.decode(), cli.stdout.decode())
        self.assertIn("20.2.", output.decode())
        # the monmap we decoded carries the cipher policy
        monmap = yield monclient.whenMonmap()
        self.assertEqual((monmap.auth_service_cipher, monmap.auth_allowed_ciphers, monmap.auth_preferred_cipher),
                         (P.CRYPTO_AES256KRB5, [P.CRYPTO_AES256KRB5], P.CRYPTO_AES256KRB5))
        # an authorizer with the aes256k OSD ticket, always challenged by the OSD
        p2 = yield connect(reactor, self.osd.addr, [handler.spawn()], config, timeout=15)
        self.addCleanup(p2.transport.loseConnection)
        self.assertEqual(str(p2.info.peer_name), "osd.0")
        self.assertEqual(p2.info.con_mode, config.modes[0])
        self.assertEqual(p2.conn._session_key, handler.tickets.get(EntityType.OSD).session_key.secret_bytes)
        rtt = yield p2.keepalive()
        self.assertGreaterEqual(rtt, 0)

    def test_crc_rev1(self):
        return self._mon_and_osd("crc", 1)

    def test_crc_rev0(self):
        return self._mon_and_osd("crc", 0)

    def test_secure_rev1(self):
        return self._mon_and_osd("secure", 1)

    def test_secure_rev0(self):
        return self._mon_and_osd("secure", 0)

    @defer.inlineCallbacks
    def test_reclaim_and_renewal(self):
        config = CONFIGS["secure", 1]
        p, monclient, handler = yield self._session(config)
        first = p.info.global_id
        old = {s: handler.tickets.get(s) for s in (EntityType.OSD, EntityType.MGR)}
        # CEPHX_GET_PRINCIPAL_SESSION_KEY under the aes256k AUTH session key
        mask = yield monclient.renew_tickets(EntityType.OSD | EntityType.MGR)
        self.assertEqual(mask, EntityType.OSD | EntityType.MGR)
        for service, ticket in old.items():
            new = handler.tickets.get(service)
            self.assertNotEqual(new.session_key, ticket.session_key)
            self.assertEqual(new.session_key.type, P.CRYPTO_AES256KRB5)
        p.transport.loseConnection()
        # the monitor encrypts the new AUTH ticket under the old aes256k session key
        p2, monclient2, _ = yield self._session(config, handler.spawn())
        self.assertEqual(p2.info.global_id, first)
        result, _, _ = yield monclient2.command({"prefix": "version"})
        self.assertEqual(result, 0)
        health = self.mon.ceph("health", "detail", "--format", "json")
        self.assertNotIn(b"AUTH_INSECURE_GLOBAL_ID_RECLAIM", health.stdout)

    def test_cli_ping_osd(self):
        """``msgr2tx ping OSD --mon MON`` with Tentacle's aes256k keyring, as a user would run it."""
        for mode, rev in (("secure", "1"), ("crc", "0")):
            proc = subprocess.run(
                [tool("msgr2tx"), "ping", self.osd.addr, "--auth", "cephx", "--keyring", self.mon.keyring,
                 "--mon", self.mon.addr, "--mode", mode, "--rev", rev, "--count", "2", "--json", "--timeout", "20"],
                capture_output=True, timeout=40)
            self.assertEqual(proc.returncode, 0, proc.stderr)
            result = json.loads(proc.stdout)
            self.assertEqual((result["peer"], result["mode"], result["revision"]), ("osd.0", mode, int(rev)))
            self.assertEqual(len(result["rtt_ms"]), 2)

    @defer.inlineCallbacks
    def test_wrong_aes256k_key_refused(self):
        handler = CephxClientHandler(ADMIN, P.CryptoKey.generate(type=P.CRYPTO_AES256KRB5))
        d = connect(reactor, self.mon.addr, [handler], CONFIGS["secure", 1], receiver=MonClient(), timeout=15)
        err = yield self.assertFailure(d, AuthBadMethod)
        self.assertEqual(err.result, -13)
        self.assertIn("the key is wrong", str(err))
        self.assertEqual(handler.tickets.tickets, {})


class CipherPolicyTests(TestCase):
    """The monitor's auth_allowed_ciphers, on a monitor of its own (the test changes it)."""

    timeout = 120

    @defer.inlineCallbacks
    def test_aes_key_refused_then_allowed(self):
        mon = tentacle_cluster("policy")
        legacy = EntityName.parse("client.legacy")
        path = os.path.join(mon.dir, "legacy.keyring")
        ring = Keyring()
        ring.add(legacy, P.CryptoKey.generate(), {"mon": "allow r", "osd": "allow r"})
        ring.save(path)
        mon.ceph_checked("auth", "import", "-i", path)
        # the monitor keeps the imported aes key
        printed = mon.ceph_checked("auth", "print-key", "client.legacy").stdout.decode().strip()
        self.assertEqual(key_blob(printed)[:2], b"\x01\x00")

        # knowing nothing of the monitor: the refusal reads as a wrong key
        d = connect(reactor, mon.addr, [CephxClientHandler(legacy, ring.get(legacy))], CONFIGS["secure", 1],
                    receiver=MonClient(), timeout=15)
        err = yield self.assertFailure(d, AuthBadMethod)
        self.assertIn("the key is wrong, or client.legacy does not exist", str(err))
        # a MonClient holding the cluster's monmap (Tentacle, auth_allowed_ciphers aes256k) names the key's type
        admin = MonClient(clock=reactor)
        yield admin.start(reactor, mon.addr, [CephxClientHandler(ADMIN, Keyring.load(mon.keyring).get(ADMIN))],
                          CONFIGS["secure", 1])
        self.addCleanup(admin.stop)
        yield admin.authenticate(timeout=15)
        monmap = yield admin.whenMonmap()
        self.assertGreaterEqual(monmap.min_mon_release, 20)
        self.assertEqual(list(monmap.auth_allowed_ciphers), [P.CRYPTO_AES256KRB5])
        legacy_client = MonClient(clock=reactor)
        legacy_client.monmap = monmap
        yield legacy_client.start(reactor, mon.addr, [CephxClientHandler(legacy, ring.get(legacy))],
                                  CONFIGS["secure", 1])
        self.addCleanup(legacy_client.stop)
        err = yield self.assertFailure(legacy_client.authenticate(timeout=15), AuthBadMethod)
        self.assertEqual(err.result, -13)
        text = str(err)
        self.assertIn("insecure type aes", text)
        self.assertIn("auth_allowed_ciphers", text)
        self.assertIn("give client.legacy an aes256k key", text)
        self.assertNotIn(ring.get(legacy).to_base64(), text)

        mon.ceph_checked("mon", "set", "auth_allowed_ciphers", "aes,aes256k")
        handler = RecordingClientHandler(legacy, ring.get(legacy))
        p = yield connect(reactor, mon.addr, [handler], CONFIGS["secure", 1], receiver=MonClient(), timeout=15)
        self.addCleanup(p.transport.loseConnection)
        # the AUTH session key has the client key's type; service session keys
        # the lower of that and the service secret's (aes256k): aes everywhere
        for service in (EntityType.AUTH, EntityType.MON, EntityType.OSD, EntityType.MGR):
            self.assertEqual(handler.tickets.get(service).session_key.type, P.CRYPTO_AES, EntityType.name(service))
        self.assertEqual(len(p.conn._session_key), 16)
        # AES-128-CBC of the 9 + 1 + (2+8+2+16) + 8 = 46 bytes, padded to 48
        self.assertEqual(first_service_ticket_size(handler.done_payloads[0]), 48)
        # and the aes OSD ticket opens the OSD, whose rotating secrets are aes256k
        p2 = yield connect(reactor, mon.osds[0].addr, [handler.spawn()], CONFIGS["crc", 1], timeout=15)
        self.addCleanup(p2.transport.loseConnection)
        yield p2.keepalive()


class OurManagerTests(TestCase):
    """MgrRegistration with an aes256k key against Tentacle: type-2 rotating secrets, real clients served."""

    timeout = 180

    def setUp(self):
        self.mon = tentacle_cluster()

    @defer.inlineCallbacks
    def test_rotating_secrets_and_clients(self):
        mon = self.mon
        path = os.path.join(mon.dir, "mgr.y.keyring")
        mon.ceph_checked("auth", "get-or-create", "mgr.y", "mon", "allow profile mgr", "osd", "allow *",
                         "-o", path)
        me = EntityName.parse("mgr.y")
        keyring = Keyring.load(path)
        assert_type_two(self, keyring.get(me))
        cephx = CephxAuthProvider()
        key_server = CephxKeyServer(keyring, own_name=me)
        config = ConnectionConfig(entity_type=EntityType.MGR, name=me,
                                  modes=(ConnectionMode.SECURE, ConnectionMode.CRC))
        receiver = _Answerer()
        nonce = 0xae5
        port_number = cephlab.free_port()
        addrs = entity_addrvec_t((entity_addr_t.parse("v2:127.0.0.1:%d/%d" % (port_number, nonce)),))
        registration = MgrRegistration(reactor, mon.addr, [cephx.clientHandler(name=me, keyring=keyring)],
                                       addrs, key_server=key_server, config=config, beacon_interval=0.5)
        server_auth = registration.serverHandler(
            cephx.serverHandler(key_server=key_server, authority=False, service_ids=(EntityType.MGR,)))
        factory = Msgr2ServerFactory([server_auth], receiver, config, nonce=nonce)
        # the monitor and the OSD connect to their manager too: close what they opened
        accepted = []
        build = factory.buildProtocol

        def track(addr):
            accepted.append(build(addr))
            return accepted[-1]

        factory.buildProtocol = track

        def close_accepted():
            for protocol in accepted:
                if protocol.transport is not None:
                    protocol.transport.abortConnection()
            return task.deferLater(reactor, 0.2, lambda: None)

        self.addCleanup(close_accepted)
        port = reactor.listenTCP(port_number, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        registration.startService()
        self.addCleanup(registration.stopService)

        yield registration.whenSecrets()
        secrets = key_server.rotating_secrets(EntityType.MGR)
        self.assertTrue(secrets.secrets)
        for key in secrets.keys().values():
            assert_type_two(self, key)
        mgrmap = yield registration.whenAvailable()
        self.assertEqual(mgrmap.active_name, "y")

        for mode in ("crc", "secure"):
            before = len(receiver.commands)
            argv = mon.ceph_argv("--debug_ms", "1", "--ms_mon_client_mode", mode, "--ms_client_mode", mode,
                                 "pg", "stat")
            out, err, code = yield utils.getProcessOutputAndValue(argv[0], argv[1:], env=cephlab._clean_env())
            err = err.decode("utf-8", "replace")
            self.assertEqual(code, 0, err[-3000:])
            self.assertEqual(out, b"answered in-process\n")
            self.assertEqual(set(ceph_mgr_ready(err)), {(mode, 1)})
            self.assertEqual(len(receiver.commands), before + 1)
            self.assertIn("pg stat", receiver.commands[-1][1][0])

        # our own client, with the MGR ticket the Tentacle monitor issued, to our manager
        handler = CephxClientHandler(ADMIN, Keyring.load(mon.keyring).get(ADMIN))
        p = yield connect(reactor, mon.addr, [handler], CONFIGS["secure", 1], receiver=MonClient(), timeout=15)
        self.addCleanup(p.transport.loseConnection)
        ticket = handler.tickets.get(EntityType.MGR)
        self.assertEqual(ticket.session_key.type, P.CRYPTO_AES256KRB5)
        self.assertIn(ticket.blob.secret_id, key_server.rotating_secrets(EntityType.MGR).secrets)
        for mode in ("crc", "secure"):
            p2 = yield connect(reactor, "v2:127.0.0.1:%d/%d" % (port_number, nonce), [handler.spawn()],
                               CONFIGS[mode, 1], timeout=15)
            self.addCleanup(p2.transport.loseConnection)
            self.assertEqual(p2.info.peer_name.type, EntityType.MGR)
            self.assertEqual(p2.info.mode_name, mode)
            self.assertEqual(p2.conn._session_key, ticket.session_key.secret_bytes)


LIBRADOS_SCRIPT = r"""
import sys
import rados

addr, keyring, mode = sys.argv[1], sys.argv[2], sys.argv[3]
cluster = rados.Rados(conffile="/dev/null", name="client.admin", conf={
    "mon_host": addr, "keyring": keyring, "auth_client_required": "cephx", "ms_mon_client_mode": mode,
    "debug_ms": "1", "client_mount_timeout": "20", "log_to_stderr": "true", "err_to_stderr": "true",
    "log_file": ""})
cluster.connect(timeout=20)
"""


class TentacleClientsToOurAuthorityTests(TestCase):
    """Tentacle's ceph CLI and librados authenticate with aes256k keys against our authority."""

    timeout = 180
    _servers = {}

    def setUp(self):
        cephlab.ensure_release(RELEASE)
        cls = type(self)
        if "dir" not in cls._servers:
            d = cephlab.release_tmpdir(RELEASE, prefix="msgr2tx-aes256k-")
            # what our authority knows: client.admin (aes256k) and client.legacy (aes)
            ring = Keyring()
            ring.add(ADMIN, P.CryptoKey.generate(type=P.CRYPTO_AES256KRB5), {"mon": "allow *"})
            ring.add(LEGACY, P.CryptoKey.generate(), {"mon": "allow *"})
            ring.save(os.path.join(d, "server.keyring"))
            # what each client holds
            for name in (ADMIN, LEGACY):
                mine = Keyring()
                mine.add(name, ring.get(name))
                mine.save(os.path.join(d, "%s.keyring" % name))
            cls._servers["dir"] = d
        self.server_keyring = os.path.join(cls._servers["dir"], "server.keyring")
        self.keyring = os.path.join(cls._servers["dir"], "client.admin.keyring")

    def server(self, rev):
        server = self._servers.get(rev)
        if server is None or server.proc.poll() is not None:
            server = self._servers[rev] = TwistdServer(
                "--auth", "cephx:allowed_ciphers=aes256k", "--keyring", self.server_keyring, "--mode", "secure,crc",
                "--service", "inspect", "--rev", str(rev)).start()
            atexit.register(server.stop)
        return server

    def _run_until_subscribed(self, argv, server, mode, rev):
        """
        Run a Tentacle client until our server decoded its MMonSubscribe and
        its own log shows READY; then stop it (our server is no real
        monitor, so it would only retry).  Returns (its log, our log).
        """
        start = len(server.log())
        err_path = os.path.join(self._servers["dir"], "client-%s-%d.log" % (mode, rev))
        with open(err_path, "wb") as err:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                    env=cephlab._clean_env())
        try:
            log = wait_for_log(server, start, lambda text: subscribed_entities(text, mode, rev), timeout=20)

            def stderr():
                with open(err_path, "rb") as f:
                    return f.read().decode("utf-8", "replace")
            deadline = time.monotonic() + 10
            while not ceph_ready(stderr()) and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            proc.kill()
            proc.wait(10)
        return stderr(), log

    def _check(self, stderr, log, mode, rev):
        ready = ceph_ready(stderr)
        self.assertTrue(ready, "no READY in the Tentacle client's log:\n" + stderr[-3000:])
        self.assertEqual(set(ready), {(mode, rev)})
        self.assertTrue(subscribed_entities(log, mode, rev), log[-3000:])
        self.assertNotIn("Traceback", log)
        key = Keyring.load(self.keyring).get(ADMIN)
        self.assertNotIn(key.to_base64(), log)
        self.assertNotIn(key.secret_bytes.hex(), log)

    def _cli(self, mode, rev):
        server = self.server(rev)
        argv = cephlab.release_argv(RELEASE) + [
            "ceph", "-c", "/dev/null", "-m", server.addr, "-n", "client.admin", "--keyring", self.keyring,
            "--auth_client_required", "cephx", "--debug_ms", "1", "--ms_mon_client_mode", mode,
            "--client_mount_timeout", "10", "--connect-timeout", "10", "status"]
        self._check(*self._run_until_subscribed(argv, server, mode, rev), mode, rev)

    def test_ceph_cli_crc_rev1(self):
        self._cli("crc", 1)

    def test_ceph_cli_secure_rev1(self):
        self._cli("secure", 1)

    def test_ceph_cli_crc_rev0(self):
        self._cli("crc", 0)

    def test_ceph_cli_secure_rev0(self):
        self._cli("secure", 0)

    def _librados(self, mode, rev):
        server = self.server(rev)
        argv = cephlab.librados_argv(RELEASE) + ["-c", LIBRADOS_SCRIPT, server.addr, self.keyring, mode]
        self._check(*self._run_until_subscribed(argv, server, mode, rev), mode, rev)

    def test_librados_secure_rev1(self):
        self._librados("secure", 1)

    def test_librados_crc_rev0(self):
        self._librados("crc", 0)

    def test_aes_key_refused_by_our_policy(self):
        """client.legacy's key in our keyring is aes; our authority allows only aes256k."""
        server = self.server(1)
        start = len(server.log())
        legacy = os.path.join(self._servers["dir"], "client.legacy.keyring")
        argv = cephlab.release_argv(RELEASE) + [
            "ceph", "-c", "/dev/null", "-m", server.addr, "-n", "client.legacy", "--keyring", legacy,
            "--auth_client_required", "cephx", "--debug_ms", "1", "--client_mount_timeout", "2",
            "--connect-timeout", "3", "status"]
        proc = subprocess.run(argv, capture_output=True, timeout=60, env=cephlab._clean_env())
        self.assertNotEqual(proc.returncode, 0)
        self.assertFalse(ceph_ready(proc.stderr.decode("utf-8", "replace")))
        log = wait_for_log(server, start, lambda text: "auth_allowed_ciphers" in text)
        self.assertIn("client.legacy's key is of type aes, which auth_allowed_ciphers (aes256k) does not allow",
                      log)
        self.assertNotIn("inspect: READY", log)


class TentacleAuthtoolTests(TestCase):
    """Keyrings: what Tentacle's ceph-authtool writes we read, and the other way round, type by type."""

    timeout = 60

    def test_keyrings_both_ways(self):
        cephlab.ensure_release(RELEASE)
        d = cephlab.release_tmpdir(RELEASE, prefix="msgr2tx-authtool-")
        self.addCleanup(cephlab.remove_release_tmpdir, d)
        theirs = os.path.join(d, "theirs")
        tool = cephlab.release_argv(RELEASE) + ["ceph-authtool"]
        subprocess.run(tool + ["--create-keyring", theirs, "--gen-key", "-n", "client.new", "--cap", "mon", "allow r"],
                       check=True, capture_output=True, timeout=30)
        subprocess.run(tool + [theirs, "--gen-key", "--key-type", "aes", "-n", "client.old"],
                       check=True, capture_output=True, timeout=30)
        ring = Keyring.load(theirs)
        # Tentacle's default key type is aes256k; --key-type aes still makes type 1
        assert_type_two(self, ring.get("client.new"))
        self.assertEqual((ring.get("client.old").type, len(ring.get("client.old"))), (P.CRYPTO_AES, 16))
        self.assertEqual(ring.caps("client.new"), {"mon": "allow r"})

        ours = os.path.join(d, "ours")
        mine = Keyring()
        mine.add("client.a", P.CryptoKey.generate(type=P.CRYPTO_AES256KRB5), {"mon": "allow *"})
        mine.add("client.b", P.CryptoKey.generate())
        mine.save(ours)
        for name in ("client.a", "client.b"):
            p = subprocess.run(tool + ["-p", "-n", name, ours], capture_output=True, timeout=30)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(p.stdout.decode().strip(), mine.get(name).to_base64())


class TwistdManagerTests(TestCase):
    """``twistd msgr2 --mon MON --entity mgr.x`` with an aes256k key, on a Tentacle cluster of its own."""

    timeout = 120

    def test_registers_and_daemons_connect(self):
        mon = tentacle_cluster("twistd-manager")
        path = os.path.join(mon.dir, "mgr.x.keyring")
        mon.ceph_checked("auth", "get-or-create", "mgr.x", "mon", "allow profile mgr", "-o", path)
        assert_type_two(self, Keyring.load(path).get(EntityName.parse("mgr.x")))
        server = TwistdServer("--entity", "mgr.x", "--mon", mon.addr, "--auth", "cephx", "--keyring", path,
                              "--mode", "secure,crc", "--service", "inspect").start()
        self.addCleanup(server.stop)
        deadline = time.monotonic() + 40
        dump = {}
        while time.monotonic() < deadline:
            dump = mon.ceph_json("mgr", "dump")
            if dump.get("available") and dump.get("active_name") == "x":
                break
            time.sleep(0.5)
        self.assertTrue(dump.get("available"), server.log()[-3000:])
        # the monitor and the OSD open connections to their manager with
        # authorizers from aes256k tickets, which our type-2 rotating secrets open
        log = wait_for_log(server, 0, lambda text: re.search(r"READY: entity=osd\.0 ", text)
                           and re.search(r"READY: entity=mon\.0 ", text), timeout=20)
        self.assertRegex(log, r"mgr: installed \d+ rotating mgr secrets")
        self.assertRegex(log, r"server connection to \S+ READY: entity=mon\.0 mode=secure")
        self.assertRegex(log, r"server connection to \S+ READY: entity=osd\.0 mode=secure")
        self.assertNotIn("Traceback", log)
        self.assertNotIn(Keyring.load(path).get(EntityName.parse("mgr.x")).to_base64(), log)
