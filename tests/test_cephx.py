"""
cephx without sockets: known answers for the crypto, whole msgr2 handshakes
through L{CorePair}, rejections, malformed input, and a grep for leaked secrets.
"""

import base64
import errno
import shutil
import subprocess

from twisted.trial.unittest import SkipTest, TestCase

from msgr2tx.auth import AuthDone, AuthMore, AuthReject, AuthRequestInfo, findAuthProvider, makeClientHandler
from msgr2tx.auth import cephx_proto as P
from msgr2tx.auth.cephx import (
    CephxAuthorityHandler, CephxClientHandler, CephxKeyServer, CephxServerHandler,
    CephxServiceHandler,
)
from msgr2tx.auth.keyring import Keyring
from msgr2tx.core import events as E
from msgr2tx.core.config import ConnectionConfig
from msgr2tx.core.constants import AuthMethod, ConnectionMode
from msgr2tx.core.encoding import Decoder, EntityName, EntityType, utime_t
from msgr2tx.errors import AuthRejected, Msgr2Error
from msgr2tx.interfaces import IAuthProviderFactory, IClientAuthHandler, IServerAuthHandler
from msgr2tx.testing import CorePair

KEY_HEX = "000102030405060708090a0b0c0d0e0f"
IV_HEX = "63657068736167657975646167726567"  # "cephsageyudagreg"
# openssl enc -aes-128-cbc -K 000102...0f -iv 6365...67 <<< 'cephx known answer' (no newline)
KAT_PLAIN = b"cephx known answer"
KAT_CIPHER = "d8340ac4918c695fd2e64ac91b23882b7f567c86bfad25118d6b4f347c2edfae"
# CephXChallengeBlob{server 0x1122334455667788, client 0x0102030405060708} in the
# envelope (u8 1, magic 0xff009cad8826aa55), encrypted by openssl as above
CHALLENGE_CIPHER = "5e4c58eba0ea931c02ef662853edc6c2f3f2a82bbd504322c31b1aea04d0c8b0"
# XOR of the u64 words of u32 32 + CHALLENGE_CIPHER (first 32 bytes), by hand
CHALLENGE_FOLD = 0x028C4A6CFC16576E

ADMIN = EntityName.parse("client.admin")
# distinctive secrets, easy to grep for
ADMIN_SECRET = b"ADMINSECRET-0123"
OTHER_SECRET = b"WRONGSECRET-4567"


def kat_key():
    return P.CryptoKey(bytes.fromhex(KEY_HEX))


def make_keyring():
    ring = Keyring()
    ring.add(ADMIN, P.CryptoKey(ADMIN_SECRET, created=utime_t(1700000000, 0)),
             {"mon": "allow *", "osd": "allow rwx"})
    return ring


def request(payload, more=False, con_mode=ConnectionMode.CRC, state=None, peer=EntityType.CLIENT):
    return AuthRequestInfo(AuthMethod.CEPHX, con_mode, payload, more, peer, {} if state is None else state)


class CryptoKnownAnswerTests(TestCase):
    def test_aes_cbc_fixed_iv(self):
        self.assertEqual(P.AES_IV.hex(), IV_HEX)
        self.assertEqual(kat_key().encrypt(KAT_PLAIN).hex(), KAT_CIPHER)
        self.assertEqual(kat_key().decrypt(bytes.fromhex(KAT_CIPHER)), KAT_PLAIN)

    def test_aes_against_openssl(self):
        if shutil.which("openssl") is None:
            raise SkipTest("openssl is not installed")
        for plain in (b"", b"x" * 15, b"y" * 16, b"z" * 33):
            p = subprocess.run(["openssl", "enc", "-aes-128-cbc", "-K", KEY_HEX, "-iv", IV_HEX],
                               input=plain, capture_output=True, timeout=30)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(kat_key().encrypt(plain), p.stdout)
            self.assertEqual(kat_key().decrypt(p.stdout), plain)

    def test_padding_always_present(self):
        self.assertEqual(len(kat_key().encrypt(b"")), 16)
        self.assertEqual(len(kat_key().encrypt(b"a" * 16)), 32)

    def test_envelope(self):
        body = P.encrypt_enc_bl(kat_key(), b"\x88\x77\x66\x55\x44\x33\x22\x11\x08\x07\x06\x05\x04\x03\x02\x01")
        self.assertEqual(body.hex(), CHALLENGE_CIPHER)
        plain = kat_key().decrypt(body)
        self.assertEqual(plain[:9].hex(), "0155aa2688ad9c00ff")
        bl = P.encrypt_bl(kat_key(), b"abc")
        self.assertEqual(int.from_bytes(bl[:4], "little"), len(bl) - 4)
        self.assertEqual(P.decrypt_bl(kat_key(), Decoder(bl)), b"abc")

    def test_envelope_bad_magic(self):
        ct = kat_key().encrypt(b"\x01" + b"\x00" * 8 + b"abc")
        self.assertRaises(P.CephxError, P.decrypt_enc_bl, kat_key(), ct)
        self.assertRaises(P.CephxError, P.decrypt_enc_bl, P.CryptoKey(OTHER_SECRET), P.encrypt_enc_bl(kat_key(), b"x"))

    def test_challenge_fold(self):
        self.assertEqual(P.calc_client_server_challenge(kat_key(), 0x1122334455667788, 0x0102030405060708),
                         CHALLENGE_FOLD)

    def test_bad_ciphertext_lengths(self):
        for ct in (b"", b"x" * 15, b"x" * 17):
            self.assertRaises(P.CephxError, kat_key().decrypt, ct)

    def test_short_key_rejected(self):
        self.assertRaises(P.CephxError, P.CryptoKey, b"short")

    def test_key_encoding(self):
        key = P.CryptoKey(ADMIN_SECRET, created=utime_t(1, 2))
        self.assertEqual(key.to_bytes().hex(), "0100" + "01000000" + "02000000" + "1000" + ADMIN_SECRET.hex())
        self.assertEqual(P.CryptoKey.from_bytes(key.to_bytes()), key)


class Handshake:
    """A key server, a client and the server handler, for one test."""

    def __init__(self, key=ADMIN_SECRET, name=ADMIN):
        self.keyring = make_keyring()
        self.ks = CephxKeyServer(self.keyring)
        self.server = CephxServerHandler(self.ks)
        self.client = CephxClientHandler(name, P.CryptoKey(key))

    def pair(self, client=None, rev1=True, server_type=EntityType.MON, server=None):
        return CorePair([client or self.client], [server or self.server],
                        client_config=ConnectionConfig(revision1=rev1),
                        server_config=ConnectionConfig(entity_type=server_type, entity_num=0, revision1=rev1))


class CorePairTests(TestCase):
    def _ready(self, pair):
        pair.handshake()
        self.assertEqual(len(pair.events_of("client", E.Ready)), 1, pair.client_events)
        self.assertEqual(len(pair.events_of("server", E.Ready)), 1, pair.server_events)
        return pair.events_of("client", E.Ready)[0], pair.events_of("server", E.Ready)[0]

    def _mon_handshake(self, rev1):
        h = Handshake()
        pair = h.pair(rev1=rev1)
        c, s = self._ready(pair)
        self.assertEqual(c.con_mode, ConnectionMode.CRC)
        self.assertEqual(c.global_id, 4100)
        self.assertEqual(h.client.global_id, 4100)
        # AUTH_REQUEST, then AUTH_REQUEST_MORE
        self.assertEqual([e.more for e in pair.events_of("server", E.AuthRequestReceived)], [False, True])
        # both signatures verified under the AUTH session key
        auth = h.client.tickets.get(EntityType.AUTH)
        self.assertEqual(pair.client._session_key, auth.session_key.secret_bytes)
        self.assertEqual(pair.server._session_key, auth.session_key.secret_bytes)
        self.assertEqual(len(auth.session_key.secret_bytes), 16)
        # tickets for what MonClient wants
        for service in (EntityType.MON, EntityType.OSD, EntityType.MGR, EntityType.AUTH):
            self.assertTrue(h.client.tickets.have(service), EntityType.name(service))
        self.assertEqual(h.client.need_tickets(), 0)
        return h

    def test_mon_rev1(self):
        self._mon_handshake(True)

    def test_mon_rev0(self):
        self._mon_handshake(False)

    def test_ticket_contents(self):
        h = self._mon_handshake(True)
        info = h.ks.decode_ticket(EntityType.OSD, h.client.tickets.get(EntityType.OSD).blob)
        self.assertEqual(info.ticket.name, ADMIN)
        self.assertEqual(info.ticket.global_id, 4100)
        self.assertEqual(info.ticket.caps.as_string(), "allow rwx")
        self.assertEqual(info.session_key, h.client.tickets.get(EntityType.OSD).session_key)

    def test_reconnect_reclaims_global_id_securely(self):
        h = self._mon_handshake(True)
        old_auth = h.client.tickets.get(EntityType.AUTH).session_key
        second = h.client.spawn()
        c, _ = self._ready(h.pair(client=second))
        self.assertEqual(c.global_id, 4100)
        self.assertNotEqual(h.client.tickets.get(EntityType.AUTH).session_key, old_auth)

    def test_reclaim_without_ticket_rejected(self):
        h = Handshake()
        h.client = CephxClientHandler(ADMIN, P.CryptoKey(ADMIN_SECRET), global_id=4242)
        self._rejected(h)

    def test_reclaim_with_foreign_ticket_rejected(self):
        h = self._mon_handshake(True)
        # a second key server (another cluster) never issued this ticket
        h2 = Handshake()
        h2.client = h.client.spawn()
        self._rejected(h2)

    def test_reclaim_other_global_id_rejected(self):
        h = self._mon_handshake(True)
        h.client.tickets.global_id = 4999
        self._rejected(h, h.client.spawn())

    def _rejected(self, h, client=None):
        pair = h.pair(client=client)
        pair.handshake()
        self.assertEqual(pair.events_of("client", E.Ready), [])
        needed = pair.events_of("client", E.AuthRequestNeeded)
        self.assertEqual(len(needed), 2)
        self.assertEqual(needed[1].result, -errno.EACCES)
        return pair

    def test_wrong_key_rejected(self):
        h = Handshake(key=OTHER_SECRET)
        self._rejected(h)
        self.assertEqual(h.client.tickets.tickets, {})

    def test_unknown_entity_rejected(self):
        h = Handshake(name=EntityName.parse("client.mallory"))
        self._rejected(h)

    def test_authorizer_to_service(self):
        h = self._mon_handshake(True)
        service = CephxServiceHandler(h.ks, [EntityType.OSD])
        osd_client = h.client.spawn()
        pair = h.pair(client=osd_client, server_type=EntityType.OSD, server=service)
        c, s = self._ready(pair)
        self.assertEqual(c.global_id, 4100)
        # always challenged (CVE-2020-25660)
        self.assertEqual([e.more for e in pair.events_of("server", E.AuthRequestReceived)], [False, True])
        key = h.client.tickets.get(EntityType.OSD).session_key.secret_bytes
        self.assertEqual(pair.client._session_key, key)
        self.assertEqual(pair.server._session_key, key)

    def test_authorizer_rev0(self):
        h = self._mon_handshake(False)
        pair = h.pair(client=h.client.spawn(), rev1=False, server_type=EntityType.MGR)
        self._ready(pair)

    def test_authorizer_for_other_service_rejected(self):
        h = self._mon_handshake(True)
        service = CephxServiceHandler(h.ks, [EntityType.MDS])
        pair = CorePair([h.client.spawn()], [service],
                        server_config=ConnectionConfig(entity_type=EntityType.OSD, entity_num=0))
        pair.handshake()
        self.assertEqual(pair.events_of("client", E.Ready), [])

    def test_no_ticket_for_service(self):
        h = Handshake()
        self.assertRaises(AuthRejected, h.client.build_request, EntityType.OSD)


class AuthorizerReplayTests(TestCase):
    """CVE-2020-25660 / CVE-2018-1128: a captured authorizer is worthless."""

    def setUp(self):
        h = Handshake()
        h.pair().handshake()
        self.h = h
        self.service = CephxServiceHandler(h.ks)

    def test_replayed_request_and_answer_rejected(self):
        client = self.h.client.spawn()
        state = {}
        first = client.build_request(EntityType.OSD)
        more = self.service.handle_request(request(first, state=state, peer=EntityType.OSD))
        self.assertIsInstance(more, AuthMore)
        answer = client.handle_reply_more(more.payload)
        done = self.service.handle_request(request(answer, more=True, state=state, peer=EntityType.OSD))
        self.assertIsInstance(done, AuthDone)
        client.handle_done(done.global_id, ConnectionMode.CRC, done.payload)
        # an eavesdropper replays both frames on a new connection
        state2 = {}
        more2 = self.service.handle_request(request(first, state=state2, peer=EntityType.OSD))
        self.assertIsInstance(more2, AuthMore)
        self.assertNotEqual(more2.payload, more.payload)
        rejected = self.service.handle_request(request(answer, more=True, state=state2, peer=EntityType.OSD))
        self.assertIsInstance(rejected, AuthReject)
        self.assertEqual(rejected.result, -errno.EACCES)

    def test_preanswered_challenge_still_challenged(self):
        client = self.h.client.spawn()
        client.build_request(EntityType.OSD)
        # forge have_challenge=1 in the very first authorizer
        auth = client._authorizer
        forged = auth.base + P.encrypt_bl(auth.session_key, P.encode_authorize(auth.nonce, True, 12345))
        self.assertIsInstance(self.service.handle_request(request(forged, peer=EntityType.OSD)), AuthMore)

    def test_more_without_challenge(self):
        client = self.h.client.spawn()
        payload = client.build_request(EntityType.OSD)
        self.assertIsInstance(self.service.handle_request(request(payload, more=True, peer=EntityType.OSD)),
                              AuthReject)

    def test_bad_nonce_reply(self):
        client = self.h.client.spawn()
        client.build_request(EntityType.OSD)
        auth = client._authorizer
        bogus = P.encrypt_bl(auth.session_key, P.encode_authorize_reply(auth.nonce + 2))
        self.assertRaises(AuthRejected, client.handle_done, 4100, ConnectionMode.CRC, bogus)


class SecureModeSecretTests(TestCase):
    """No secure framing here: only that the handlers agree on a 64-byte secret."""

    def _mon(self, con_mode):
        h = Handshake()
        state = {}
        more = h.server.handle_request(request(h.client.build_request(EntityType.MON), con_mode=con_mode,
                                               state=state))
        done = h.server.handle_request(request(h.client.handle_reply_more(more.payload), more=True,
                                               con_mode=con_mode, state=state))
        self.assertIsInstance(done, AuthDone)
        session_key, secret = h.client.handle_done(done.global_id, con_mode, done.payload)
        self.assertEqual(session_key, done.session_key)
        self.assertEqual(secret, done.connection_secret)
        return h, secret

    def test_secure_secret(self):
        h, secret = self._mon(ConnectionMode.SECURE)
        self.assertEqual(len(secret), 64)
        # and for an authorizer
        client = h.client.spawn()
        service = CephxServiceHandler(h.ks)
        state = {}
        more = service.handle_request(request(client.build_request(EntityType.OSD), con_mode=2, state=state))
        done = service.handle_request(request(client.handle_reply_more(more.payload), more=True,
                                              con_mode=2, state=state))
        session_key, secret = client.handle_done(done.global_id, 2, done.payload)
        self.assertEqual(len(secret), 64)
        self.assertEqual(secret, done.connection_secret)
        self.assertEqual(session_key, h.client.tickets.get(EntityType.OSD).session_key.secret_bytes)

    def test_crc_has_no_secret(self):
        self.assertEqual(self._mon(ConnectionMode.CRC)[1], b"")

    def test_secure_without_secret_is_refused(self):
        h = Handshake()
        state = {}
        more = h.server.handle_request(request(h.client.build_request(EntityType.MON), state=state))
        done = h.server.handle_request(request(h.client.handle_reply_more(more.payload), more=True, state=state))
        # the server chose crc; a client told "secure" must not accept an empty secret
        self.assertRaises(Msgr2Error, h.client.handle_done, done.global_id, ConnectionMode.SECURE, done.payload)


class RenewalTests(TestCase):
    def test_principal_session_key_round_trip(self):
        h = Handshake()
        h.pair().handshake()
        old = h.client.tickets.get(EntityType.OSD).session_key
        payload = h.client.build_renewal_request(EntityType.OSD | EntityType.MGR)
        authority = CephxAuthorityHandler(h.ks)
        reply = authority.handle_principal_session_key(payload)
        self.assertEqual(h.client.handle_renewal_reply(reply), EntityType.OSD | EntityType.MGR)
        self.assertNotEqual(h.client.tickets.get(EntityType.OSD).session_key, old)

    def test_need_tickets_after_expiry(self):
        h = Handshake()
        h.pair().handshake()
        t = h.client.tickets.get(EntityType.OSD)
        self.assertEqual(h.client.need_tickets(t.renew_after - 1), 0)
        self.assertEqual(h.client.need_tickets(t.renew_after + 1) & EntityType.OSD, EntityType.OSD)


class MalformedInputTests(TestCase):
    """Truncated or corrupted blobs give typed msgr2tx errors, never a crash."""

    def _good_done(self, con_mode=ConnectionMode.CRC):
        h = Handshake()
        state = {}
        more = h.server.handle_request(request(h.client.build_request(EntityType.MON), state=state))
        done = h.server.handle_request(request(h.client.handle_reply_more(more.payload), more=True,
                                               state=state, con_mode=con_mode))
        return h, more.payload, done

    def test_truncated_auth_done(self):
        h, challenge, done = self._good_done()
        accepted = []
        for n in range(len(done.payload)):
            client = CephxClientHandler(ADMIN, P.CryptoKey(ADMIN_SECRET))
            client.build_request(EntityType.MON)
            client.handle_reply_more(challenge)
            try:
                client.handle_done(4100, ConnectionMode.CRC, done.payload[:n])
            except Msgr2Error:
                continue
            accepted.append(n)
        # the one valid prefix: a pre-Nautilus reply without connection secret and extra tickets
        self.assertEqual(len(accepted), 1)
        rest = Decoder(done.payload, accepted[0])
        rest.blob()
        rest.blob()
        rest.expect_end()

    def test_corrupted_auth_done(self):
        h, challenge, done = self._good_done()
        for i in range(0, len(done.payload)):
            client = CephxClientHandler(ADMIN, P.CryptoKey(ADMIN_SECRET))
            client.build_request(EntityType.MON)
            client.handle_reply_more(challenge)
            data = bytearray(done.payload)
            data[i] ^= 0x80
            try:
                client.handle_done(4100, ConnectionMode.CRC, bytes(data))
            except Msgr2Error:
                pass  # most flips are caught; CBC without a MAC cannot catch them all (CVE-2025-30156)

    def test_truncated_challenge(self):
        client = CephxClientHandler(ADMIN, P.CryptoKey(ADMIN_SECRET))
        client.build_request(EntityType.MON)
        for payload in (b"", b"\x01", b"\x01" + b"\x00" * 7):
            self.assertRaises(Msgr2Error, client.handle_reply_more, payload)

    def test_zero_challenge(self):
        client = CephxClientHandler(ADMIN, P.CryptoKey(ADMIN_SECRET))
        client.build_request(EntityType.MON)
        self.assertRaises(AuthRejected, client.handle_reply_more, b"\x01" + b"\x00" * 8)

    def test_out_of_order(self):
        client = CephxClientHandler(ADMIN, P.CryptoKey(ADMIN_SECRET))
        self.assertRaises(AuthRejected, client.handle_reply_more, b"\x01" + b"\x01" * 8)
        self.assertRaises(AuthRejected, client.handle_done, 1, 1, b"")
        client.build_request(EntityType.MON)
        self.assertRaises(AuthRejected, client.handle_done, 1, 1, b"")

    def test_server_truncated_requests(self):
        h = Handshake()
        first = h.client.build_request(EntityType.MON)
        for n in range(len(first)):
            result = h.server.handle_request(request(first[:n]))
            self.assertIsInstance(result, AuthReject)
        state = {}
        more = h.server.handle_request(request(first, state=state))
        answer = h.client.handle_reply_more(more.payload)
        for n in range(len(answer)):
            st = dict(state, cephx=dict(state["cephx"]))
            result = h.server.handle_request(request(answer[:n], more=True, state=st))
            self.assertIsInstance(result, AuthReject)
            self.assertEqual(result.result, -errno.EACCES)

    def test_server_truncated_authorizers(self):
        h = Handshake()
        h.pair().handshake()
        client = h.client.spawn()
        payload = client.build_request(EntityType.OSD)
        for n in range(len(payload)):
            self.assertIsInstance(h.server.handle_request(request(payload[:n])), AuthReject)
        for i in range(len(payload)):
            data = bytearray(payload)
            data[i] ^= 0x01
            self.assertIsInstance(h.server.handle_request(request(bytes(data))), (AuthReject, AuthMore))

    def test_garbage_mode(self):
        h = Handshake()
        self.assertIsInstance(h.server.handle_request(request(b"\x63abc")), AuthReject)

    def test_structure_decoders(self):
        good = P.TicketBlob(7, b"blob").to_bytes()
        for n in range(len(good)):
            self.assertRaises(Msgr2Error, P.TicketBlob.decode, Decoder(good[:n]))
        self.assertRaises(Msgr2Error, P.decode_authorize_reply, b"\x02" + b"\x00" * 8 + b"\xff\xff\xff\xff")
        self.assertRaises(Msgr2Error, P.ServiceTicketInfo.from_bytes, b"\x01\x02")
        self.assertRaises(Msgr2Error, P.parse_service_ticket_reply, kat_key(),
                          Decoder(b"\x01\xff\xff\xff\xff"))


class NoSecretsLeakTests(TestCase):
    """Every repr, str, reject reason and exception text is free of key material."""

    def _forms(self, secret: bytes):
        forms = {secret.hex(), secret.hex().upper(), base64.b64encode(secret).decode(), repr(secret)[2:-1]}
        if len(secret) >= 8:
            forms.add(secret[:8].hex())
        return forms

    def test_grep(self):
        h = Handshake()
        texts = []
        pair = h.pair()
        pair.handshake()
        secrets = {ADMIN_SECRET, OTHER_SECRET}
        for t in h.client.tickets.tickets.values():
            secrets.add(t.session_key.secret_bytes)
            secrets.add(t.blob.blob)
            texts += [repr(t), str(t), repr(t.blob), repr(t.session_key)]
        for service in (EntityType.AUTH, EntityType.OSD):
            sid, secret = h.ks.current_secret(service)
            secrets.add(secret.secret_bytes)
        # secure-mode secrets through the handlers
        state = {}
        client = h.client.spawn()
        more = h.server.handle_request(request(client.build_request(EntityType.MON), con_mode=2, state=state))
        done = h.server.handle_request(request(client.handle_reply_more(more.payload), more=True, con_mode=2,
                                               state=state))
        secrets.add(done.connection_secret)
        secrets.add(done.session_key)
        texts += [repr(more), repr(done), str(done)]
        # rejections and failures with the wrong key
        bad = Handshake(key=OTHER_SECRET)
        st = {}
        more = bad.server.handle_request(request(bad.client.build_request(EntityType.MON), state=st))
        rej = bad.server.handle_request(request(bad.client.handle_reply_more(more.payload), more=True, state=st))
        self.assertIsInstance(rej, AuthReject)
        self.assertIn("client.admin", rej.reason)
        texts += [repr(rej), str(rej), rej.reason]
        wrong = CephxClientHandler(ADMIN, P.CryptoKey(OTHER_SECRET))
        wrong.build_request(EntityType.MON)
        wrong.handle_reply_more(more.payload)
        e = self.assertRaises(Msgr2Error, wrong.handle_done, 4100, 1, done.payload)
        texts += [str(e), repr(e)]
        for n in (3, 20, 60, len(done.payload) - 5):
            fresh = CephxClientHandler(ADMIN, P.CryptoKey(ADMIN_SECRET))
            fresh.build_request(EntityType.MON)
            fresh.handle_reply_more(more.payload)
            try:
                fresh.handle_done(4100, 1, done.payload[:n])
            except Msgr2Error as err:
                texts += [str(err), repr(err)]
        client.build_request(EntityType.OSD)
        texts += [repr(h.client), str(h.client), repr(client), repr(client._authorizer), repr(h.client.tickets),
                  repr(h.ks), str(h.ks), repr(h.server), repr(h.server.authority), repr(h.server.service),
                  repr(h.keyring), repr(h.keyring.entry(ADMIN)), repr(h.keyring.get(ADMIN)),
                  repr(P.Authenticate(1, 2, h.client.tickets.get(EntityType.AUTH).blob, 3)),
                  repr(h.ks.decode_ticket(EntityType.OSD, h.client.tickets.get(EntityType.OSD).blob))]
        blob = "\n".join(texts)
        self.assertIn("client.admin", blob)
        for secret in secrets:
            self.assertTrue(secret)
            for form in self._forms(secret):
                self.assertNotIn(form, blob)
        self.assertNotIn("ADMINSECRET", blob)
        self.assertNotIn("WRONGSECRET", blob)

    def test_not_picklable(self):
        import pickle
        h = Handshake()
        self.assertRaises(TypeError, pickle.dumps, h.client)
        self.assertRaises(TypeError, pickle.dumps, P.CryptoKey(ADMIN_SECRET))


class PluginTests(TestCase):
    def test_discovery_and_argstring(self):
        provider = findAuthProvider("cephx")
        self.assertTrue(IAuthProviderFactory.providedBy(provider))
        self.assertEqual(provider.methodID, AuthMethod.CEPHX)
        import os
        import tempfile
        d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, d)
        path = os.path.join(d, "keyring")
        make_keyring().save(path)
        client = makeClientHandler("cephx:keyring=%s:name=client.admin" % path)
        self.assertTrue(IClientAuthHandler.providedBy(client))
        self.assertEqual(client.name, ADMIN)
        client2 = provider.clientHandler("keyring=%s" % path, name=ADMIN)
        server = provider.serverHandler("keyring=%s" % path)
        self.assertTrue(IServerAuthHandler.providedBy(server))
        pair = CorePair([client2], [server])
        pair.handshake()
        self.assertEqual(len(pair.events_of("client", E.Ready)), 1)
        self.assertRaises(Msgr2Error, provider.clientHandler, "keyring=%s:name=client.nobody" % path)
        self.assertRaises(Msgr2Error, provider.clientHandler, "")
        self.assertRaises(ValueError, provider.serverHandler, "keyring=/nonexistent")
