"""
cephx without sockets: known answers for the crypto, whole msgr2 handshakes
through L{CorePair}, rejections, malformed input, and a grep for leaked secrets.
"""

import base64
import errno
import shutil
import struct
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
from msgr2tx.errors import AuthRejected, DecodeError, Msgr2Error
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


# --- rotating service secrets (CEPHX_GET_ROTATING_KEY) ------------------------------

MGR_X = EntityName.parse("mgr.x")
MGR_SECRET = b"MGRXSECRET-89ab!"
ROTATING_SECRET = b"ROTATING-SECRET!"
#: a fixed clock: every key, ticket and expiration below is a whole second
NOW = 1700000000.0


def _forms(secret):
    """The ways a secret could show up in text."""
    return {secret.hex(), secret.hex().upper(), base64.b64encode(secret).decode(), repr(secret)[2:-1]}


def mgr_keyring():
    ring = make_keyring()
    ring.add(MGR_X, P.CryptoKey(MGR_SECRET, created=utime_t(1700000000, 0)), {"mon": "allow profile mgr"})
    return ring


class RotatingSecretsTests(TestCase):
    """The RotatingSecrets encoding, against a layout built with struct alone."""

    def sample(self):
        key = P.CryptoKey(ROTATING_SECRET, created=utime_t(1700000000, 5))
        other = P.CryptoKey(OTHER_SECRET, created=utime_t(1699996400, 0))
        # given out of order: a std::map is encoded in key order
        return P.RotatingSecrets({7: (key, 1700003600.0), 6: (other, 1700000000.0)}, max_ver=7)

    def expected_bytes(self):
        def entry(secret_id, secret, created_sec, created_nsec, expiration):
            return (struct.pack("<QB", secret_id, 1)                       # id, ExpiringCryptoKey v1
                    + struct.pack("<HIIH", 1, created_sec, created_nsec, 16) + secret  # CryptoKey (AES)
                    + struct.pack("<II", expiration, 0))                   # utime_t expiration
        return (struct.pack("<BI", 1, 2)                                   # struct_v 1, two secrets
                + entry(6, OTHER_SECRET, 1699996400, 0, 1700000000)
                + entry(7, ROTATING_SECRET, 1700000000, 5, 1700003600)
                + struct.pack("<Q", 7))                                    # max_ver

    def test_layout(self):
        self.assertEqual(self.sample().to_bytes(), self.expected_bytes())

    def test_decode_layout(self):
        dec = Decoder(self.expected_bytes() + b"tail")
        got = P.RotatingSecrets.decode(dec)
        self.assertEqual(dec.remaining(), 4)
        self.assertEqual(sorted(got.secrets), [6, 7])
        self.assertEqual(got.max_ver, 7)
        key, expiration = got.secrets[7]
        self.assertEqual(key, P.CryptoKey(ROTATING_SECRET))
        self.assertEqual(key.created, utime_t(1700000000, 5))
        self.assertEqual(expiration, 1700003600.0)
        self.assertEqual(got.secrets[6][1], 1700000000.0)
        self.assertEqual(got.expires(), 1700003600.0)

    def test_round_trip(self):
        rs = self.sample()
        back = P.RotatingSecrets.decode(Decoder(rs.to_bytes()))
        self.assertEqual(back.keys(), rs.keys())
        self.assertEqual(back.max_ver, rs.max_ver)
        self.assertEqual({i: exp for i, (_, exp) in back.secrets.items()},
                         {i: exp for i, (_, exp) in rs.secrets.items()})
        self.assertEqual(back.to_bytes(), rs.to_bytes())
        self.assertEqual(len(back), 2)

    def test_empty(self):
        rs = P.RotatingSecrets()
        self.assertEqual(rs.to_bytes(), struct.pack("<BIQ", 1, 0, 0))
        self.assertEqual(len(P.RotatingSecrets.decode(Decoder(rs.to_bytes()))), 0)
        self.assertEqual(rs.expires(), 0.0)

    def test_every_truncation_is_a_decode_error(self):
        data = self.expected_bytes()
        for n in range(len(data)):
            try:
                P.RotatingSecrets.decode(Decoder(data[:n]))
            except DecodeError:
                continue
            except Exception as e:
                self.fail("%d of %d bytes raised %s, not DecodeError" % (n, len(data), type(e).__name__))
            self.fail("%d of %d bytes decoded" % (n, len(data)))

    def test_malformed(self):
        data = self.expected_bytes()
        self.assertRaises(P.CephxDecodeError, P.RotatingSecrets.decode, Decoder(b"\x00" + data[1:]))  # struct_v 0
        huge = struct.pack("<BI", 1, 0xFFFFFFFF) + data[5:]
        self.assertRaises(DecodeError, P.RotatingSecrets.decode, Decoder(huge))
        bad_entry = bytearray(data)
        bad_entry[5 + 8] = 0  # ExpiringCryptoKey struct_v 0
        self.assertRaises(DecodeError, P.RotatingSecrets.decode, Decoder(bytes(bad_entry)))

    def test_repr_has_ids_not_secrets(self):
        rs = self.sample()
        for text in (repr(rs), str(rs)):
            self.assertIn("ids=[6, 7]", text)
            self.assertIn("max_ver=7", text)
            for secret in (ROTATING_SECRET, OTHER_SECRET):
                for form in _forms(secret):
                    self.assertNotIn(form, text)
            for key in rs.keys().values():
                self.assertNotIn(key.to_base64(), text)
        self.assertNotIn("SECRET", repr(rs))

    def test_not_picklable(self):
        import pickle
        self.assertRaises(TypeError, pickle.dumps, self.sample())

    def test_rotating_reply_layout(self):
        rs = self.sample()
        reply = P.build_rotating_reply(kat_key(), rs)
        self.assertEqual(reply[:6], struct.pack("<Hi", P.CEPHX_GET_ROTATING_KEY, 0))
        (length,) = struct.unpack_from("<I", reply, 6)
        self.assertEqual(length, len(reply) - 10)
        # the envelope under the entity key holds exactly the encoding
        self.assertEqual(P.decrypt_enc_bl(kat_key(), reply[10:]), self.expected_bytes())
        self.assertEqual(P.encode_rotating_request(), struct.pack("<H", 0x0400))

    def test_parse_rotating_reply_checks(self):
        rs = self.sample()
        dec = Decoder(P.build_rotating_reply(kat_key(), rs), 6)
        self.assertEqual(P.parse_rotating_reply(kat_key(), dec).keys(), rs.keys())
        trailing = P.encrypt_bl(kat_key(), rs.to_bytes() + b"\x00")
        self.assertRaises(P.CephxDecodeError, P.parse_rotating_reply, kat_key(), Decoder(trailing))
        self.assertRaises(P.CephxError, P.parse_rotating_reply, P.CryptoKey(OTHER_SECRET),
                          Decoder(P.encrypt_bl(kat_key(), rs.to_bytes())))


class RotatingFetchTests(TestCase):
    """A daemon fetches its service's rotating secrets from an authority, without I/O."""

    def setUp(self):
        self.ks = CephxKeyServer(mgr_keyring(), clock=lambda: NOW)
        self.authority = CephxAuthorityHandler(self.ks)
        self.client = CephxClientHandler(MGR_X, P.CryptoKey(MGR_SECRET))

    def fetch(self, client=None):
        client = client or self.client
        result_bl = self.authority.handle_rotating_request(MGR_X, client.build_rotating_request())
        return client.handle_rotating_reply(result_bl)

    def assertSameSecrets(self, got, want):
        self.assertEqual(sorted(got.secrets), sorted(want.secrets))
        self.assertEqual(got.keys(), want.keys())
        self.assertEqual(got.max_ver, want.max_ver)
        for secret_id, (key, expiration) in want.secrets.items():
            self.assertEqual(got.secrets[secret_id][0].created, key.created)
            self.assertEqual(got.secrets[secret_id][1], expiration)

    def test_request_payload(self):
        self.assertEqual(self.client.build_rotating_request(), struct.pack("<H", P.CEPHX_GET_ROTATING_KEY))

    def test_fetch(self):
        got = self.fetch()
        self.assertSameSecrets(got, self.ks.rotating_secrets(EntityType.MGR))
        secret_id, secret = self.ks.current_secret(EntityType.MGR)
        self.assertEqual(got.keys()[secret_id], secret)
        self.assertEqual(got.max_ver, secret_id)
        self.assertEqual(got.secrets[secret_id][1], NOW + self.ks.service_ttl)

    def test_fetch_after_rotations(self):
        first = self.fetch()
        for _ in range(3):
            self.ks.rotate(EntityType.MGR)
        got = self.fetch()
        self.assertSameSecrets(got, self.ks.rotating_secrets(EntityType.MGR))
        self.assertEqual(sorted(got.secrets), [2, 3, 4])
        self.assertNotIn(min(first.secrets), got.secrets)

    def test_result_header(self):
        result_bl = self.authority.handle_rotating_request(MGR_X, self.client.build_rotating_request())
        self.assertEqual(result_bl[:6], struct.pack("<Hi", P.CEPHX_GET_ROTATING_KEY, 0))
        # sealed under mgr.x's own key, nothing in the clear
        self.assertNotIn(self.ks.current_secret(EntityType.MGR)[1].secret_bytes, result_bl)

    def test_wrong_key(self):
        wrong = CephxClientHandler(MGR_X, P.CryptoKey(OTHER_SECRET))
        result_bl = self.authority.handle_rotating_request(MGR_X, wrong.build_rotating_request())
        e = self.assertRaises(P.CephxError, wrong.handle_rotating_reply, result_bl)
        for form in _forms(MGR_SECRET) | _forms(OTHER_SECRET):
            self.assertNotIn(form, str(e))

    def test_client_refused(self):
        payload = self.client.build_rotating_request()
        self.assertRaises(P.CephxError, self.authority.handle_rotating_request, ADMIN, payload)
        self.assertRaises(P.CephxError, self.authority.handle_rotating_request,
                          EntityName.parse("auth.x"), payload)

    def test_unknown_entity_refused(self):
        payload = self.client.build_rotating_request()
        for name in ("mgr.y", "osd.0"):
            self.assertRaises(P.CephxError, self.authority.handle_rotating_request, EntityName.parse(name), payload)

    def test_not_a_rotating_request(self):
        self.assertRaises(P.CephxDecodeError, self.authority.handle_rotating_request, MGR_X,
                          struct.pack("<H", P.CEPHX_GET_AUTH_SESSION_KEY))
        self.assertRaises(DecodeError, self.authority.handle_rotating_request, MGR_X, b"\x00")

    def test_reply_header_checked(self):
        body = P.encrypt_bl(P.CryptoKey(MGR_SECRET), self.ks.rotating_secrets(EntityType.MGR).to_bytes())
        other_type = struct.pack("<Hi", P.CEPHX_GET_PRINCIPAL_SESSION_KEY, 0) + body
        self.assertRaises(P.CephxDecodeError, self.client.handle_rotating_reply, other_type)
        refused = struct.pack("<Hi", P.CEPHX_GET_ROTATING_KEY, -errno.EPERM) + body
        self.assertRaises(AuthRejected, self.client.handle_rotating_reply, refused)

    def test_truncated_reply(self):
        result_bl = self.authority.handle_rotating_request(MGR_X, self.client.build_rotating_request())
        for n in range(len(result_bl)):
            try:
                self.client.handle_rotating_reply(result_bl[:n])
            except DecodeError:
                continue
            except Exception as e:
                self.fail("%d of %d bytes raised %s, not DecodeError" % (n, len(result_bl), type(e).__name__))
            self.fail("%d of %d bytes were accepted" % (n, len(result_bl)))


def log_in_admin(key_server):
    """client.admin authenticated by an authority on C{key_server} (no I/O): its handler, tickets in hand."""
    server = CephxServerHandler(key_server)
    client = CephxClientHandler(ADMIN, P.CryptoKey(ADMIN_SECRET))
    state = {}
    more = server.handle_request(request(client.build_request(EntityType.MON), state=state))
    done = server.handle_request(request(client.handle_reply_more(more.payload), more=True, state=state))
    if not isinstance(done, AuthDone):
        raise AssertionError("client.admin was not authenticated: %r" % (done,))
    client.handle_done(done.global_id, ConnectionMode.CRC, done.payload)
    return client


class ManagerFixture:
    """
    An authority (C{ks}, C{authority}) holding mgr.x, and a manager: its
    client towards the authority (C{mgr_client}), its own key server
    (C{mgr_ks}) and its service-only cephx handler (C{mgr}).  No I/O.
    """

    def set_up_manager(self):
        clock = lambda: NOW  # noqa: E731
        self.ks = CephxKeyServer(mgr_keyring(), clock=clock)
        self.authority = CephxAuthorityHandler(self.ks)
        self.mgr_client = CephxClientHandler(MGR_X, P.CryptoKey(MGR_SECRET))
        self.mgr_ks = CephxKeyServer(Keyring(), own_name=MGR_X, clock=clock)
        self.mgr = findAuthProvider("cephx").serverHandler(
            key_server=self.mgr_ks, authority=False, service_ids=(EntityType.MGR,))

    def fetch_and_install(self):
        """The manager fetches the authority's rotating MGR secrets and installs them."""
        result_bl = self.authority.handle_rotating_request(MGR_X, self.mgr_client.build_rotating_request())
        secrets = self.mgr_client.handle_rotating_reply(result_bl)
        self.mgr_ks.install_rotating(EntityType.MGR, secrets)
        return secrets


class RotatingServiceTests(ManagerFixture, TestCase):
    """
    A manager (a second key server, no authority role) checks authorizers
    for tickets the authority sealed, with the rotating secrets it fetched.
    """

    def setUp(self):
        self.set_up_manager()
        self.admin = self.log_in_admin()

    def log_in_admin(self):
        client = log_in_admin(self.ks)
        self.assertTrue(client.tickets.have(EntityType.MGR, NOW))
        return client

    def authorize(self, service=EntityType.MGR, con_mode=ConnectionMode.CRC):
        """One authorizer exchange with the manager, challenge round included."""
        client = self.admin.spawn()
        state = {}
        first = self.mgr.handle_request(request(client.build_request(service), con_mode=con_mode, state=state))
        if not isinstance(first, AuthMore):
            return first, client
        answer = client.handle_reply_more(first.payload)
        return self.mgr.handle_request(request(answer, more=True, con_mode=con_mode, state=state)), client

    def assertAccepted(self, con_mode=ConnectionMode.CRC):
        done, client = self.authorize(con_mode=con_mode)
        self.assertIsInstance(done, AuthDone)
        self.assertEqual(done.name, ADMIN)
        self.assertEqual(done.global_id, self.admin.global_id)
        session_key, secret = client.handle_done(done.global_id, con_mode, done.payload)
        ticket = self.admin.tickets.get(EntityType.MGR)
        self.assertEqual(session_key, ticket.session_key.secret_bytes)
        self.assertEqual(done.session_key, session_key)
        self.assertEqual(secret, done.connection_secret)
        return secret

    def assertRejected(self, service=EntityType.MGR):
        result, _ = self.authorize(service)
        self.assertIsInstance(result, AuthReject)
        self.assertEqual(result.result, -errno.EACCES)
        return result

    def test_handler_shape(self):
        self.assertIsInstance(self.mgr, CephxServerHandler)
        self.assertIsNone(self.mgr.authority)
        self.assertIs(self.mgr.key_server, self.mgr_ks)
        self.assertEqual(self.mgr.service.service_ids, frozenset([EntityType.MGR]))

    def test_without_secrets_rejected(self):
        self.assertRejected()

    def test_installed_secrets_open_tickets(self):
        secrets = self.fetch_and_install()
        self.assertIn(self.admin.tickets.get(EntityType.MGR).blob.secret_id, secrets.secrets)
        self.assertAccepted()
        self.assertEqual(len(self.assertAccepted(ConnectionMode.SECURE)), 64)
        # what the manager now holds is exactly what it fetched
        self.assertEqual(self.mgr_ks.rotating_secrets(EntityType.MGR).keys(), secrets.keys())

    def test_challenge_always_sent(self):
        self.fetch_and_install()
        client = self.admin.spawn()
        first = self.mgr.handle_request(request(client.build_request(EntityType.MGR)))
        self.assertIsInstance(first, AuthMore)
        # answering without the challenge state of this connection fails
        rejected = self.mgr.handle_request(request(client.handle_reply_more(first.payload), more=True))
        self.assertIsInstance(rejected, AuthReject)

    def test_dropped_secret_rejects_old_ticket(self):
        self.fetch_and_install()
        self.assertAccepted()
        old_id = self.admin.tickets.get(EntityType.MGR).blob.secret_id
        for _ in range(3):
            self.ks.rotate(EntityType.MGR)
        secrets = self.fetch_and_install()
        self.assertNotIn(old_id, secrets.secrets)
        self.assertRejected()
        # a renewed ticket is sealed with the current secret, which the manager has
        reply = self.authority.handle_principal_session_key(self.admin.build_renewal_request(EntityType.MGR))
        self.assertEqual(self.admin.handle_renewal_reply(reply), EntityType.MGR)
        self.assertEqual(self.admin.tickets.get(EntityType.MGR).blob.secret_id, max(secrets.secrets))
        self.assertAccepted()

    def test_empty_secrets_refused(self):
        self.fetch_and_install()
        self.assertRaises(P.CephxError, self.mgr_ks.install_rotating, EntityType.MGR, P.RotatingSecrets())
        # and the installed ones stay in force
        self.assertAccepted()

    def test_other_services_rejected(self):
        self.fetch_and_install()
        self.assertRejected(EntityType.OSD)

    def test_no_monitor_role(self):
        client = CephxClientHandler(ADMIN, P.CryptoKey(ADMIN_SECRET))
        result = self.mgr.handle_request(request(client.build_request(EntityType.MON)))
        self.assertIsInstance(result, AuthReject)

    def test_foreign_cluster_ticket_rejected(self):
        # another authority's secrets under the same ids open nothing
        other = CephxKeyServer(mgr_keyring(), clock=lambda: NOW)
        self.mgr_ks.install_rotating(EntityType.MGR, other.rotating_secrets(EntityType.MGR))
        self.assertEqual(sorted(other.rotating_secrets(EntityType.MGR).secrets),
                         sorted(self.ks.rotating_secrets(EntityType.MGR).secrets))
        self.assertRejected()
