"""
FetchingServiceHandler without I/O: a ticket naming a rotating secret we
do not hold makes the manager fetch the secrets once and look again, at
most once per interval; everything else is the wrapped handler's answer.
"""

import errno

from twisted.internet import defer, task
from twisted.trial.unittest import TestCase

from msgr2tx.auth import AuthDone, AuthMore, AuthReject
from msgr2tx.core.encoding import EntityType
from msgr2tx.clients.mgr import FetchingServiceHandler
from tests.test_cephx import ADMIN, ManagerFixture, log_in_admin, request


class FakeRegistration:
    """What FetchingServiceHandler uses of a MgrRegistration: a clock, the key server, fetch_rotating()."""

    def __init__(self, key_server, fetch):
        self.reactor = task.Clock()
        self.key_server = key_server
        self._fetch = fetch
        self.fetch_calls = 0
        self.pending = None

    def fetch_rotating(self):
        self.fetch_calls += 1
        self.pending = defer.Deferred()
        self.pending.addCallback(lambda _: self._fetch())
        return self.pending


class FetchingServiceHandlerTests(ManagerFixture, TestCase):
    def setUp(self):
        self.set_up_manager()
        self.registration = FakeRegistration(self.mgr_ks, self.install)
        self.handler = FetchingServiceHandler(self.mgr, self.registration, min_interval=5.0)
        self.admin = log_in_admin(self.ks)

    def install(self):
        self.fetch_and_install()

    def first_step(self, payload=None):
        client = self.admin.spawn()
        state = {}
        if payload is None:
            payload = client.build_request(EntityType.MGR)
        return self.handler.handle_request(request(payload, state=state)), client, state

    def results(self, d):
        out = []
        d.addBoth(out.append)
        return out

    def test_shape(self):
        self.assertEqual(self.handler.method, self.handler.inner.method)
        self.assertEqual(self.handler.allowed_modes, self.handler.inner.allowed_modes)
        self.assertIs(self.handler.key_server, self.mgr_ks)

    def test_unknown_secret_fetches_then_accepts(self):
        result, client, state = self.first_step()
        self.assertIsInstance(result, defer.Deferred)
        self.assertEqual(self.registration.fetch_calls, 1)
        out = self.results(result)
        self.assertEqual(out, [])  # waits for the monitor's answer
        self.registration.pending.callback(None)
        [more] = out
        self.assertIsInstance(more, AuthMore)
        # and the challenge round completes against the same handler
        done = self.handler.handle_request(request(client.handle_reply_more(more.payload), more=True,
                                                   state=state))
        self.assertIsInstance(done, AuthDone)
        self.assertEqual(done.name, ADMIN)
        self.assertEqual(self.handler.fetches, 1)

    def test_known_secret_needs_no_fetch(self):
        self.install()
        result, _, _ = self.first_step()
        self.assertIsInstance(result, AuthMore)
        self.assertEqual(self.registration.fetch_calls, 0)

    def test_one_fetch_per_interval(self):
        first, _, _ = self.first_step()
        self.registration._fetch = lambda: None  # the monitor does not have it either
        self.registration.pending.callback(None)
        self.assertIsInstance(self.results(first)[0], AuthReject)
        # a second made-up ticket within the interval: refused at once, no fetch
        second, _, _ = self.first_step()
        self.assertIsInstance(second, AuthReject)
        self.assertEqual(second.result, -errno.EACCES)
        self.assertEqual(self.registration.fetch_calls, 1)
        self.registration.reactor.advance(5.0)
        third, _, _ = self.first_step()
        self.assertIsInstance(third, defer.Deferred)
        self.assertEqual(self.registration.fetch_calls, 2)

    def test_garbage_and_other_services_never_fetch(self):
        for payload in (b"", b"\x01", b"\x01" + b"\xff" * 40, b"\x0b" + bytes(20)):
            result, _, _ = self.first_step(payload)
            self.assertIsInstance(result, AuthReject, payload)
        self.install()
        result, _, _ = self.first_step(self.admin.spawn().build_request(EntityType.OSD))
        self.assertIsInstance(result, AuthReject)
        self.assertEqual(self.registration.fetch_calls, 0)

    def test_continuations_are_not_retried(self):
        self.install()
        result, client, state = self.first_step()
        self.assertIsInstance(result, AuthMore)
        # a wrong answer to the challenge is a plain rejection
        rejected = self.handler.handle_request(request(b"\x01" + bytes(30), more=True, state=state))
        self.assertIsInstance(rejected, AuthReject)
        self.assertEqual(self.registration.fetch_calls, 0)

    def test_repr_names_no_secret(self):
        self.install()
        text = repr(self.handler)
        for key in self.mgr_ks._secrets[EntityType.MGR].values():
            self.assertNotIn(key.secret_bytes.hex(), text)
            self.assertNotIn(key.to_base64(), text)


class _Recorder:
    def __init__(self):
        self.events = []

    def connectionReady(self, protocol, info):
        self.events.append(("ready", protocol))

    def messageReceived(self, protocol, message):
        self.events.append(("message", type(message).__name__))

    def connectionLost(self, protocol, reason):
        self.events.append(("lost", protocol))


class _Protocol:
    def __init__(self):
        self.sent = []

    def sendMessage(self, message):
        self.sent.append(message)


class DaemonSessionsTests(TestCase):
    """The manager's answer to MMgrOpen, without a network."""

    def setUp(self):
        from msgr2tx.core.encoding import entity_name_t
        from msgr2tx.clients.mgr import DaemonSessions

        self.inner = _Recorder()
        self.sessions = DaemonSessions(self.inner, stats_period=2, stats_threshold=1)
        self.mon = entity_name_t(EntityType.MON, 0)

    def _from_mon(self, message):
        message.src = self.mon
        return message

    def test_open_answered_with_configure(self):
        from msgr2tx.messages import MMgrConfigure, MMgrOpen, MMgrReport

        p = _Protocol()
        self.sessions.connectionReady(p, None)
        self.sessions.messageReceived(p, self._from_mon(MMgrOpen(daemon_name="a", service_name="mon")))
        [answer] = p.sent
        self.assertIsInstance(answer, MMgrConfigure)
        self.assertEqual((answer.stats_period, answer.stats_threshold), (2, 1))
        self.assertEqual(self.sessions.sessions["mon.0"].daemon, "a")
        for _ in range(3):
            self.sessions.messageReceived(p, self._from_mon(MMgrReport(daemon_name="a")))
        self.assertEqual(len(p.sent), 1)  # reports are not answered
        self.assertEqual((self.sessions.opens, self.sessions.reports), (1, 3))
        self.assertEqual(self.sessions.sessions["mon.0"].reports, 3)
        # the service sees everything
        self.assertEqual(self.inner.events, [("ready", p), ("message", "MMgrOpen")] + [("message", "MMgrReport")] * 3)
        self.sessions.connectionLost(p, None)
        self.assertEqual(self.sessions.sessions, {})
        self.assertEqual(self.inner.events[-1], ("lost", p))

    def test_close_ends_the_session(self):
        from msgr2tx.messages import MMgrClose, MMgrOpen

        p = _Protocol()
        self.sessions.messageReceived(p, self._from_mon(MMgrOpen(daemon_name="a")))
        self.sessions.messageReceived(p, self._from_mon(MMgrClose(daemon_name="a")))
        self.assertEqual(self.sessions.sessions, {})
        self.assertEqual(len(p.sent), 1)

    def test_other_messages_pass_through(self):
        from msgr2tx.messages import MPing

        p = _Protocol()
        self.sessions.messageReceived(p, self._from_mon(MPing()))
        self.assertEqual(p.sent, [])
        self.assertEqual(self.inner.events, [("message", "MPing")])
