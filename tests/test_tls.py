"""
msgr2 carried through TLS with Twisted's endpoints: the server listens with
C{ssl:} (C{twistd msgr2 --listen ssl:...}), the client dials with C{tls:}
(C{connect(..., via=)}, the CLI's C{--via}) and checks the server's
certificate against the host name through service-identity.  The
certificates are made here with C{cryptography}: a CA, a server
certificate for localhost/127.0.0.1 and one for another name.
"""

import datetime
import ipaddress
import os
import shutil
import subprocess
import sys
import tempfile

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twisted.internet import defer, reactor
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import ISSLTransport
from twisted.trial.unittest import TestCase

from msgr2tx import ConnectionConfig, EchoReceiver, EntityName, EntityType, MPing, Msgr2ServerFactory, connect
from msgr2tx.auth.none import NoneClientHandler, NoneServerHandler
from tests import cephlab

ADMIN = EntityName.parse("client.admin")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_pem(path, data):
    with open(path, "wb") as f:
        f.write(data)


def make_pki(directory):
    """A CA (in ``cadir/``) and two server certificates: ``localhost`` and ``other``."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("msgr2tx test CA")).issuer_name(_name("msgr2tx test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    os.makedirs(os.path.join(directory, "cadir"))
    _write_pem(os.path.join(directory, "cadir", "ca.pem"), ca.public_bytes(serialization.Encoding.PEM))
    for name, sans in (("localhost", [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       ("other", [x509.DNSName("other.example")])):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder().subject_name(_name(name)).issuer_name(ca.subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName(sans), critical=False)
                .sign(ca_key, hashes.SHA256()))
        _write_pem(os.path.join(directory, name + ".key"), key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()))
        _write_pem(os.path.join(directory, name + ".pem"), cert.public_bytes(serialization.Encoding.PEM))


class _Answers:
    def __init__(self):
        self.got = defer.Deferred()

    def connectionReady(self, protocol, info):
        pass

    def messageReceived(self, protocol, message):
        if not self.got.called:
            self.got.callback(message)

    def connectionLost(self, protocol, reason):
        pass


class TLSTunnelTests(TestCase):
    timeout = 60

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="msgr2tx-tls-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        make_pki(self.dir)
        self.cadir = os.path.join(self.dir, "cadir")

    @defer.inlineCallbacks
    def listen(self, cert):
        factory = Msgr2ServerFactory([NoneServerHandler()], EchoReceiver(),
                                     ConnectionConfig(entity_type=EntityType.MON, entity_num=0))
        description = "ssl:0:interface=127.0.0.1:privateKey=%s:certKey=%s" % (
            os.path.join(self.dir, cert + ".key"), os.path.join(self.dir, cert + ".pem"))
        port = yield serverFromString(reactor, description).listen(factory)
        self.addCleanup(port.stopListening)
        self.server_lost = []

        def track(protocol):
            d = defer.Deferred()
            protocol.notifyOnLost(lambda: d.called or d.callback(None))
            self.server_lost.append(d)
        factory.onProtocol = track
        return port.getHost().port

    def close(self, protocol):
        """Drop the client's connection and wait until both ends are gone."""
        d = defer.Deferred()
        protocol.notifyOnLost(lambda: d.called or d.callback(None))
        protocol.transport.abortConnection()
        return defer.DeferredList([d] + self.server_lost)

    @defer.inlineCallbacks
    def test_echo_through_tls(self):
        port = yield self.listen("localhost")
        answers = _Answers()
        p = yield connect(reactor, "v2:127.0.0.1:%d" % port, [NoneClientHandler(ADMIN)], ConnectionConfig(),
                          receiver=answers, timeout=20,
                          via="tls:host=localhost:port=%d:trustRoots=%s" % (port, self.cadir))
        self.addCleanup(self.close, p)
        self.assertTrue(ISSLTransport.providedBy(p.transport))
        self.assertEqual(str(p.info.peer_name), "mon.0")
        p.sendMessage(MPing())
        echoed = yield answers.got
        self.assertIsInstance(echoed, MPing)

    @defer.inlineCallbacks
    def test_certificate_for_another_host_is_refused(self):
        from service_identity.exceptions import VerificationError
        port = yield self.listen("other")
        d = connect(reactor, "v2:127.0.0.1:%d" % port, [NoneClientHandler(ADMIN)], ConnectionConfig(),
                    timeout=20, via="tls:host=localhost:port=%d:trustRoots=%s" % (port, self.cadir))
        yield self.assertFailure(d, VerificationError)

    @defer.inlineCallbacks
    def test_untrusted_ca_is_refused(self):
        from OpenSSL import SSL
        port = yield self.listen("localhost")
        d = connect(reactor, "v2:127.0.0.1:%d" % port, [NoneClientHandler(ADMIN)], ConnectionConfig(),
                    timeout=20, via="tls:host=localhost:port=%d" % port)   # the system CAs only
        yield self.assertFailure(d, SSL.Error)


def _run(*argv):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    return subprocess.run([sys.executable, "-m", "msgr2tx", *argv], capture_output=True, text=True, timeout=60,
                          env=env)


class TwistdAndCliTests(TestCase):
    """C{twistd msgr2 --listen ssl:...} and C{msgr2tx ping --via tls:...}, with the errors in words."""

    timeout = 120

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="msgr2tx-tls-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        make_pki(self.dir)
        self.cadir = os.path.join(self.dir, "cadir")

    def twistd(self, cert):
        from tests.test_interop_pacific import TwistdServer
        server = TwistdServer("--auth", "none")
        server.argv[server.argv.index("--listen") + 1] = "ssl:%d:interface=127.0.0.1:privateKey=%s:certKey=%s" % (
            server.port, os.path.join(self.dir, cert + ".key"), os.path.join(self.dir, cert + ".pem"))
        server.start()
        self.addCleanup(server.stop)
        return server.port

    def test_ping_through_tls(self):
        port = self.twistd("localhost")
        p = _run("ping", "v2:127.0.0.1:%d" % port, "--auth", "none", "--count", "2",
                 "--via", "tls:host=localhost:port=%d:trustRoots=%s" % (port, self.cadir))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(p.stdout.startswith("connected to v2:127.0.0.1:%d (mon.0)" % port), p.stdout)

    def test_errors_in_words(self):
        port = self.twistd("other")
        p = _run("ping", "v2:127.0.0.1:%d" % port, "--auth", "none",
                 "--via", "tls:host=localhost:port=%d:trustRoots=%s" % (port, self.cadir))
        self.assertEqual((p.returncode, p.stdout), (1, ""))
        self.assertEqual(p.stderr, "msgr2tx: error: the TLS certificate of localhost:%d does not name the host "
                                   "localhost: check host= in --via (it must be a name or address the certificate "
                                   "lists), or give the server a certificate for that name\n" % port)
        # the right name, but a CA that is not among the system's
        port = self.twistd("localhost")
        p = _run("ping", "v2:127.0.0.1:%d" % port, "--auth", "none", "--via", "tls:host=localhost:port=%d" % port)
        self.assertEqual((p.returncode, p.stdout), (1, ""))
        self.assertEqual(p.stderr, "msgr2tx: error: the TLS certificate of localhost:%d is not signed by a CA we "
                                   "trust: add trustRoots=DIR to --via (a directory of PEM CA certificates), or use "
                                   "a certificate from a CA in the system store\n" % port)
        # a plain msgr2 port dialled with TLS
        plain = cephlab.free_port()
        from tests.test_interop_pacific import TwistdServer
        server = TwistdServer("--auth", "none")
        server.argv[server.argv.index("--listen") + 1] = "tcp:%d:interface=127.0.0.1" % plain
        server.port = plain
        server.start()
        self.addCleanup(server.stop)
        p = _run("ping", "v2:127.0.0.1:%d" % plain, "--auth", "none", "--timeout", "10",
                 "--via", "tls:host=localhost:port=%d:trustRoots=%s" % (plain, self.cadir))
        self.assertEqual((p.returncode, p.stdout), (1, ""))
        self.assertTrue(p.stderr.startswith("msgr2tx: error: the TLS handshake with localhost:%d failed" % plain),
                        p.stderr)
