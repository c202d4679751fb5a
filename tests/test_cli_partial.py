"""
The command line when things go wrong slowly: a lossless echo test that is
granted a lossy session fails at once, and every subcommand that times out
or is interrupted (SIGINT, exit code 130) prints what it did so far.

The servers run in the test's reactor; the command line runs as a user
runs it, in a subprocess.
"""

import json
import os
import sys
import time

from twisted.internet import defer, protocol, reactor, utils
from twisted.trial.unittest import SynchronousTestCase, TestCase

from msgr2tx import cli
from msgr2tx.auth.none import NoneServerHandler
from msgr2tx.core.config import ConnectionConfig
from msgr2tx.core.encoding import EntityType
from msgr2tx.factory import Msgr2ServerFactory
from msgr2tx.services import EchoReceiver
from msgr2tx.testing import FaultProxy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def env():
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, e.get("PYTHONPATH")]))
    return e


def msgr2tx(*args):
    """Run the command line; fires with (stdout, stderr, exit code)."""
    d = utils.getProcessOutputAndValue(sys.executable, ["-m", "msgr2tx"] + list(args), env=env())
    return d.addCallback(lambda r: (r[0].decode(), r[1].decode(), r[2]))


class _Collect(protocol.ProcessProtocol):
    def __init__(self):
        self.out = bytearray()
        self.err = bytearray()
        self.ended = defer.Deferred()

    def outReceived(self, data):
        self.out += data

    def errReceived(self, data):
        self.err += data

    def processEnded(self, reason):
        self.ended.callback(reason.value.exitCode)


class Countdown(EchoReceiver):
    """Echoes, and calls C{then()} once the C{after}-th message has arrived."""

    def __init__(self, after, then):
        super().__init__()
        self.after = after
        self.then = then

    def messageReceived(self, protocol, message):
        super().messageReceived(protocol, message)
        if self.received == self.after:
            self.then()


class _HTTPReply(protocol.Protocol):
    def connectionMade(self):
        self.transport.write(b"HTTP/1.0 400 Bad Request\r\n\r\n")
        # a half-close (FIN after the reply), reading on: a full close with
        # our client's banner unread would make the kernel answer with a
        # reset, which may discard the reply before the client reads it
        self.transport.loseWriteConnection()


class _HTTPish(protocol.ServerFactory):
    """A peer that answers like a web server: a status line, then it ends its side of the connection."""

    protocol = _HTTPReply


class PartialSummaryTests(TestCase):

    timeout = 90

    def start_server(self, lossy=True, receiver=None, port=0):
        config = ConnectionConfig(entity_type=EntityType.MON, entity_num=0, lossy=lossy)
        factory = Msgr2ServerFactory([NoneServerHandler()], receiver or EchoReceiver(), config)
        port = self.listening = reactor.listenTCP(port, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.port = port.getHost().port
        return "v2:127.0.0.1:%d" % self.port

    def start_proxy(self):
        proxy = FaultProxy(reactor, "127.0.0.1", self.port)
        via = "v2:127.0.0.1:%d" % proxy.listen()
        self.addCleanup(proxy.stop)
        return proxy, via

    def silent_after(self, messages):
        """A lossless echo server behind a proxy that goes silent after some messages."""
        holder = []
        self.countdown = Countdown(messages, lambda: holder[0].go_silent())
        address = self.start_server(lossy=False, receiver=self.countdown)
        proxy, via = self.start_proxy()
        holder.append(proxy)
        return address, via

    @defer.inlineCallbacks
    def test_lossless_echo_test_granted_lossy_fails_at_once(self):
        address = self.start_server(lossy=True)   # twistd msgr2's default: stateless, as a monitor
        started = time.monotonic()
        out, err, code = yield msgr2tx("echo-test", "--target", address, "--policy", "lossless",
                                       "--count", "100", "--timeout", "60")
        self.assertLess(time.monotonic() - started, 30)   # not the 60 s timeout
        self.assertEqual(code, cli.EXIT_FAILED, err)
        self.assertEqual(out, "")
        lines = err.strip().splitlines()
        self.assertEqual(len(lines), 1, err)
        self.assertTrue(lines[0].startswith("msgr2tx: error: "), lines)
        self.assertIn("for a lossless session and was granted a lossy one", lines[0])
        self.assertIn("--policy stateful", lines[0])
        # with --json the verdict is also a JSON error object on stdout
        out, err, code = yield msgr2tx("echo-test", "--target", address, "--policy", "lossless",
                                       "--count", "100", "--timeout", "60", "--json")
        self.assertEqual(code, cli.EXIT_FAILED, err)
        error = json.loads(out.strip().splitlines()[-1])
        self.assertEqual((error["error"], error["address"], error["stage"]), ("downgraded", address, "ready"))
        self.assertEqual("msgr2tx: error: " + error["message"], err.strip())

    @defer.inlineCallbacks
    def test_lossy_echo_test_against_a_lossy_server_is_fine(self):
        address = self.start_server(lossy=True)
        out, err, code = yield msgr2tx("echo-test", "--target", address, "--policy", "lossy",
                                       "--count", "50", "--timeout", "30")
        self.assertEqual(code, 0, err)
        result = json.loads(out.strip().splitlines()[-1])
        self.assertEqual((result["sent"], result["received"]), (50, 50))
        self.assertNotIn("complete", result)
        # -f json-pretty as ping's: the same object, indented
        out, err, code = yield msgr2tx("echo-test", "--target", address, "--policy", "lossy",
                                       "--count", "50", "--timeout", "30", "-f", "json-pretty")
        self.assertEqual(code, 0, err)
        self.assertEqual(json.loads(out)["received"], 50)
        self.assertIn('\n    "received": 50,', out)

    @defer.inlineCallbacks
    def test_first_connection_failure_is_explained_at_once(self):
        """A closed port and a peer that is no msgr2 server: ping's explanation, not 30 s of retries."""
        from tests.test_cli import socket_closed_port
        with socket_closed_port() as port:
            target = "v2:127.0.0.1:%d" % port
            started = time.monotonic()
            out, err, code = yield msgr2tx("echo-test", "--target", target, "--timeout", "60")
            _, ping_err, _ = yield msgr2tx("ping", target, "--timeout", "60")
        self.assertLess(time.monotonic() - started, 30)
        self.assertEqual((code, out), (cli.EXIT_FAILED, ""), err)
        self.assertEqual(err, ping_err)
        self.assertIn("connection refused", err)
        # an HTTP server (any non-msgr2 peer) on the port
        http = reactor.listenTCP(0, _HTTPish(), interface="127.0.0.1")
        self.addCleanup(http.stopListening)
        target = "v2:127.0.0.1:%d" % http.getHost().port
        out, err, code = yield msgr2tx("echo-test", "--target", target, "--timeout", "60")
        _, ping_err, _ = yield msgr2tx("ping", target, "--timeout", "60")
        self.assertEqual((code, out), (cli.EXIT_FAILED, ""), err)
        self.assertEqual(err, ping_err)
        self.assertIn("does not speak msgr2", err)

    @defer.inlineCallbacks
    def test_progress_ends_with_the_final_count(self):
        address = self.start_server(lossy=True)
        out, err, code = yield msgr2tx("echo-test", "--target", address, "--policy", "lossy", "--progress",
                                       "--count", "250", "--timeout", "30")
        self.assertEqual(code, 0, err)
        self.assertEqual(json.loads(out.strip().splitlines()[-1])["received"], 250)
        self.assertTrue(err.endswith("\n"), repr(err))
        self.assertEqual(err.rstrip("\n").split("\r")[-1], "sent 250/250, received 250")

    @defer.inlineCallbacks
    def test_echo_test_says_the_server_reset_the_session(self):
        # the echo server "restarts" after 40 messages: its connection dropped and a
        # new server, which knows no session, on the same port answers the reconnect
        # with a full SESSION_RESET; echo-test says so at once, not after --timeout
        def restart():
            self.start_server(lossy=False, port=self.port)

        class RestartAfter(EchoReceiver):
            def messageReceived(self_, protocol, message):
                super().messageReceived(protocol, message)
                if self_.received == 40:
                    d = defer.maybeDeferred(self.listening.stopListening)
                    protocol.transport.abortConnection()
                    d.addCallback(lambda _: restart())
        address = self.start_server(lossy=False, receiver=RestartAfter())
        started = time.monotonic()
        out, err, code = yield msgr2tx("echo-test", "--target", address, "--count", "100000", "--window", "8",
                                       "--timeout", "25", "--json")
        self.assertLess(time.monotonic() - started, 15)   # not the 25 s timeout
        self.assertEqual(code, cli.EXIT_FAILED, err)
        self.assertIn("msgr2tx: error: %s (mon.0) reset our lossless session" % address, err)
        summary, error = [json.loads(line) for line in out.strip().splitlines()]
        self.assertIs(summary["complete"], False)
        self.assertGreaterEqual(summary["received"], 1)
        self.assertEqual((error["error"], error["address"]), ("reset", address))

    @defer.inlineCallbacks
    def test_echo_test_says_the_server_is_gone(self):
        # the echo server stops (its port closed, its connection dropped) after 40 messages:
        # echo-test says so once reconnecting has been refused a while, not after --timeout
        class DropAfter(EchoReceiver):
            def messageReceived(self_, protocol, message):
                super().messageReceived(protocol, message)
                if self_.received == 40:
                    self.listening.stopListening()
                    protocol.transport.abortConnection()
        address = self.start_server(lossy=False, receiver=DropAfter())
        started = time.monotonic()
        out, err, code = yield msgr2tx("echo-test", "--target", address, "--count", "100000", "--window", "8",
                                       "--timeout", "25")
        self.assertLess(time.monotonic() - started, 22)   # not the 25 s timeout
        self.assertEqual(code, cli.EXIT_FAILED, err)
        self.assertIn("msgr2tx: error: the echo server at %s is gone" % address, err)
        self.assertIn("reconnecting fails (connection refused)", err)
        result = json.loads(out.strip().splitlines()[-1])
        self.assertIs(result["complete"], False)
        self.assertGreaterEqual(result["received"], 1)

    @defer.inlineCallbacks
    def test_echo_test_timeout_prints_the_partial_summary(self):
        address, via = self.silent_after(40)
        out, err, code = yield msgr2tx("echo-test", "--target", address, "--via", via, "--count", "100000",
                                       "--window", "8", "--timeout", "8")
        self.assertEqual(code, cli.EXIT_FAILED, err)
        result = json.loads(out.strip().splitlines()[-1])
        self.assertIs(result["complete"], False)
        self.assertGreaterEqual(result["sent"], 40)
        self.assertLess(result["sent"], 100000)
        self.assertGreater(result["received"], 0)
        self.assertLessEqual(result["received"], 40)
        # the error says what we were waiting for
        self.assertTrue(err.strip().splitlines()[-1].startswith("msgr2tx: error: timed out after 8s"), err)

    @defer.inlineCallbacks
    def test_echo_test_interrupt_prints_the_partial_summary_and_exits_130(self):
        address, via = self.silent_after(40)
        proc = _Collect()
        transport = reactor.spawnProcess(
            proc, sys.executable, [sys.executable, "-m", "msgr2tx", "echo-test", "--target", address,
                                   "--via", via, "--count", "100000", "--window", "8", "--timeout", "60"],
            env=env())
        # wait until it is stuck behind the silent proxy, then Ctrl-C
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and self.countdown.received < self.countdown.after:
            yield deferLater(0.1)
        yield deferLater(0.5)
        transport.signalProcess("INT")
        code = yield proc.ended
        err = proc.err.decode()
        self.assertEqual(code, cli.EXIT_INTERRUPTED, err)
        result = json.loads(proc.out.decode().strip().splitlines()[-1])
        self.assertIs(result["complete"], False)
        self.assertGreaterEqual(result["sent"], 40)
        self.assertLessEqual(result["received"], 40)
        self.assertEqual(err.strip().splitlines()[-1], "msgr2tx: interrupted")

    @defer.inlineCallbacks
    def _ping_until_silent(self, address, *extra):
        proxy, via = self.start_proxy()
        proc = _Collect()
        transport = reactor.spawnProcess(
            proc, sys.executable, [sys.executable, "-m", "msgr2tx", "ping", address, "--via", via,
                                   "--count", "100000000"] + list(extra), env=env())
        # silent half a second after the connection came in: keepalives answered until then
        deadline = time.monotonic() + 8
        while not proxy.accepts and time.monotonic() < deadline:
            yield deferLater(0.05)
        yield deferLater(0.5)
        proxy.go_silent()
        return proc, transport

    @defer.inlineCallbacks
    def test_ping_timeout_prints_the_round_trips_so_far(self):
        address = self.start_server()
        proc, _ = yield self._ping_until_silent(address, "--timeout", "8", "--json")
        code = yield proc.ended
        err = proc.err.decode()
        self.assertEqual(code, cli.EXIT_FAILED, err)
        self.assertEqual(err.strip().splitlines()[-1],
                         "msgr2tx: error: timed out after 8s waiting for KEEPALIVE2_ACK from %s" % address)
        # one JSON object: the error, with what was done so far
        (line,) = proc.out.decode().strip().splitlines()
        result = json.loads(line)
        self.assertEqual((result["error"], result["complete"]), ("timeout", False))
        self.assertEqual(result["partial"]["peer"], "mon.0")
        self.assertGreater(len(result["partial"]["rtt_ms"]), 0)

    @defer.inlineCallbacks
    def test_ping_interrupt_prints_the_round_trips_so_far(self):
        address = self.start_server()
        proc, transport = yield self._ping_until_silent(address, "--timeout", "60")
        yield deferLater(0.3)
        transport.signalProcess("INT")
        code = yield proc.ended
        err = proc.err.decode()
        self.assertEqual(code, cli.EXIT_INTERRUPTED, err)
        self.assertEqual(err.strip().splitlines()[-1], "msgr2tx: interrupted")
        lines = proc.out.decode().strip().splitlines()
        self.assertTrue(lines[0].startswith("connected to %s" % address), lines[0])
        self.assertRegex(lines[1], r"^keepalive 1: [0-9.]+ ms$")
        self.assertRegex(lines[-1], r"^\d+ of 100000000 keepalives answered$")

    @defer.inlineCallbacks
    def test_command_without_a_reply_says_how_far_it_got(self):
        # the echo service sends no monmap, so the command waits for it and is never sent
        address = self.start_server()
        out, err, code = yield msgr2tx("command", "--mon", address, '{"prefix": "version"}', "--timeout", "6",
                                       "--json")
        self.assertEqual(code, cli.EXIT_FAILED, err)
        (line,) = out.strip().splitlines()
        result = json.loads(line)
        self.assertEqual((result["error"], result["complete"], result["partial"]["stage"], result["partial"]["peer"]),
                         ("timeout", False, "waiting for the monmap", "mon.0"))
        self.assertEqual(err.strip().splitlines()[-1],
                         "msgr2tx: error: timed out after 6s waiting for the monmap from %s (a Ceph monitor sends "
                         "it at once; is this a monitor?)" % address)

    @defer.inlineCallbacks
    def test_command_interrupted_says_how_far_it_got(self):
        arrived = []
        address = self.start_server(receiver=Countdown(1, lambda: arrived.append(True)))
        proc = _Collect()
        transport = reactor.spawnProcess(
            proc, sys.executable, [sys.executable, "-m", "msgr2tx", "command", "--mon", address,
                                   '{"prefix": "version"}', "--timeout", "60"], env=env())
        deadline = time.monotonic() + 20
        while not arrived and time.monotonic() < deadline:
            yield deferLater(0.05)
        transport.signalProcess("INT")
        code = yield proc.ended
        err = proc.err.decode()
        self.assertEqual(code, cli.EXIT_INTERRUPTED, err)
        self.assertEqual(proc.out.decode(), "")
        lines = err.strip().splitlines()
        self.assertEqual(len(lines), 2, err)
        self.assertRegex(lines[0], r"^msgr2tx: connected to mon\.0 at v2:127\.0\.0\.1:\d+, but no monmap after "
                                   r"[0-9.]+s: the command was not sent$")
        self.assertEqual(lines[1], "msgr2tx: interrupted")


def deferLater(seconds):
    from twisted.internet import task
    return task.deferLater(reactor, seconds, lambda: None)


class CancelledReadyWaiterTests(SynchronousTestCase):
    """
    A caller's own timeout (the CLI's --timeout) cancels whenReady(); the
    handshake timeout that comes due at the same moment must not fire the
    cancelled Deferred again (it used to log AlreadyCalledError).
    """

    def test_handshake_timeout_after_a_cancelled_wait(self):
        from twisted.internet.defer import CancelledError
        from twisted.internet.task import Clock
        from twisted.internet.testing import StringTransport

        from msgr2tx.auth.none import NoneClientHandler
        from msgr2tx.core.encoding import EntityName
        from msgr2tx.factory import Msgr2ClientFactory

        clock = Clock()
        factory = Msgr2ClientFactory([NoneClientHandler(EntityName.parse("client.admin"))], ConnectionConfig(),
                                     reactor=clock, handshake_timeout=2.0)
        p = factory.buildProtocol(None)
        p.makeConnection(StringTransport())
        d = p.whenReady()
        failures = []
        d.addErrback(failures.append)
        clock.advance(1.0)
        d.cancel()               # aborts the transport; connectionLost comes later
        clock.advance(1.0)       # the handshake timer fires first
        self.assertEqual(len(failures), 1)
        self.assertTrue(failures[0].check(CancelledError))
        self.assertEqual(self.flushLoggedErrors(), [])
