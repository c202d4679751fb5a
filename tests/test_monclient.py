"""
MonClient hunting and failover against monitors made of our own msgr2
servers on loopback (auth none or cephx), with the MonClient's timers on a
L{task.Clock} so that hunt rounds, backoff, keepalive timeouts and op
timeouts are shown without waiting for them.  The same behaviour against
real ceph-mon daemons is in tests/test_interop_monclient.py.
"""

import errno
import json

from twisted.internet import defer, reactor, task
from twisted.trial.unittest import SkipTest, TestCase

from msgr2tx.auth import AuthReject
from msgr2tx.auth.none import NoneClientHandler, NoneServerHandler
from msgr2tx.core.config import ConnectionConfig
from msgr2tx.core.encoding import EntityName, EntityType, entity_addr_t, entity_addrvec_t
from msgr2tx.ceph.monmap import MonMap
from msgr2tx.messages import MMonCommand, MMonCommandAck, MMonGetVersion, MMonGetVersionReply, MMonMap, MMonSubscribe
from msgr2tx.errors import AuthError, ConnectionClosed
from msgr2tx.factory import Msgr2ServerFactory
from msgr2tx.clients.monclient import CommandTimeout, MonClient, NoMonitors, resolve_monitors, split_mon_list

ADMIN = EntityName.parse("client.admin")
FSID = bytes(range(16))


class Cluster:
    """The monmap our fake monitors share."""

    def __init__(self):
        self.monmap = MonMap(fsid=FSID, epoch=1)
        self.mons = {}

    def publish(self):
        """Send the monmap to every session, as monitors do after a change."""
        for mon in self.mons.values():
            for p in mon.sessions():
                p.sendMessage(MMonMap.from_monmap(self.monmap))


class FakeMonitor:
    """
    A msgr2 server that answers like a monitor: monmap on subscribe,
    command acks naming itself, map versions.  C{hold} keeps commands and
    version requests unanswered; C{drop_auth} drops that many handshakes
    during auth, as a monitor out of quorum does.
    """

    def __init__(self, cluster, name, auth=None):
        self.cluster = cluster
        self.name = name
        self.hold = False
        self.drop_auth = 0
        self.dropped = 0
        self.held = []
        self.commands = []
        self.protocols = []
        handler = auth if auth is not None else NoneServerHandler()
        self.factory = Msgr2ServerFactory([_Dropping(self, handler)], self,
                                          ConnectionConfig(entity_type=EntityType.MON, lossy=True))
        self.factory.onProtocol = self.protocols.append
        self.port = reactor.listenTCP(0, self.factory, interface="127.0.0.1")
        self.addr = entity_addr_t.parse("v2:127.0.0.1:%d" % self.port.getHost().port)
        cluster.mons[name] = self
        cluster.monmap.add(name, entity_addrvec_t((self.addr,)))

    def sessions(self):
        return [p for p in self.protocols if p.info is not None and not p._closed and p.transport is not None
                and p.transport.connected]

    def kill(self):
        """Stop listening and drop every connection (kill -9)."""
        d = self.port.stopListening()
        for p in self.protocols:
            p.abort()
        return d

    def connectionReady(self, p, info):
        pass

    def messageReceived(self, p, message):
        if isinstance(message, MMonSubscribe):
            p.sendMessage(MMonMap.from_monmap(self.cluster.monmap))
        elif isinstance(message, (MMonCommand, MMonGetVersion)):
            if self.hold:
                self.held.append(message)
                return
            if isinstance(message, MMonCommand):
                self.commands.append(json.loads(message.cmd[0]))
                p.sendMessage(MMonCommandAck(0, "", message.cmd, json.dumps({"mon": self.name}).encode(),
                                             tid=message.tid))
            else:
                p.sendMessage(MMonGetVersionReply(message.handle, 7, 1))

    def connectionLost(self, p, reason):
        pass


class _Dropping:
    """Wraps a server auth handler; drops the first C{mon.drop_auth} handshakes."""

    def __init__(self, mon, inner):
        self.mon = mon
        self.inner = inner
        self.method = inner.method
        self.allowed_modes = inner.allowed_modes

    def handle_request(self, request):
        if self.mon.drop_auth > 0:
            self.mon.drop_auth -= 1
            self.mon.dropped += 1
            for p in self.mon.protocols:
                if p.info is None:
                    reactor.callLater(0, p.abort)
            return defer.Deferred()  # never answered: the connection goes first
        return self.inner.handle_request(request)


class RefuseEveryone:
    method = NoneServerHandler.method
    allowed_modes = NoneServerHandler.allowed_modes

    def handle_request(self, request):
        return AuthReject(-errno.EACCES, "refused for the test")


@defer.inlineCallbacks
def wait_for(predicate, timeout=10.0):
    """Let the real reactor run (socket I/O) until C{predicate()} is true."""
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        yield task.deferLater(reactor, 0.01, lambda: None)
    raise AssertionError("condition not met within %gs" % timeout)


def dead_address():
    """A loopback address nobody listens on (connection refused)."""
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return "v2:127.0.0.1:%d" % port


class HuntingTests(TestCase):

    timeout = 60

    def setUp(self):
        self.cluster = Cluster()
        self.clock = task.Clock()
        self.mons = [FakeMonitor(self.cluster, n) for n in ("a", "b", "c")]
        for m in self.mons:
            self.addCleanup(m.kill)

    def client(self, monitors, **kwargs):
        kwargs.setdefault("clock", self.clock)
        mc = MonClient(**kwargs)
        self.addCleanup(mc.stop)
        d = mc.start(reactor, monitors, [NoneClientHandler(ADMIN)], connect_timeout=5)
        return mc, d

    def live_sessions(self):
        return sum(len(m.sessions()) for m in self.mons)

    @defer.inlineCallbacks
    def test_first_listed_monitor_dead(self):
        dead = dead_address()
        mc, _ = self.client([dead] + [str(m.addr) for m in self.mons])
        # names are Ceph's for monitors known only by address
        self.assertEqual([n for n, _ in mc.monitors], ["noname-a", "noname-b", "noname-c", "noname-d"])
        yield mc.authenticate(timeout=10)
        result, _, out = yield mc.command({"prefix": "status"})
        self.assertEqual(result, 0)
        self.assertIn(json.loads(out)["mon"], "abc")
        # the monmap replaced the addresses we were given: the dead one is gone
        self.assertEqual([n for n, _ in mc.monitors], ["a", "b", "c"])

    @defer.inlineCallbacks
    def test_parallel_dial_keeps_one_session(self):
        mc, _ = self.client([str(m.addr) for m in self.mons])
        yield mc.authenticate(timeout=10)
        # all three were dialled at once (hunt_parallel 3) ...
        yield wait_for(lambda: all(m.protocols for m in self.mons))
        # ... and only the first to authenticate is kept
        yield wait_for(lambda: self.live_sessions() == 1)
        self.assertEqual(len(self.mons[["a", "b", "c"].index(mc.active_name)].sessions()), 1)

    @defer.inlineCallbacks
    def test_one_at_a_time_hunt_moves_on_each_interval(self):
        dead = [dead_address(), dead_address()]
        mc, _ = self.client(dead + [str(self.mons[0].addr)], hunt_parallel=1)
        for _ in range(3):
            if mc.protocol is not None:
                break
            yield wait_for(lambda: not mc.hunting or mc.protocol is not None)
            if mc.protocol is None:
                self.clock.advance(3.0)   # mon_client_hunt_interval
        p = yield mc.authenticate(timeout=10)
        self.assertIs(p, mc.protocol)

    @defer.inlineCallbacks
    def test_failover_resends_command_and_version_request(self):
        mc, _ = self.client([str(m.addr) for m in self.mons])
        yield mc.authenticate(timeout=10)
        yield mc.whenMonmap()
        active = self.cluster.mons[mc.active_name]
        first_gid = mc.protocol.info.global_id
        active.hold = True
        cmd = mc.command({"prefix": "status"})
        version = mc.get_version("osdmap")
        yield wait_for(lambda: len(active.held) == 2)
        yield active.kill()
        # the session is lost at once (RST); the hunt starts immediately
        result, _, out = yield cmd
        newest, oldest = yield version
        self.assertEqual(result, 0)
        self.assertNotEqual(json.loads(out)["mon"], active.name)
        self.assertEqual((newest, oldest), (7, 1))
        self.assertEqual(mc.sessions, 2)
        self.assertEqual(len(mc.failover_times), 1)
        # the global_id of the first session was offered again and kept
        self.assertEqual(mc.protocol.info.global_id, first_gid)

    @defer.inlineCallbacks
    def test_get_version_outstanding_when_all_monitors_go_fails_at_its_timeout(self):
        mc, _ = self.client([str(m.addr) for m in self.mons])
        yield mc.authenticate(timeout=10)
        for m in self.mons:
            m.hold = True
        version = mc.get_version("osdmap", timeout=20)
        cmd = mc.command({"prefix": "status"}, timeout=25)
        yield wait_for(lambda: sum(len(m.held) for m in self.mons) == 2)
        yield defer.gatherResults([m.kill() for m in self.mons])
        yield wait_for(lambda: mc.protocol is None and not mc.hunting)
        self.clock.advance(19.9)
        self.assertNoResult(version)
        self.clock.advance(0.2)
        self.failureResultOf(version, CommandTimeout)
        self.clock.advance(5)
        self.failureResultOf(cmd, CommandTimeout)

    @defer.inlineCallbacks
    def test_unanswered_keepalives_make_it_hunt(self):
        mc, _ = self.client([str(m.addr) for m in self.mons])
        yield mc.authenticate(timeout=10)
        yield mc.whenMonmap()
        first = mc.active_name
        silent = self.cluster.mons[first]
        # the monitor stops reading: no KEEPALIVE2_ACK any more
        for p in silent.sessions():
            p.transport.pauseProducing()
        for _ in range(3):
            self.clock.advance(10.0)   # mon_client_ping_interval
            yield task.deferLater(reactor, 0.05, lambda: None)
        self.assertEqual(mc.active_name, first)  # 30 s (mon_client_ping_timeout) not yet passed
        self.clock.advance(10.0)
        self.assertTrue(mc.protocol is None or mc.active_name != first)
        yield mc.authenticate(timeout=10)
        self.assertEqual(mc.sessions, 2)

    @defer.inlineCallbacks
    def test_hunt_interval_backs_off_by_half_up_to_ten_times(self):
        mc, _ = self.client([str(m.addr) for m in self.mons])
        yield mc.authenticate(timeout=10)
        yield defer.gatherResults([m.kill() for m in self.mons])
        yield wait_for(lambda: mc.protocol is None and not mc.hunting)
        delays = []
        for _ in range(8):
            call = mc._tick_call
            delay = call.getTime() - self.clock.seconds()
            delays.append(round(delay, 3))
            self.clock.advance(delay)
            yield wait_for(lambda: not mc.hunting)
        # 3 s times 1.5, 2.25, ... capped at 10 (Ceph's backoff 1.5, max multiple 10)
        self.assertEqual(delays, [4.5, 6.75, 10.125, 15.188, 22.781, 30.0, 30.0, 30.0])

    @defer.inlineCallbacks
    def test_follows_monmap_additions_and_removals(self):
        mc, _ = self.client([str(self.mons[0].addr)])
        yield mc.authenticate(timeout=10)
        yield wait_for(lambda: [n for n, _ in mc.monitors] == ["a", "b", "c"])
        d = FakeMonitor(self.cluster, "d")
        self.addCleanup(d.kill)
        self.cluster.monmap.epoch += 1
        self.cluster.publish()
        yield wait_for(lambda: [n for n, _ in mc.monitors] == ["a", "b", "c", "d"])
        # the new monitor is used: a session with it, found through the monmap
        mc.reopen_session("d")
        yield wait_for(lambda: mc.active_name == "d")
        result, _, out = yield mc.command({"prefix": "status"})
        self.assertEqual(json.loads(out)["mon"], "d")
        # d leaves the monmap: we leave d
        del self.cluster.monmap.mons["d"]
        self.cluster.monmap.ranks.remove("d")
        self.cluster.monmap.epoch += 1
        for p in d.sessions():
            p.sendMessage(MMonMap.from_monmap(self.cluster.monmap))
        yield wait_for(lambda: mc.active_name in ("a", "b", "c"))
        self.assertEqual([n for n, _ in mc.monitors], ["a", "b", "c"])

    @defer.inlineCallbacks
    def test_monitor_dropping_us_during_auth_is_retried(self):
        only = self.mons[0]
        only.drop_auth = 2
        mc, _ = self.client([str(only.addr)])
        for _ in range(4):
            yield wait_for(lambda: not mc.hunting or mc.protocol is not None)
            if mc.protocol is not None:
                break
            self.clock.advance(3.0)
        yield mc.authenticate(timeout=10)
        self.assertEqual(only.dropped, 2)

    @defer.inlineCallbacks
    def test_refused_credentials_end_the_hunt(self):
        cluster = Cluster()
        refusing = [FakeMonitor(cluster, n, auth=RefuseEveryone()) for n in ("x", "y")]
        for m in refusing:
            self.addCleanup(m.kill)
        mc, _ = self.client([str(m.addr) for m in refusing])
        failure = yield self.assertFailure(mc.authenticate(timeout=10), AuthError)
        self.assertIsInstance(failure, AuthError)
        self.assertIsNone(mc._tick_call)

    @defer.inlineCallbacks
    def test_authenticate_times_out_when_nobody_answers(self):
        mc, _ = self.client([dead_address()])
        d = mc.authenticate(timeout=5)
        yield wait_for(lambda: not mc.hunting)
        self.clock.advance(5)
        f = self.failureResultOf(d, ConnectionClosed)
        self.assertIn("no monitor session within 5s", str(f.value))
        self.assertIn("noname-a (v2:127.0.0.1:", str(f.value))


class IPv6Tests(TestCase):

    @defer.inlineCallbacks
    def test_hunt_over_ipv6(self):
        cluster = Cluster()
        mon = FakeMonitor(cluster, "a")
        self.addCleanup(mon.kill)
        try:
            port6 = reactor.listenTCP(0, mon.factory, interface="::1")
        except Exception as e:
            raise SkipTest("no IPv6 loopback: %s" % e)
        self.addCleanup(port6.stopListening)
        mc = MonClient(clock=task.Clock())
        self.addCleanup(mc.stop)
        mc.start(reactor, "[v2:[::1]:%d]" % port6.getHost().port, [NoneClientHandler(ADMIN)])
        p = yield mc.authenticate(timeout=10)
        self.assertEqual(p.target_addr.host.version, 6)
        result, _, out = yield mc.command({"prefix": "status"})
        self.assertEqual(json.loads(out)["mon"], "a")


class ReceiverModeTests(TestCase):
    """MonClient as the receiver of a connection made elsewhere (MgrRegistration, ReconnectingClient)."""

    @defer.inlineCallbacks
    def test_get_version_outstanding_when_the_connection_drops_fails_at_its_timeout(self):
        from msgr2tx.client import connect

        cluster = Cluster()
        mon = FakeMonitor(cluster, "a")
        self.addCleanup(mon.kill)
        mon.hold = True
        clock = task.Clock()
        mc = MonClient(resend_on_reconnect=True, clock=clock)
        p = yield connect(reactor, str(mon.addr), [NoneClientHandler(ADMIN)], receiver=mc, timeout=10)
        version = mc.get_version("osdmap", timeout=15)
        yield wait_for(lambda: len(mon.held) == 1)
        p.abort()
        yield wait_for(lambda: mc.protocol is None)
        self.assertNoResult(version)   # kept for the next connection ...
        clock.advance(15)
        self.failureResultOf(version, CommandTimeout)   # ... but not forever


class ResolveTests(TestCase):

    @defer.inlineCallbacks
    def test_forms(self):
        found = yield resolve_monitors(reactor, [
            "[v2:127.0.0.1:3301,v1:127.0.0.1:6789]", "v2:[::1]:3302", "127.0.0.2", ("localhost", 3303),
            "localhost:3304"])
        text = [str(a) for _, a in found]
        self.assertEqual(text[:3], ["v2:127.0.0.1:3301/0", "v2:[::1]:3302/0", "v2:127.0.0.2:3300/0"])
        # a DNS name becomes one monitor per address it has (v4 and v6 alike)
        self.assertIn("v2:127.0.0.1:3303/0", text)
        self.assertIn("v2:127.0.0.1:3304/0", text)
        self.assertEqual([n for n, _ in found][:3], ["noname-a", "noname-b", "noname-c"])

    def test_monmap(self):
        m = MonMap(fsid=FSID, epoch=3)
        m.add("x", entity_addrvec_t.parse("[v2:127.0.0.1:3300,v1:127.0.0.1:6789]"))
        m.add("y", entity_addrvec_t.parse("v1:127.0.0.1:6790"))
        found = self.successResultOf(resolve_monitors(reactor, m))
        self.assertEqual([(n, str(a)) for n, a in found], [("x", "v2:127.0.0.1:3300/0")])

    def test_bad_address_fails_authenticate_too(self):
        mc = MonClient(clock=task.Clock())
        self.failureResultOf(mc.start(reactor, ["v2:127.0.0.1:notaport"], [NoneClientHandler(ADMIN)]), ValueError)
        self.failureResultOf(mc.authenticate(timeout=5), ValueError)

    def test_split_mon_list(self):
        self.assertEqual(split_mon_list("[v2:1.2.3.4:3300,v1:1.2.3.4:6789],[v2:[::1]:3300] 10.0.0.1;mon.x:3300"),
                         ["[v2:1.2.3.4:3300,v1:1.2.3.4:6789]", "[v2:[::1]:3300]", "10.0.0.1", "mon.x:3300"])

    def test_nothing_to_dial(self):
        self.failureResultOf(resolve_monitors(reactor, []), NoMonitors)
        e = self.failureResultOf(resolve_monitors(reactor, ["v1:127.0.0.1:6789", "v1:127.0.0.2:6789"]), NoMonitors)
        self.assertIn("v1:127.0.0.1:6789, v1:127.0.0.2:6789: msgr1 only", str(e.value))




class CommandTests(TestCase):
    """L{MonClient.command} once the monmap is known (its path without a generator)."""

    class Protocol:
        def __init__(self, fail=None):
            self.sent, self.fail = [], fail

        def sendMessage(self, message):
            if self.fail is not None:
                raise self.fail
            self.sent.append(message)

    def client(self, protocol):
        from msgr2tx.ceph.monmap import MonMap
        clock = task.Clock()
        mc = MonClient(clock=clock)
        mc.protocol = protocol
        mc.monmap = MonMap(fsid=b"\x01" * 16)
        return mc, clock

    def test_answer_check_and_timeout(self):
        from msgr2tx.messages import MMonCommandAck
        from msgr2tx.errors import CommandError
        p = self.Protocol()
        mc, clock = self.client(p)
        ok = mc.command({"prefix": "version"})
        refused = mc.command("{\"prefix\": \"nope\"}", check=True)
        silent = mc.command({"prefix": "status"}, timeout=5)
        self.assertEqual([m.cmd for m in p.sent], [['{"prefix": "version"}'], ['{"prefix": "nope"}'],
                                                   ['{"prefix": "status"}']])
        self.assertEqual([m.fsid for m in p.sent], [b"\x01" * 16] * 3)
        self.assertEqual(len({m.tid for m in p.sent}), 3)
        mc.messageReceived(p, MMonCommandAck(0, "", ['{"prefix": "version"}'], b"v", tid=p.sent[0].tid))
        mc.messageReceived(p, MMonCommandAck(-22, "no", ['{"prefix": "nope"}'], b"", tid=p.sent[1].tid))
        self.assertEqual(self.successResultOf(ok), (0, "", b"v"))
        error = self.failureResultOf(refused, CommandError).value
        self.assertEqual((error.result, error.status), (-22, "no"))
        self.assertNoResult(silent)
        clock.advance(5.1)
        self.failureResultOf(silent, CommandTimeout)

    def test_send_failure_is_a_failed_deferred(self):
        mc, _ = self.client(self.Protocol(fail=ConnectionClosed("gone")))
        d = mc.command({"prefix": "version"})
        self.failureResultOf(d, ConnectionClosed)


class CommandCodecTests(TestCase):
    """
    The command loop's shortcuts (L{MMonCommand.build}, MMonCommand's
    one-join encode, MMonCommandAck's struct decode) give what the general
    Encoder/Decoder paths give, and refuse what they refuse.
    """

    CMD = json.dumps({"prefix": "version"})

    def test_build_and_encode(self):
        import uuid

        from msgr2tx.core.encoding import Encoder

        built = MMonCommand.build(FSID, self.CMD, b"in", 9)
        self.assertEqual(vars(built), vars(MMonCommand(FSID, [self.CMD], b"in", tid=9)))
        self.assertEqual(vars(MMonCommand.build(uuid.UUID(bytes=FSID), self.CMD, b"", 1)),
                         vars(MMonCommand(FSID, [self.CMD], tid=1)))
        for cmd in ([self.CMD], ["a", "\u00e9t\u00e9"], []):
            message = MMonCommand(FSID, cmd, b"in", tid=3, paxos_version=5)
            enc = Encoder()
            message.encode_front(enc, 0)
            self.assertEqual(message.encode(), (enc.getvalue(), b"", b"in"))

    def _general(self, front, data=b""):
        from msgr2tx.core.messages import Message
        return Message.decode.__func__(MMonCommandAck, front, b"", data, 1)

    def test_ack_decode(self):
        from msgr2tx.errors import DecodeError

        ack = MMonCommandAck(-2, "no such thing \u00e9", [self.CMD, "b"], b"out", paxos_version=7,
                             session_mon=3, session_mon_tid=4)
        front, _, data = ack.encode()
        general = vars(self._general(front, data))
        self.assertEqual(vars(MMonCommandAck.decode(front, b"", data, 1)), general)
        self.assertEqual(vars(MMonCommandAck.decode(memoryview(front), b"", memoryview(data), 1)), general)
        self.assertEqual(general["r"], -2)
        self.assertEqual(general["cmd"], [self.CMD, "b"])
        # every truncation: the same result, or the same refusal
        for cut in range(len(front)):
            try:
                expected = vars(self._general(front[:cut]))
            except DecodeError as e:
                with self.assertRaises(DecodeError) as caught:
                    MMonCommandAck.decode(front[:cut], b"", b"", 1)
                self.assertEqual(str(caught.exception), str(e))
            else:
                self.assertEqual(vars(MMonCommandAck.decode(front[:cut], b"", b"", 1)), expected)
        # a list count far beyond the bytes left
        with self.assertRaises(DecodeError):
            MMonCommandAck.decode(front[:26 + len("no such thing \u00e9".encode())] + b"\xff\xff\xff\x7f", b"", b"", 1)
