"""
The cephx *service* role against real Ceph clients, on 16.2 (the classes
named here) and on 18.2 and 20.2 (their ``...ReefTests`` and
``...TentacleTests`` variants, see tests/cephlab.py): ``twistd msgr2
--entity mgr.x --mon MON`` registers with a real ceph-mon as the cluster's
manager (rotating MGR secrets over MAuth, MMgrBeacon), so that the ceph CLI
and librados find it in the mgrmap and connect with authorizers built from
the monitor's MGR tickets.  crc and secure, msgr2.0 (our ``--rev 0``) and
msgr2.1.  One monitor and one manager per release and revision: a cluster
has one active manager.  The monitor's own MgrClient opens a session with
our manager (MMgrOpen) and gets a manager's answer (MMgrConfigure).

Without Ceph and without root the tests skip; in CI a missing Ceph is a failure.
"""

import atexit
import base64
import errno
import json
import os
import re
import subprocess
import sys
import threading
import time

from twisted.internet import defer, task, utils
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import TestCase
from zope.interface import implementer

from msgr2tx.auth import cephx_proto as P
from msgr2tx.auth.cephx import CephxAuthProvider, CephxKeyServer
from msgr2tx.auth.keyring import Keyring
from msgr2tx.core.config import ConnectionConfig
from msgr2tx.core.constants import ConnectionMode
from msgr2tx.core.encoding import EntityName, EntityType, entity_addr_t, entity_addrvec_t
from msgr2tx.messages import MMgrCommand, MMgrCommandReply, MMgrOpen, MMgrReport
from msgr2tx.factory import Msgr2ServerFactory
from msgr2tx.interfaces import IMsgr2Receiver
from msgr2tx.clients.mgr import DaemonSessions, MgrRegistration
from tests import cephlab
from tests.test_interop_cephx import our_ready_entities, wait_for_log
from tests.test_interop_pacific import TwistdServer

MGR = EntityName.parse("mgr.x")

#: a READY line of a Ceph client's ``--debug_ms 1`` log towards a manager: (mode, rev1)
CEPH_MGR_READY_RE = re.compile(
    r"conn\(.* (crc|secure) :-?\d+ s=READY .*rev1=(\d).*\)\.ready entity=mgr\.")


def ceph_mgr_ready(stderr):
    return [(mode, int(rev)) for mode, rev in CEPH_MGR_READY_RE.findall(stderr)]


def decoded_command(log, entity, prefix):
    return re.search(r"inspect: message from %s: MMgrCommand\(.*%s" % (re.escape(entity), re.escape(prefix)), log)


def commanded_entities(log, mode, rev, prefix):
    """Clients READY in C{mode}/C{rev} whose MMgrCommand C{prefix} we decoded."""
    return [e for e in our_ready_entities(log, mode, rev) if decoded_command(log, e, prefix)]


LIBRADOS_MGR_SCRIPT = r"""
import json, os, sys
import rados

conf, keyring, mode = sys.argv[1], sys.argv[2], sys.argv[3]
cluster = rados.Rados(conffile=conf, name="client.admin", conf={
    "keyring": keyring, "ms_mon_client_mode": mode, "ms_client_mode": mode, "debug_ms": "1",
    "rados_mon_op_timeout": "4", "log_to_stderr": "true", "err_to_stderr": "true", "log_file": ""})
cluster.connect()
ret, out, status = cluster.mgr_command(json.dumps({"prefix": "df", "format": "json"}), b"")
sys.stdout.write("%d\n" % ret)
sys.stdout.flush()
sys.stderr.flush()
os._exit(0)
"""


class _Cluster:
    """A cephx monitor of one release and our manager registered with it, for one revision."""

    def __init__(self, rev, release=cephlab.DEFAULT_RELEASE):
        self.rev = rev
        self.release = release
        self.mon = cephlab.CephMonitor(auth="cephx", release=release).start()
        self.keyring = os.path.join(self.mon.dir, "mgr.x.keyring")
        self.mon.ceph_checked("auth", "get-or-create", "mgr.x", "mon", "allow profile mgr", "-o", self.keyring)
        self.server = TwistdServer("--entity", "mgr.x", "--mon", self.mon.addr, "--auth", "cephx",
                                   "--keyring", self.keyring, "--mode", "secure,crc", "--service", "inspect",
                                   "--rev", str(rev)).start()
        self.mgrmap = self._wait_available()

    def _wait_available(self, timeout=40.0):
        deadline = time.monotonic() + timeout
        dump = None
        while time.monotonic() < deadline:
            dump = self.mon.ceph_json("mgr", "dump")
            if dump.get("available") and dump.get("active_name") == "x":
                return dump
            time.sleep(0.5)
        raise AssertionError("our manager never became available: %s\n%s" % (dump, self.server.log()[-3000:]))

    def ceph_argv(self, mode, *args):
        # Pacific's clients take the modes for a manager from
        # ms_mon_client_mode, as for a monitor; ms_client_mode is set too
        return self.mon.ceph_argv("--debug_ms", "1", "--ms_mon_client_mode", mode, "--ms_client_mode", mode,
                                  *args)

    def stop(self):
        self.server.stop()
        self.mon.stop()


_clusters = {}
_clusters_lock = threading.Lock()


def cluster(rev, release=cephlab.DEFAULT_RELEASE):
    with _clusters_lock:
        c = _clusters.get((rev, release))
        if c is None:
            c = _clusters[rev, release] = _Cluster(rev, release)
        return c


def _cleanup():
    for c in _clusters.values():
        c.stop()
    _clusters.clear()


atexit.register(_cleanup)


class RealClientsToOurManagerTests(TestCase):
    """
    The ceph CLI (``ceph pg stat``) and librados (``mgr_command``) reach our
    manager: READY in their own ``--debug_ms 1`` log in the mode and
    revision asked for, and our server decodes the MMgrCommand they send.
    The manager answers nothing (the inspect service), so the CLI is stopped
    once we saw its command and librados times out.
    """

    release = cephlab.DEFAULT_RELEASE
    timeout = 420
    _cli_runs = None

    def setUp(self):
        cephlab.ensure_release(self.release)

    def test_registered_in_the_mgrmap(self):
        c = cluster(1, self.release)
        self.assertEqual(c.mgrmap["active_name"], "x")
        addrs = c.mgrmap["active_addrs"]["addrvec"]
        self.assertEqual([(a["type"], a["addr"]) for a in addrs], [("v2", "127.0.0.1:%d" % c.server.port)])
        self.assertNotEqual(addrs[0]["nonce"], 0)
        log = c.server.log()
        self.assertRegex(log, r"mgr: installed \d+ rotating mgr secrets")
        self.assertRegex(log, r"mgr: mgr\.x registered with monitor mon\.0 as gid %d" % c.mgrmap["active_gid"])
        # the rotating secrets are ours to use, never to print
        key = Keyring.load(c.keyring).get(MGR)
        self.assertNotIn(key.to_base64(), log)
        self.assertNotIn("Traceback", log)

    @classmethod
    def _cli_cells(cls):
        if cls.__dict__.get("_cli_runs") is None:
            clusters = {rev: cluster(rev, cls.release) for rev in (0, 1)}
            starts = {rev: len(c.server.log()) for rev, c in clusters.items()}
            env = cephlab._clean_env()
            procs = {(mode, rev): subprocess.Popen(clusters[rev].ceph_argv(mode, "pg", "stat"), env=env,
                                                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                                   stderr=subprocess.PIPE)
                     for mode in ("crc", "secure") for rev in (0, 1)}
            runs = {}
            for (mode, rev), proc in procs.items():
                c = clusters[rev]
                log = wait_for_log(c.server, starts[rev],
                                   lambda text: commanded_entities(text, mode, rev, "pg stat"),
                                   # the ceph CLI spends seconds of CPU on the command table
                                   # before its first mgr_command; a loaded machine stretches that
                                   timeout=90)
                proc.terminate()
                out, err = proc.communicate(timeout=30)
                runs[mode, rev] = (err.decode("utf-8", "replace"), log)
            cls._cli_runs = runs
        return cls._cli_runs

    def _check_cli(self, mode, rev):
        stderr, log = self._cli_cells()[mode, rev]
        ready = ceph_mgr_ready(stderr)
        self.assertTrue(ready, "the ceph CLI logged no READY to a manager:\n" + stderr[-3000:])
        self.assertEqual(set(ready), {(mode, rev)})
        self.assertIn("mgr_command(tid", stderr)
        entities = commanded_entities(log, mode, rev, "pg stat")
        self.assertTrue(entities, "no decoded MMgrCommand from a %s rev%d client:\n%s" % (mode, rev, log[-3000:]))
        self.assertNotIn("Traceback", log)
        self.assertNotIn("Unhandled Error", log)

    def test_ceph_cli_crc_rev1(self):
        self._check_cli("crc", 1)

    def test_ceph_cli_crc_rev0(self):
        self._check_cli("crc", 0)

    def test_ceph_cli_secure_rev1(self):
        self._check_cli("secure", 1)

    def test_ceph_cli_secure_rev0(self):
        self._check_cli("secure", 0)

    def _check_librados(self, mode, rev):
        c = cluster(rev, self.release)
        start = len(c.server.log())
        proc = subprocess.run(c.mon.librados_argv() + ["-c", LIBRADOS_MGR_SCRIPT, c.mon.conf, c.mon.keyring, mode],
                              env=cephlab._clean_env(), stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=60)
        stderr = proc.stderr.decode("utf-8", "replace")
        self.assertEqual(proc.returncode, 0, stderr[-3000:])
        # the inspect service answers nothing: mgr_command times out
        # (python3-rados returns the errno positive)
        self.assertEqual(abs(int(proc.stdout)), errno.ETIMEDOUT, proc.stdout)
        ready = ceph_mgr_ready(stderr)
        self.assertTrue(ready, "librados logged no READY to a manager:\n" + stderr[-3000:])
        self.assertEqual(set(ready), {(mode, rev)})
        log = wait_for_log(c.server, start, lambda text: commanded_entities(text, mode, rev, '"df"'))
        self.assertTrue(commanded_entities(log, mode, rev, '"df"'),
                        "no decoded MMgrCommand df from librados:\n" + log[-3000:])

    def test_librados_crc_rev1(self):
        self._check_librados("crc", 1)

    def test_librados_secure_rev1(self):
        self._check_librados("secure", 1)

    def test_librados_secure_rev0(self):
        self._check_librados("secure", 0)

    def test_librados_crc_rev0(self):
        self._check_librados("crc", 0)


cephlab.release_variants(globals(), RealClientsToOurManagerTests)


class ManagerSessionTests(TestCase):
    """What the registration keeps up: the monitor's view follows ours."""

    release = cephlab.DEFAULT_RELEASE
    timeout = 120

    def setUp(self):
        cephlab.ensure_release(self.release)

    def test_beacons_keep_us_active(self):
        c = cluster(1, self.release)
        first = c.mon.ceph_json("mgr", "dump")
        # mon_mgr_beacon_grace is 30 s; beacons every 2 s keep the same gid active
        time.sleep(5)
        later = c.mon.ceph_json("mgr", "dump")
        self.assertEqual(later["active_gid"], first["active_gid"])
        self.assertTrue(later["available"])
        metadata = c.mon.ceph_json("mgr", "metadata", "x")
        self.assertTrue(metadata.get("ceph_version", "").startswith("msgr2tx "), metadata)

    def test_mgr_stat_json(self):
        c = cluster(1, self.release)
        stat = json.loads(c.mon.ceph_checked("mgr", "stat", "--format", "json").stdout)
        self.assertEqual(stat["active_name"], "x")
        self.assertTrue(stat["available"])

    def test_monitor_session_configured(self):
        """
        The monitor's MgrClient opens a session with our twistd manager
        (MMgrOpen, decoded), gets our MMgrConfigure and starts reporting
        (MMgrReport) on that same connection.
        """
        for rev in (1, 0):
            c = cluster(rev, self.release)
            log = wait_for_log(c.server, 0, lambda text: re.search(
                r"inspect: message from mon\.0: MMgrReport\(.*daemon_name='a'", text), timeout=30)
            opened = re.findall(r"mgr: mon\.0 opened a session as mon\.a; configured: stats_period=5 "
                                r"stats_threshold=5", log)
            self.assertEqual(len(opened), 1, log[-3000:])
            self.assertRegex(log, r"inspect: message from mon\.0: MMgrOpen\(.*v=3, .*daemon_name='a', "
                                  r"service_name='mon', service_daemon=False, config_bl=<\d+ bytes>")
            self.assertRegex(log, r"inspect: message from mon\.0: MMgrReport\(.*daemon_name='a'")
            # one connection from the monitor, which stays up
            peers = re.findall(r"inspect: READY peer=(\S+) entity=mon\.0 ", log)
            self.assertEqual(len(peers), 1, log[-3000:])
            self.assertNotIn("inspect: connection from %s closed" % peers[0], c.server.log())
            self.assertNotIn("Traceback", log)
            self.assertNotIn("Unhandled Error", log)


cephlab.release_variants(globals(), ManagerSessionTests)


LIBRADOS_COMMANDS_SCRIPT = r"""
import json, os, sys
import rados

conf, keyring = sys.argv[1], sys.argv[2]
cluster = rados.Rados(conffile=conf, name="client.admin", conf={"keyring": keyring, "rados_mon_op_timeout": "10"})
cluster.connect()
out = []
for prefix in ("df", "fail"):
    ret, outbuf, status = cluster.mgr_command(json.dumps({"prefix": prefix, "format": "json"}), b"12345")
    out.append({"ret": ret, "out": outbuf.decode(), "status": status})
sys.stdout.write(json.dumps(out) + "\n")
sys.stdout.flush()
os._exit(0)
"""


class ManagerExampleTests(TestCase):
    """
    examples/manager.py answers real clients: ``ceph pg stat`` prints its
    JSON, librados' ``mgr_command`` gets its output and its error.
    """

    release = cephlab.DEFAULT_RELEASE
    timeout = 120

    def setUp(self):
        cephlab.ensure_release(self.release)
        self.mon = cephlab.CephMonitor(auth="cephx", release=self.release).start()
        self.addCleanup(self.mon.stop)
        keyring = os.path.join(self.mon.dir, "mgr.x.keyring")
        self.mon.ceph_checked("auth", "get-or-create", "mgr.x", "mon", "allow profile mgr", "-o", keyring)
        port = cephlab.free_port()
        example = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "manager.py")
        self.proc = subprocess.Popen([sys.executable, example, "--mon", self.mon.addr, "--keyring", keyring,
                                      "--port", str(port)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.addCleanup(self._stop)
        line = self.proc.stdout.readline()
        if not line:
            self.fail("examples/manager.py printed nothing: %s" % self._stop())
        self.available = json.loads(line)
        self.port = port

    def _stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.stderr.read()

    def test_ceph_pg_stat_answered(self):
        self.assertTrue(self.available["available"])
        self.assertIn("v2:127.0.0.1:%d/" % self.port, self.available["addrs"])
        proc = self.mon.ceph("pg", "stat", timeout=30)
        self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
        answer = json.loads(proc.stdout)
        self.assertEqual(answer["prefix"], "pg stat")
        self.assertTrue(answer["answered_by"].startswith("msgr2tx "))
        self.assertRegex(answer["from"], r"^client\.\d+$")
        printed = json.loads(self.proc.stdout.readline())
        self.assertEqual(printed, {"command": "pg stat", "from": answer["from"], "result": 0})

    def test_librados_output_and_error(self):
        proc = subprocess.run(self.mon.librados_argv() + ["-c", LIBRADOS_COMMANDS_SCRIPT, self.mon.conf,
                                                          self.mon.keyring],
                              env=cephlab._clean_env(), capture_output=True, timeout=60)
        self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
        df, fail = json.loads(proc.stdout)
        self.assertEqual(df["ret"], 0)
        self.assertEqual(json.loads(df["out"])["inbl_bytes"], 5)
        self.assertEqual(abs(fail["ret"]), errno.EINVAL)
        self.assertEqual(fail["status"], "msgr2tx example: asked to fail")
        self.assertEqual(fail["out"], "")


cephlab.release_variants(globals(), ManagerExampleTests)


@implementer(IMsgr2Receiver)
class _Answerer:
    """Answer MMgrCommand with r=0 and the command's prefix."""

    def __init__(self):
        self.commands = []

    def connectionReady(self, protocol, info):
        pass

    def messageReceived(self, protocol, message):
        if isinstance(message, MMgrCommand):
            self.commands.append((str(message.src), message.cmd))
            protocol.sendMessage(MMgrCommandReply(0, "", b"answered in-process\n", tid=message.tid))

    def connectionLost(self, protocol, reason):
        pass


class InProcessRegistrationTests(TestCase):
    """
    MgrRegistration embedded in this process's reactor against a real
    ceph-mon: secrets, availability, a refresh, a real CLI answered, no
    secret in anything logged at debug level or in a repr, and a monitor
    restart survived.
    """

    timeout = 120

    def _manager(self, rotating_refresh=600.0):
        from twisted.internet import reactor

        cephlab.ensure_ceph()
        self.mon = mon = cephlab.CephMonitor(auth="cephx").start()
        self.addCleanup(mon.stop)
        path = os.path.join(mon.dir, "mgr.y.keyring")
        mon.ceph_checked("auth", "get-or-create", "mgr.y", "mon", "allow profile mgr", "-o", path)
        me = EntityName.parse("mgr.y")
        self.keyring = keyring = Keyring.load(path)
        cephx = CephxAuthProvider()
        self.key_server = key_server = CephxKeyServer(keyring, own_name=me)
        config = ConnectionConfig(entity_type=EntityType.MGR, name=me,
                                  modes=(ConnectionMode.SECURE, ConnectionMode.CRC))
        self.receiver = _Answerer()
        nonce = 0x5eed
        port_number = cephlab.free_port()
        self.addrs = entity_addrvec_t((entity_addr_t.parse("v2:127.0.0.1:%d/%d" % (port_number, nonce)),))
        self.events = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)
        registration = MgrRegistration(reactor, mon.addr, [cephx.clientHandler(name=me, keyring=keyring)],
                                       self.addrs, key_server=key_server, config=config,
                                       beacon_interval=0.5, rotating_refresh=rotating_refresh)
        self.server_auth = registration.serverHandler(
            cephx.serverHandler(key_server=key_server, authority=False, service_ids=(EntityType.MGR,)))
        factory = Msgr2ServerFactory([self.server_auth], self.receiver, config, nonce=nonce)
        port = reactor.listenTCP(port_number, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        registration.startService()
        self.addCleanup(registration.stopService)
        return registration

    def _ceph(self, *args):
        return utils.getProcessOutputAndValue("ceph", self.mon.ceph_argv(*args)[1:], env=cephlab._clean_env())

    @defer.inlineCallbacks
    def _answered(self):
        """A real client with a monitor-issued MGR ticket gets our answer."""
        before = len(self.receiver.commands)
        out, err, code = yield self._ceph("pg", "stat")
        self.assertEqual(code, 0, err)
        self.assertEqual(out, b"answered in-process\n")
        self.assertEqual(len(self.receiver.commands), before + 1)
        self.assertRegex(self.receiver.commands[-1][0], r"^client\.\d+$")

    @defer.inlineCallbacks
    def test_register_refresh_answer_and_keep_secrets(self):
        from twisted.internet import reactor

        registration = self._manager(rotating_refresh=1.0)
        yield registration.whenSecrets()
        mgrmap = yield registration.whenAvailable()
        self.assertEqual(mgrmap.active_gid, registration.gid)
        self.assertEqual(mgrmap.active_name, "y")
        self.assertEqual(mgrmap.active_addrs, self.addrs)
        self.assertTrue(registration.available)

        # the monitor's view, through the real CLI
        out, err, code = yield self._ceph("mgr", "dump", "--format", "json")
        self.assertEqual(code, 0, err)
        dump = json.loads(out)
        self.assertEqual(dump["active_gid"], registration.gid)
        self.assertTrue(dump["available"])

        yield self._answered()

        # the secrets are fetched again on the timer
        fetched = registration.rotating_fetches
        deadline = reactor.seconds() + 10
        while registration.rotating_fetches <= fetched and reactor.seconds() < deadline:
            yield task.deferLater(reactor, 0.2, lambda: None)
        self.assertGreater(registration.rotating_fetches, fetched)

        # nothing logged (debug included) or repr'd shows a secret
        secrets = list(self.key_server._secrets[EntityType.MGR].values())
        self.assertTrue(secrets)
        own_key = self.keyring.get(EntityName.parse("mgr.y"))
        text = "\n".join(formatEvent(e) or "" for e in self.events)
        text += repr(registration) + str(registration) + repr(self.key_server)
        text += repr(registration.monclient.auth_handler)
        self.assertIn("installed", text)
        for key in secrets + [own_key]:
            for form in (key.to_base64(), key.secret_bytes.hex(),
                         base64.b64encode(key.secret_bytes).decode(), repr(key.secret_bytes)):
                self.assertNotIn(form, text)

    @defer.inlineCallbacks
    def test_monitor_restart(self):
        """kill -9 of the monitor: we reconnect, keep our gid, stay the manager, still answer."""
        from twisted.internet import reactor

        registration = self._manager()
        yield registration.whenAvailable()
        gid = registration.gid
        fetches = registration.rotating_fetches
        connections = registration.client.connections
        self.mon.restart()
        deadline = reactor.seconds() + 30
        while (registration.client.connections <= connections or registration.rotating_fetches <= fetches) \
                and reactor.seconds() < deadline:
            yield task.deferLater(reactor, 0.2, lambda: None)
        self.assertGreater(registration.client.connections, connections)
        self.assertGreater(registration.rotating_fetches, fetches)
        # the global_id was reclaimed with our ticket: the same gid, the same manager
        self.assertEqual(registration.gid, gid)
        out, err, code = yield self._ceph("mgr", "dump", "--format", "json")
        self.assertEqual(code, 0, err)
        dump = json.loads(out)
        self.assertEqual((dump["active_gid"], dump["active_name"], dump["available"]), (gid, "y", True))
        yield self._answered()

    @defer.inlineCallbacks
    def test_unknown_secret_fetched_on_demand(self):
        """
        As if the monitor had rotated since our last fetch: we hold none of
        its current secrets, a real client's ticket names one, we fetch and
        accept it.
        """
        registration = self._manager()
        yield registration.whenAvailable()
        fetches = registration.rotating_fetches
        stale = P.RotatingSecrets({10 ** 6: (P.CryptoKey.generate(), 0.0)}, 10 ** 6)
        self.key_server.install_rotating(EntityType.MGR, stale)
        yield self._answered()
        self.assertEqual(self.server_auth.fetches, 1)
        self.assertEqual(registration.rotating_fetches, fetches + 1)
        self.assertNotIn(10 ** 6, self.key_server._secrets[EntityType.MGR])
        text = "\n".join(formatEvent(e) or "" for e in self.events)
        self.assertRegex(text, r"an authorizer names mgr secret \d+, which we do not hold")


@implementer(IMsgr2Receiver)
class _Sessions:
    """Keep every READY and message, with the connection it came on."""

    def __init__(self):
        self.ready = []
        self.messages = []
        self.lost = []

    def connectionReady(self, protocol, info):
        self.ready.append((protocol, str(info.peer_name)))

    def messageReceived(self, protocol, message):
        self.messages.append((protocol, message))

    def connectionLost(self, protocol, reason):
        self.lost.append(protocol)


class MonitorMgrSessionTests(TestCase):
    """
    The monitor's MgrClient and our manager in this process: its MMgrOpen
    decoded (the monitor's config and defaults included), our MMgrConfigure
    followed (reports every stats_period, here 1 s instead of 5 s) on one
    connection that stays up.
    """

    release = cephlab.DEFAULT_RELEASE
    timeout = 120

    @defer.inlineCallbacks
    def test_open_configure_report(self):
        from twisted.internet import reactor

        cephlab.ensure_release(self.release)
        mon = cephlab.CephMonitor(auth="cephx", release=self.release).start()
        self.addCleanup(mon.stop)
        path = os.path.join(mon.dir, "mgr.z.keyring")
        mon.ceph_checked("auth", "get-or-create", "mgr.z", "mon", "allow profile mgr", "-o", path)
        me = EntityName.parse("mgr.z")
        keyring = Keyring.load(path)
        cephx = CephxAuthProvider()
        key_server = CephxKeyServer(keyring, own_name=me)
        config = ConnectionConfig(entity_type=EntityType.MGR, name=me,
                                  modes=(ConnectionMode.SECURE, ConnectionMode.CRC))
        port_number = cephlab.free_port()
        addrs = entity_addrvec_t((entity_addr_t.parse("v2:127.0.0.1:%d/%d" % (port_number, 0x5eed)),))
        registration = MgrRegistration(reactor, mon.addr, [cephx.clientHandler(name=me, keyring=keyring)],
                                       addrs, key_server=key_server, config=config, beacon_interval=0.5)
        recorder = _Sessions()
        sessions = DaemonSessions(recorder, stats_period=1)
        server_auth = registration.serverHandler(
            cephx.serverHandler(key_server=key_server, authority=False, service_ids=(EntityType.MGR,)))
        port = reactor.listenTCP(port_number, Msgr2ServerFactory([server_auth], sessions, config, nonce=0x5eed),
                                 interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        registration.startService()
        self.addCleanup(registration.stopService)
        yield registration.whenAvailable()

        def reports():
            return [(p, m) for p, m in recorder.messages if isinstance(m, MMgrReport)]
        deadline = reactor.seconds() + 20
        while len(reports()) < 3 and reactor.seconds() < deadline:
            yield task.deferLater(reactor, 0.2, lambda: None)
        opens = [(p, m) for p, m in recorder.messages if isinstance(m, MMgrOpen)]
        self.assertEqual(len(opens), 1, recorder.messages)
        conn, opened = opens[0]
        self.assertEqual(str(opened.src), "mon.0")
        self.assertEqual((opened.version, opened.daemon_name, opened.service_name, opened.service_daemon),
                         (3, "a", "mon", False))
        # the monitor's configuration as it runs, from its conf file (CONF_FILE = 2)
        values = opened.config()
        self.assertEqual(values["mon_host"][2], mon.addr)
        self.assertEqual(values["paxos_propose_interval"][2], "0.050000")
        self.assertNotIn("fsid", values)  # Ceph leaves it out
        self.assertEqual(opened.ignored_mon_values(), {})
        defaults = opened.config_defaults()
        self.assertEqual(defaults["mgr_stats_period"], "5")
        self.assertGreater(len(defaults), 1000)
        # reports follow on the same connection, at our period
        self.assertGreaterEqual(len(reports()), 3, [type(m).__name__ for _, m in recorder.messages])
        self.assertTrue(all(p is conn and m.daemon_name == "a" for p, m in reports()))
        self.assertEqual([name for _, name in recorder.ready], ["mon.0"])
        self.assertEqual(recorder.lost, [])
        self.assertEqual(sessions.sessions["mon.0"].reports, len(reports()))
        self.assertEqual(sessions.opens, 1)


cephlab.release_variants(globals(), MonitorMgrSessionTests)
