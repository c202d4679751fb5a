"""
cephx aes256k (key type 2): RFC 8009 known answers, Ceph's use of them
(key usages, envelope, challenge), and msgr2tx <-> msgr2tx with aes256k keys
in every cephx role: authority, client, authorizers, renewal, rotating
secrets and the manager's service role, plus the cipher policy.
"""

import base64
import errno
import hashlib
import hmac
import json
import os
import struct

from cryptography.hazmat.primitives import hashes
from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase

from msgr2tx.auth import AuthDone, AuthMore, AuthReject, AuthRequestInfo, findAuthProvider
from msgr2tx.auth import aes256k as K
from msgr2tx.auth import cephx_proto as P
from msgr2tx.auth.cephx import (
    CephxAuthorityHandler, CephxClientHandler, CephxKeyServer, CephxServerHandler, CephxServiceHandler,
    CipherPolicy,
)
from msgr2tx.auth.keyring import Keyring
from msgr2tx.client import connect
from msgr2tx.core import events as E
from msgr2tx.core.config import ConnectionConfig
from msgr2tx.core.constants import AuthMethod, ConnectionMode
from msgr2tx.core.encoding import Decoder, EntityName, EntityType, utime_t
from msgr2tx.messages import MPing
from msgr2tx.errors import AuthBadMethod, Msgr2Error
from msgr2tx.factory import Msgr2ServerFactory
from msgr2tx.services import EchoReceiver
from msgr2tx.testing import CorePair

# RFC 8009 Appendix A (the same values are in Ceph 20.2.4's src/test/crypto.cc)
RFC_KEY_256 = "6D404D37FAF79F9DF0D33568D320669800EB4836472EA8A026D16B7182460C52"
RFC_KEY_128 = "3705D96080C17728A0E800EAB6E0D23C"
RFC_DERIVED_256 = {  # usage 2
    0x99: "EF5718BE86CC84963D8BBB5031E9F5C4BA41F28FAF69E73D",
    0xAA: "56AB22BEE63D82D7BC5227F6773F8EA7A5EB1C825160C38312980C442E5C7E49",
    0x55: "69B16514E3CD8E56B82010D5C73012B622C4D00FFC23ED1F",
}
RFC_DERIVED_128 = {  # usage 2, aes128-cts-hmac-sha256-128 (KDF with SHA-256)
    0x99: "B31A018A48F54776F403E9A396325DC3",
    0xAA: "9B197DD1E8C5609D6E67C3E37C62C72E",
    0x55: "9FDA0E56AB2D85E1569A688696C26A6C",
}
# (confounder, plaintext, ciphertext), usage 2, aes256-cts-hmac-sha384-192
RFC_ENCRYPTIONS = [
    ("F764E9FA15C276478B2C7D0C4E5F58E4", "",
     "41F53FA5BFE7026D91FAF9BE959195A058707273A96A40F0A01960621AC612748B9BBFBE7EB4CE3C"),
    ("B80D3251C1F6471494256FFE712D0B9A", "000102030405",
     "4ED7B37C2BCAC8F74F23C1CF07E62BC7B75FB3F637B9F559C7F664F69EAB7B6092237526EA0D1F61CB20D69D10F2"),
    ("53BF8A0D105265D4E276428624CE5E63", "000102030405060708090A0B0C0D0E0F",
     "BC47FFEC7998EB91E8115CF8D19DAC4BBBE2E163E87DD37F49BECA92027764F6"
     "8CF51F14D798C2273F35DF574D1F932E40C4FF255B36A266"),
    ("763E65367E864F02F55153C7E3B58AF1", "000102030405060708090A0B0C0D0E0F1011121314",
     "40013E2DF58E8751957D2878BCD2D6FE101CCFD556CB1EAE79DB3C3EE86429F2"
     "B2A602AC86FEF6ECB647D6295FAE077A1FEB517508D2C16B4192E01F62"),
]
RFC_CHECKSUM = "45EE791567EEFCA37F4AC1E0222DE80D43C3BFA06699672A"  # hmac-sha384-192 of 00..14
RFC_PRF = ("9801F69A368C2BF675E59521E177D9A07F67EFE1CFDE8D3C8D6F6A0256E3B17D"
           "B3C1B62AD1B8553360D17367EB1514D2")  # PRF(key, "test")

# RFC 3962 Appendix B: AES-128 "chicken teriyaki", IV 0, CBC-CS3
CTS_KEY = b"chicken teriyaki"
CTS_TEXT = b"I would like the General Gau's Chicken, please, and wonton soup."
CTS_VECTORS = [
    (17, "c6353568f2bf8cb4d8a580362da7ff7f97"),
    (31, "fc00783e0efdb2c1d445d4c8eff7ed2297687268d6ecccc0c07b25e25ecfe5"),
    (32, "39312523a78662d5be7fcbcc98ebf5a897687268d6ecccc0c07b25e25ecfe584"),
]

ADMIN = EntityName.parse("client.admin")
MGR_X = EntityName.parse("mgr.x")
# distinctive secrets, easy to grep for
ADMIN_SECRET_256 = b"AES256K-ADMIN-SECRET-0123456789a"
MGR_SECRET_256 = b"AES256K-MGR-X-SECRET-0123456789a"
ADMIN_SECRET_128 = b"AES-ADMIN-SECRET"
NOW = 1800000000.0


def key256(secret=ADMIN_SECRET_256):
    return P.CryptoKey(secret, P.CRYPTO_AES256KRB5, utime_t(1700000000, 0))


def key128(secret=ADMIN_SECRET_128):
    return P.CryptoKey(secret, P.CRYPTO_AES, utime_t(1700000000, 0))


def keyring(admin_key=None, mgr_key=None):
    ring = Keyring()
    ring.add(ADMIN, admin_key or key256(), {"mon": "allow *", "osd": "allow rwx", "mgr": "allow *"})
    ring.add(MGR_X, mgr_key or key256(MGR_SECRET_256), {"mon": "allow profile mgr"})
    return ring


def request(payload, more=False, con_mode=ConnectionMode.CRC, state=None, peer=EntityType.CLIENT):
    return AuthRequestInfo(AuthMethod.CEPHX, con_mode, payload, more, peer, {} if state is None else state)


def log_in(server, client, con_mode=ConnectionMode.CRC):
    """One monitor authentication without msgr2 framing; returns (AuthDone or AuthReject, secret)."""
    state = {}
    more = server.handle_request(request(client.build_request(EntityType.MON), con_mode=con_mode, state=state))
    assert isinstance(more, AuthMore), more
    done = server.handle_request(request(client.handle_reply_more(more.payload), more=True,
                                         con_mode=con_mode, state=state))
    if not isinstance(done, AuthDone):
        return done, None
    session_key, secret = client.handle_done(done.global_id, con_mode, done.payload)
    assert session_key == done.session_key
    return done, secret


class RFC8009KnownAnswerTests(TestCase):
    def test_key_derivation_sha384(self):
        base = bytes.fromhex(RFC_KEY_256)
        for constant, want in RFC_DERIVED_256.items():
            self.assertEqual(K.derive(base, 2, constant, len(want) * 4).hex().upper(), want)

    def test_key_derivation_sha256(self):
        # the same KDF-HMAC-SHA2 with SHA-256 gives the 128-bit enctype's keys
        base = bytes.fromhex(RFC_KEY_128)
        for constant, want in RFC_DERIVED_128.items():
            label = struct.pack(">IB", 2, constant)
            self.assertEqual(K.kdf_hmac_sha2(base, label, 128, algorithm=hashes.SHA256()).hex().upper(), want)

    def test_usage_keys(self):
        ke, ki = K.Aes256kKey(bytes.fromhex(RFC_KEY_256)).usage_keys(2)
        self.assertEqual(ke.hex().upper(), RFC_DERIVED_256[0xAA])
        self.assertEqual(ki.hex().upper(), RFC_DERIVED_256[0x55])

    def test_encryption_vectors(self):
        key = K.Aes256kKey(bytes.fromhex(RFC_KEY_256))
        for confounder, plain, cipher in RFC_ENCRYPTIONS:
            got = key.encrypt(2, bytes.fromhex(plain), bytes.fromhex(confounder))
            self.assertEqual(got.hex().upper(), cipher)
            self.assertEqual(len(got), len(plain) // 2 + 40)
            self.assertEqual(key.decrypt(2, bytes.fromhex(cipher)).hex().upper(), plain)

    def test_checksum_and_prf(self):
        base = bytes.fromhex(RFC_KEY_256)
        kc = K.derive(base, 2, K.KC_CONSTANT, 192)
        self.assertEqual(K.checksum(kc, bytes(range(21))).hex().upper(), RFC_CHECKSUM)
        self.assertEqual(K.prf(base, b"test").hex().upper(), RFC_PRF)

    def test_rfc3962_cts_vectors(self):
        for size, want in CTS_VECTORS:
            self.assertEqual(K.cts_encrypt(CTS_KEY, CTS_TEXT[:size]).hex(), want)
            self.assertEqual(K.cts_decrypt(CTS_KEY, bytes.fromhex(want)), CTS_TEXT[:size])

    def test_cts_round_trip_every_length(self):
        key = bytes(range(32))
        data = bytes(range(97))
        for n in range(16, 97):
            ct = K.cts_encrypt(key, data[:n])
            self.assertEqual(len(ct), n)
            self.assertEqual(K.cts_decrypt(key, ct), data[:n])
        self.assertRaises(ValueError, K.cts_encrypt, key, b"x" * 15)
        self.assertRaises(ValueError, K.cts_decrypt, key, b"x" * 15)

    def test_every_corruption_fails_the_same_way(self):
        key = K.Aes256kKey(bytes.fromhex(RFC_KEY_256))
        cipher = bytes.fromhex(RFC_ENCRYPTIONS[3][2])
        messages = set()
        for i in range(len(cipher)):
            bad = bytearray(cipher)
            bad[i] ^= 0x01
            with self.assertRaises(K.Aes256kError) as cm:
                key.decrypt(2, bytes(bad))
            messages.add(str(cm.exception))
        for n in (0, 1, 39):
            with self.assertRaises(K.Aes256kError) as cm:
                key.decrypt(2, cipher[:n])
            messages.add(str(cm.exception))
        # the wrong key usage does not verify either
        self.assertRaises(K.Aes256kError, key.decrypt, 3, cipher)
        self.assertEqual(messages, {"aes256k decryption failed"})

    def test_short_key_and_repr(self):
        self.assertRaises(K.Aes256kError, K.Aes256kKey, b"x" * 31)
        key = K.Aes256kKey(bytes.fromhex(RFC_KEY_256))
        self.assertNotIn(RFC_KEY_256.lower(), repr(key).lower())
        self.assertIn("32 secret bytes", repr(key))
        self.assertRaises(TypeError, __import__("pickle").dumps, key)


class CryptoKeyTypeTwoTests(TestCase):
    def test_encoding(self):
        # 02 00, 8 bytes of creation time, 20 00, 32 key bytes (ceph-lab-notes.md, Tentacle 20.2.4)
        key = P.CryptoKey(ADMIN_SECRET_256, P.CRYPTO_AES256KRB5, utime_t(1, 2))
        raw = key.to_bytes()
        self.assertEqual(raw.hex(), "0200" + "01000000" + "02000000" + "2000" + ADMIN_SECRET_256.hex())
        back = P.CryptoKey.from_base64(base64.b64encode(raw).decode())
        self.assertEqual(back, key)
        self.assertEqual((back.type, back.type_name, back.usable), (2, "aes256k", True))

    def test_generate(self):
        key = P.CryptoKey.generate(NOW, P.CRYPTO_AES256KRB5)
        self.assertEqual((key.type, len(key), key.created.sec), (2, 32, int(NOW)))
        self.assertEqual(len(P.CryptoKey.generate(NOW)), 16)
        self.assertRaises(P.CephxError, P.CryptoKey.generate, NOW, 3)

    def test_short_secret_refused(self):
        self.assertRaises(P.CephxError, P.CryptoKey, b"x" * 31, P.CRYPTO_AES256KRB5)
        raw = P.CryptoKey(b"x" * 16, P.CRYPTO_AES).to_bytes()
        self.assertRaises(P.CephxError, P.CryptoKey.from_bytes, b"\x02" + raw[1:])

    def test_unknown_type(self):
        raw = b"\x07\x00" + bytes(8) + b"\x04\x00abcd"
        self.assertRaises(P.CephxError, P.CryptoKey.from_bytes, raw)
        key = P.CryptoKey.from_bytes(raw, allow_unknown=True)
        self.assertEqual((key.type, key.usable, key.to_bytes()), (7, False, raw))
        with self.assertRaises(P.CephxError) as cm:
            key.encrypt(b"x")
        self.assertIn("type 7", str(cm.exception))

    def test_envelope_sizes_and_usages(self):
        key = key256()
        body = P.encrypt_enc_bl(key, b"abc", P.CEPHX_KEY_USAGE_AUTHORIZE)
        # u8 1 + u64 magic + 3 bytes, a 16-byte confounder and a 24-byte tag
        self.assertEqual(len(body), 9 + 3 + 16 + 24)
        self.assertEqual(P.decrypt_enc_bl(key, body, "x", P.CEPHX_KEY_USAGE_AUTHORIZE), b"abc")
        # randomised by the confounder
        self.assertNotEqual(body, P.encrypt_enc_bl(key, b"abc", P.CEPHX_KEY_USAGE_AUTHORIZE))
        # a different usage derives different keys
        self.assertRaises(P.CephxError, P.decrypt_enc_bl, key, body, "x", P.CEPHX_KEY_USAGE_AUTHORIZE_REPLY)
        # what the envelope holds is the plain layout under the usage's keys
        ke, ki = K.Aes256kKey(ADMIN_SECRET_256).usage_keys(P.CEPHX_KEY_USAGE_AUTHORIZE)
        self.assertEqual(K.decrypt(ke, ki, body), b"\x01" + struct.pack("<Q", P.AUTH_ENC_MAGIC) + b"abc")
        bl = P.encrypt_bl(key, b"abc", P.CEPHX_KEY_USAGE_TICKET_INFO)
        self.assertEqual(struct.unpack_from("<I", bl)[0], len(bl) - 4)
        self.assertEqual(P.decrypt_bl(key, Decoder(bl), "x", P.CEPHX_KEY_USAGE_TICKET_INFO), b"abc")

    def test_usage_numbers(self):
        # src/auth/cephx/CephxProtocol.h, Ceph 20.2.4
        self.assertEqual(
            (P.CEPHX_KEY_USAGE_AUTH_CONNECTION_SECRET, P.CEPHX_KEY_USAGE_TICKET_SESSION_KEY,
             P.CEPHX_KEY_USAGE_TICKET_BLOB, P.CEPHX_KEY_USAGE_AUTHORIZE, P.CEPHX_KEY_USAGE_AUTHORIZE_CHALLENGE,
             P.CEPHX_KEY_USAGE_AUTHORIZE_REPLY, P.CEPHX_KEY_USAGE_ROTATING_SECRET, P.CEPHX_KEY_USAGE_TICKET_INFO),
            (0x03, 0x04, 0x05, 0x10, 0x11, 0x12, 0x20, 0x30))

    def test_challenge_is_an_hmac_fold(self):
        key = key256()
        server, client = 0x1122334455667788, 0x0102030405060708
        digest = hmac.new(ADMIN_SECRET_256, struct.pack("<QQ", server, client), hashlib.sha256).digest()
        want = 0
        for word in struct.unpack("<4Q", digest):
            want ^= word
        self.assertEqual(P.calc_client_server_challenge(key, server, client), want)
        # deterministic, unlike an aes256k ciphertext
        self.assertEqual(P.calc_client_server_challenge(key, server, client), want)
        self.assertNotEqual(P.calc_client_server_challenge(key256(MGR_SECRET_256), server, client), want)

    def test_repr_hides_secret(self):
        key = key256()
        key.encrypt(b"warm the cache", 5)
        for text in (repr(key), str(key), repr([key])):
            self.assertNotIn(ADMIN_SECRET_256.decode(), text)
            self.assertNotIn(ADMIN_SECRET_256.hex(), text)
        self.assertIn("type=aes256k", repr(key))


class AuthorityTests(TestCase):
    """Our authority with aes256k keys, and our client against it."""

    def setUp(self):
        self.ks = CephxKeyServer(keyring(), clock=lambda: NOW)
        self.server = CephxServerHandler(self.ks)
        self.client = CephxClientHandler(ADMIN, key256())

    def test_session_keys_are_aes256k(self):
        done, _ = log_in(self.server, self.client)
        self.assertIsInstance(done, AuthDone)
        self.assertEqual(len(done.session_key), 32)
        for service in (EntityType.AUTH, EntityType.MON, EntityType.OSD, EntityType.MGR):
            ticket = self.client.tickets.get(service)
            self.assertEqual(ticket.session_key.type, P.CRYPTO_AES256KRB5, EntityType.name(service))
            info = self.ks.decode_ticket(service, ticket.blob)
            self.assertEqual(info.session_key, ticket.session_key)
            self.assertEqual(self.ks.current_secret(service)[1].type, P.CRYPTO_AES256KRB5)

    def test_secure_mode_secret_is_64_bytes(self):
        done, secret = log_in(self.server, self.client, ConnectionMode.SECURE)
        self.assertEqual(len(secret), 64)
        self.assertEqual(secret, done.connection_secret)

    def test_aes_client_gets_aes_session_keys(self):
        ks = CephxKeyServer(keyring(admin_key=key128()), clock=lambda: NOW)
        client = CephxClientHandler(ADMIN, key128())
        done, _ = log_in(CephxServerHandler(ks), client)
        self.assertEqual(len(done.session_key), 16)
        # the lower of the client's key type and the service secret's (KeyServer::_build_session_auth_info)
        for service in (EntityType.AUTH, EntityType.OSD):
            self.assertEqual(client.tickets.get(service).session_key.type, P.CRYPTO_AES)
        # the ticket blobs are still sealed with aes256k service secrets
        self.assertEqual(ks.current_secret(EntityType.OSD)[1].type, P.CRYPTO_AES256KRB5)
        self.assertEqual(ks.decode_ticket(EntityType.OSD, client.tickets.get(EntityType.OSD).blob).ticket.name,
                         ADMIN)

    def test_aes_service_secrets_give_aes_service_keys(self):
        ks = CephxKeyServer(keyring(), clock=lambda: NOW, policy=CipherPolicy(service=P.CRYPTO_AES))
        log_in(CephxServerHandler(ks), self.client)
        self.assertEqual(self.client.tickets.get(EntityType.AUTH).session_key.type, P.CRYPTO_AES256KRB5)
        self.assertEqual(self.client.tickets.get(EntityType.OSD).session_key.type, P.CRYPTO_AES)

    def test_renewal_keeps_the_session_key_type(self):
        log_in(self.server, self.client)
        reply = self.server.authority.handle_principal_session_key(
            self.client.build_renewal_request(EntityType.OSD))
        old = self.client.tickets.get(EntityType.OSD).session_key
        self.assertEqual(self.client.handle_renewal_reply(reply), EntityType.OSD)
        new = self.client.tickets.get(EntityType.OSD).session_key
        self.assertNotEqual(new, old)
        self.assertEqual(new.type, P.CRYPTO_AES256KRB5)

    def test_reclaim_encrypts_the_ticket_under_the_old_session_key(self):
        log_in(self.server, self.client)
        old_session = self.client.tickets.get(EntityType.AUTH).session_key
        second = self.client.spawn()
        done, _ = log_in(self.server, second)
        self.assertIsInstance(done, AuthDone)
        self.assertEqual(done.global_id, 4100)
        # the AUTH ticket came encrypted (ticket_enc = 1) under usage TICKET_BLOB with the old key
        dec = Decoder(done.payload)
        dec.u16(), dec.i32(), dec.u8(), dec.u32(), dec.u32(), dec.u8()
        dec.blob()
        self.assertEqual(dec.u8(), 1)
        inner = P.decrypt_bl(old_session, dec, "ticket", P.CEPHX_KEY_USAGE_TICKET_BLOB)
        self.assertTrue(inner)

    def test_wrong_key_refused(self):
        done, _ = log_in(self.server, CephxClientHandler(ADMIN, key256(MGR_SECRET_256)))
        self.assertIsInstance(done, AuthReject)
        self.assertEqual(done.result, -errno.EACCES)

    def test_authorizer_to_a_service(self):
        log_in(self.server, self.client)
        for con_mode in (ConnectionMode.CRC, ConnectionMode.SECURE):
            service = CephxServiceHandler(self.ks, [EntityType.OSD])
            client = self.client.spawn()
            state = {}
            first = service.handle_request(request(client.build_request(EntityType.OSD), con_mode=con_mode,
                                                   state=state, peer=EntityType.CLIENT))
            self.assertIsInstance(first, AuthMore)
            # the challenge is an aes256k ciphertext: envelope (9) + CephXAuthorizeChallenge (9) + 40
            self.assertEqual(len(first.payload), 9 + 9 + 40)
            done = service.handle_request(request(client.handle_reply_more(first.payload), more=True,
                                                  con_mode=con_mode, state=state))
            self.assertIsInstance(done, AuthDone)
            session_key, secret = client.handle_done(done.global_id, con_mode, done.payload)
            self.assertEqual(session_key, self.client.tickets.get(EntityType.OSD).session_key.secret_bytes)
            self.assertEqual(len(session_key), 32)
            self.assertEqual(len(secret), 64 if con_mode == ConnectionMode.SECURE else 0)

    def test_core_pair_handshakes(self):
        for rev1 in (True, False):
            for mode in (ConnectionMode.CRC, ConnectionMode.SECURE):
                ks = CephxKeyServer(keyring())
                client = CephxClientHandler(ADMIN, key256())
                pair = CorePair([client], [CephxServerHandler(ks)],
                                client_config=ConnectionConfig(revision1=rev1, modes=(mode,)),
                                server_config=ConnectionConfig(entity_type=EntityType.MON, entity_num=0,
                                                               revision1=rev1, modes=(mode,)))
                pair.handshake()
                ready = pair.events_of("client", E.Ready)
                self.assertEqual(len(ready), 1, (rev1, mode, pair.client_events))
                self.assertEqual(ready[0].con_mode, mode)
                self.assertEqual(pair.client._session_key, client.tickets.get(EntityType.AUTH).session_key.secret_bytes)
                self.assertEqual(len(pair.server._session_key), 32)
                osd = CorePair([client.spawn()], [CephxServiceHandler(ks, [EntityType.OSD])],
                               client_config=ConnectionConfig(revision1=rev1, modes=(mode,)),
                               server_config=ConnectionConfig(entity_type=EntityType.OSD, entity_num=0,
                                                              revision1=rev1, modes=(mode,)))
                osd.handshake()
                self.assertEqual(len(osd.events_of("client", E.Ready)), 1, (rev1, mode, osd.client_events))


class PolicyTests(TestCase):
    def test_defaults(self):
        policy = CipherPolicy()
        self.assertEqual(policy.allowed, frozenset({P.CRYPTO_AES, P.CRYPTO_AES256KRB5}))
        self.assertEqual((policy.service, policy.preferred), (P.CRYPTO_AES256KRB5, P.CRYPTO_AES256KRB5))

    def test_parse(self):
        policy = CipherPolicy.parse("aes256k", "aes")
        self.assertEqual((policy.allowed, policy.service, policy.preferred),
                         (frozenset({P.CRYPTO_AES256KRB5}), P.CRYPTO_AES, P.CRYPTO_AES256KRB5))
        self.assertEqual(CipherPolicy.parse("aes").preferred, P.CRYPTO_AES)
        self.assertEqual(CipherPolicy.parse("AES, aes256k").names(), "aes,aes256k")
        for bad in (("",), ("des",), ("none",), ("aes", None, "aes256k"), (None, "none")):
            self.assertRaises(ValueError, CipherPolicy.parse, *bad)

    def test_insecure_cipher_refused_in_words(self):
        ks = CephxKeyServer(keyring(admin_key=key128()), policy=CipherPolicy.parse("aes256k"))
        client = CephxClientHandler(ADMIN, key128())
        done, _ = log_in(CephxServerHandler(ks), client)
        self.assertIsInstance(done, AuthReject)
        self.assertEqual(done.result, -errno.EACCES)
        self.assertEqual(done.reason, "cephx: client.admin's key is of type aes, which auth_allowed_ciphers "
                                      "(aes256k) does not allow")
        # the client, told only EACCES, says what probably happened: knowing
        # nothing of the monitor, a wrong key; knowing its cipher policy (from
        # a monmap, as MonClient passes it on), the key's type
        hint = client.describe_refusal(-errno.EACCES)
        self.assertIn("the key is wrong", hint)
        self.assertNotIn("aes256k", hint)
        client.monitor_ciphers = (P.CRYPTO_AES256KRB5,)
        hint = client.describe_refusal(-errno.EACCES)
        self.assertIn("insecure type aes", hint)
        self.assertIn("auth_allowed_ciphers", hint)
        self.assertIsNone(client.describe_refusal(-errno.EOPNOTSUPP))
        self.assertIsNone(CephxClientHandler(ADMIN, key128()).describe_refusal(-errno.EACCES))

    def test_aes256k_only_monitor_accepts_aes256k(self):
        ks = CephxKeyServer(keyring(), policy=CipherPolicy.parse("aes256k"))
        done, _ = log_in(CephxServerHandler(ks), CephxClientHandler(ADMIN, key256()))
        self.assertIsInstance(done, AuthDone)

    def test_aes_only_monitor_refuses_aes256k(self):
        ks = CephxKeyServer(keyring(), policy=CipherPolicy.parse("aes", "aes"))
        done, _ = log_in(CephxServerHandler(ks), CephxClientHandler(ADMIN, key256()))
        self.assertIsInstance(done, AuthReject)
        self.assertIn("type aes256k", done.reason)

    def test_service_and_preferred_ciphers(self):
        ks = CephxKeyServer(keyring(), policy=CipherPolicy.parse("aes,aes256k", "aes", "aes"))
        self.assertEqual(ks.current_secret(EntityType.OSD)[1].type, P.CRYPTO_AES)
        self.assertEqual(ks.new_entity_key().type, P.CRYPTO_AES)
        ks = CephxKeyServer(keyring())
        self.assertEqual(ks.new_entity_key().type, P.CRYPTO_AES256KRB5)
        self.assertEqual(len(ks.new_entity_key()), 32)

    def test_plugin_argstring(self):
        ring = keyring()
        handler = findAuthProvider("cephx").serverHandler(
            "allowed_ciphers=aes256k:service_cipher=aes", keyring=ring)
        self.assertEqual(handler.key_server.policy.allowed, frozenset({P.CRYPTO_AES256KRB5}))
        self.assertEqual(handler.key_server.policy.service, P.CRYPTO_AES)
        self.assertRaises(ValueError, findAuthProvider("cephx").serverHandler, "allowed_ciphers=rc4",
                          keyring=ring)


class ManagerRoleTests(TestCase):
    """A manager fetches type-2 rotating secrets and checks aes256k authorizers with them."""

    def setUp(self):
        clock = lambda: NOW  # noqa: E731
        self.ks = CephxKeyServer(keyring(), clock=clock)
        self.authority = CephxAuthorityHandler(self.ks)
        self.mgr_client = CephxClientHandler(MGR_X, key256(MGR_SECRET_256))
        self.mgr_ks = CephxKeyServer(Keyring(), own_name=MGR_X, clock=clock)
        self.mgr = findAuthProvider("cephx").serverHandler(
            key_server=self.mgr_ks, authority=False, service_ids=(EntityType.MGR,))
        self.admin = CephxClientHandler(ADMIN, key256())
        log_in(CephxServerHandler(self.ks), self.admin)

    def test_rotating_secrets_of_type_two(self):
        result_bl = self.authority.handle_rotating_request(MGR_X, self.mgr_client.build_rotating_request())
        # header (u16 request type, i32 status), then u32 length and an aes256k ciphertext
        self.assertEqual(struct.unpack_from("<HiI", result_bl), (P.CEPHX_GET_ROTATING_KEY, 0, len(result_bl) - 10))
        secrets = self.mgr_client.handle_rotating_reply(result_bl)
        self.assertEqual(struct.unpack_from("<I", result_bl, 6)[0], 9 + len(secrets.to_bytes()) + 40)
        self.assertEqual({k.type for k in secrets.keys().values()}, {P.CRYPTO_AES256KRB5})
        self.assertEqual(secrets.keys(), self.ks.rotating_secrets(EntityType.MGR).keys())
        self.mgr_ks.install_rotating(EntityType.MGR, secrets)
        for con_mode in (ConnectionMode.CRC, ConnectionMode.SECURE):
            client = self.admin.spawn()
            state = {}
            first = self.mgr.handle_request(request(client.build_request(EntityType.MGR), con_mode=con_mode,
                                                    state=state))
            done = self.mgr.handle_request(request(client.handle_reply_more(first.payload), more=True,
                                                   con_mode=con_mode, state=state))
            self.assertIsInstance(done, AuthDone)
            self.assertEqual(done.name, ADMIN)
            client.handle_done(done.global_id, con_mode, done.payload)

    def test_rotating_reply_opens_only_with_the_right_usage(self):
        result_bl = self.authority.handle_rotating_request(MGR_X, self.mgr_client.build_rotating_request())
        body = Decoder(result_bl[6:]).blob()
        key = key256(MGR_SECRET_256)
        self.assertTrue(P.decrypt_enc_bl(key, body, "x", P.CEPHX_KEY_USAGE_ROTATING_SECRET))
        self.assertRaises(P.CephxError, P.decrypt_enc_bl, key, body, "x", P.CEPHX_KEY_USAGE_TICKET_INFO)


class LoopbackTests(TestCase):
    """Our client and our authority over real sockets with aes256k keys."""

    def serve(self, ring, policy=None):
        handler = findAuthProvider("cephx").serverHandler(keyring=ring, policy=policy)
        factory = Msgr2ServerFactory([handler], EchoReceiver(), ConnectionConfig(
            entity_type=EntityType.MON, entity_num=0, modes=(ConnectionMode.SECURE, ConnectionMode.CRC)))
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return "v2:127.0.0.1:%d" % port.getHost().port

    @defer.inlineCallbacks
    def test_secure_echo(self):
        address = self.serve(keyring())
        for rev1 in (True, False):
            p = yield connect(reactor, address, [CephxClientHandler(ADMIN, key256())],
                              ConnectionConfig(revision1=rev1, modes=(ConnectionMode.SECURE,)), timeout=5)
            try:
                self.assertEqual(p.info.con_mode, ConnectionMode.SECURE)
                received = defer.Deferred()
                p.receiver = type("R", (), {
                    "connectionReady": lambda *a: None, "connectionLost": lambda *a: None,
                    "messageReceived": lambda self_, proto, m: received.callback(m)})()
                p.sendMessage(MPing())
                echoed = yield received
                self.assertIsInstance(echoed, MPing)
            finally:
                p.transport.loseConnection()

    @defer.inlineCallbacks
    def test_refusal_in_words(self):
        address = self.serve(keyring(admin_key=key128()), CipherPolicy.parse("aes256k"))
        handler = CephxClientHandler(ADMIN, key128())
        handler.monitor_ciphers = (P.CRYPTO_AES256KRB5,)   # as MonClient sets it from a monmap it saw
        d = connect(reactor, address, [handler], ConnectionConfig(), timeout=5)
        err = yield self.assertFailure(d, AuthBadMethod)
        self.assertEqual(err.result, -errno.EACCES)
        self.assertIn("insecure type aes", str(err))
        self.assertIn("give client.admin an aes256k key", str(err))
        self.assertNotIn(ADMIN_SECRET_128.decode(), str(err))


    @defer.inlineCallbacks
    def test_monclient_passes_the_monmaps_ciphers_on(self):
        # a MonClient that holds a Squid+ monmap whose auth_allowed_ciphers leave aes out
        # explains a refused aes key by its type; without a monmap, as a wrong key
        from msgr2tx.ceph.monmap import MonMap
        from msgr2tx.clients.monclient import MonClient
        address = self.serve(keyring(admin_key=key128()), CipherPolicy.parse("aes256k"))
        texts = []
        for monmap in (None, MonMap(min_mon_release=20, auth_allowed_ciphers=[P.CRYPTO_AES256KRB5])):
            monclient = MonClient(clock=reactor)
            monclient.monmap = monmap
            yield monclient.start(reactor, [address], [CephxClientHandler(ADMIN, key128())], ConnectionConfig())
            self.addCleanup(monclient.stop)
            err = yield self.assertFailure(monclient.authenticate(timeout=10), AuthBadMethod)
            texts.append(str(err))
        self.assertIn("the key is wrong, or client.admin does not exist", texts[0])
        self.assertNotIn("aes256k", texts[0])
        self.assertIn("its auth_allowed_ciphers (aes256k) does not allow keys of the insecure type aes", texts[1])
        self.assertIn("give client.admin an aes256k key", texts[1])


class MixedKeyringTests(TestCase):
    TEXT = """\
[client.admin]
\tkey = %(aes)s
[client.new]
\tkey = %(aes256k)s
\tcaps mon = "allow r"
[client.future]
\tkey = %(future)s
"""

    def setUp(self):
        self.aes = key128().to_base64()
        self.aes256k = key256().to_base64()
        self.future = base64.b64encode(b"\x09\x00" + bytes(8) + b"\x05\x00hello").decode()
        self.text = self.TEXT % {"aes": self.aes, "aes256k": self.aes256k, "future": self.future}

    def test_each_entry_keeps_its_type(self):
        ring = Keyring.parse(self.text)
        self.assertEqual(ring.get("client.admin").type, P.CRYPTO_AES)
        self.assertEqual(ring.get("client.new").type, P.CRYPTO_AES256KRB5)
        self.assertEqual(ring.get("client.new"), key256())
        self.assertEqual(ring.caps("client.new"), {"mon": "allow r"})

    def test_unknown_type_spoils_only_its_entry(self):
        ring = Keyring.parse(self.text, "mixed.keyring")
        self.assertIn("client.future", ring)
        with self.assertRaises(Msgr2Error) as cm:
            ring.get("client.future")
        self.assertIn("type 9", str(cm.exception))
        self.assertIn("mixed.keyring", str(cm.exception))
        # written back unchanged
        again = Keyring.parse(ring.to_text())
        self.assertEqual(again.entry("client.future").key.to_base64(), self.future)
        self.assertEqual(again.get("client.new").to_base64(), self.aes256k)

    def test_authority_with_a_mixed_keyring(self):
        ring = Keyring.parse(self.text)
        ring.add(ADMIN, key128(), {"mon": "allow *"})
        server = CephxServerHandler(CephxKeyServer(ring))
        done, _ = log_in(server, CephxClientHandler(ADMIN, key128()))
        self.assertIsInstance(done, AuthDone)
        done, _ = log_in(server, CephxClientHandler(EntityName.parse("client.new"), key256()))
        self.assertIsInstance(done, AuthDone)
        done, _ = log_in(server, CephxClientHandler(EntityName.parse("client.future"), key256()))
        self.assertIsInstance(done, AuthReject)
        self.assertIn("type 9", done.reason)


class KeyringCommandTests(TestCase):
    """msgr2tx keyring --key-type."""

    def setUp(self):
        self.path = os.path.join(self.mktemp() + "-d", "keyring")
        os.makedirs(os.path.dirname(self.path))

    def test_key_types(self):
        from tests.test_cli import run
        p = run("keyring", "create", self.path, "-n", "client.new", "--gen-key", "--key-type", "aes256k")
        self.assertEqual(p.returncode, 0, p.stderr)
        p = run("keyring", "add", self.path, "-n", "client.old", "--gen-key")
        self.assertEqual(p.returncode, 0, p.stderr)
        ring = Keyring.load(self.path)
        self.assertEqual((ring.get("client.new").type, len(ring.get("client.new"))), (P.CRYPTO_AES256KRB5, 32))
        self.assertEqual((ring.get("client.old").type, len(ring.get("client.old"))), (P.CRYPTO_AES, 16))
        p = run("keyring", "list", self.path, "--json")
        self.assertEqual([(e["entity"], e["type"]) for e in json.loads(p.stdout)["entities"]],
                         [("client.new", "aes256k"), ("client.old", "aes")])
        p = run("keyring", "gen-key", "--key-type", "aes256k", "--json")
        key = P.CryptoKey.from_base64(json.loads(p.stdout)["key"])
        self.assertEqual((key.type, len(key)), (P.CRYPTO_AES256KRB5, 32))
        p = run("keyring", "gen-key", "--key-type", "des")
        self.assertEqual(p.returncode, 2)


class NoSecretsLeakTests(TestCase):
    """aes256k keys, derived keys, session keys and secrets stay out of every text."""

    def test_grep(self):
        ks = CephxKeyServer(keyring(), clock=lambda: NOW)
        server = CephxServerHandler(ks)
        client = CephxClientHandler(ADMIN, key256())
        done, secret = log_in(server, client, ConnectionMode.SECURE)
        secrets = {ADMIN_SECRET_256, MGR_SECRET_256, secret, done.session_key}
        texts = [repr(done), str(done), repr(client), repr(client.tickets), repr(ks), repr(server)]
        for t in client.tickets.tickets.values():
            secrets.add(t.session_key.secret_bytes)
            ke, ki = K.Aes256kKey(t.session_key.secret_bytes).usage_keys(P.CEPHX_KEY_USAGE_AUTHORIZE)
            secrets.update((ke, ki))
            texts += [repr(t), repr(t.blob), repr(t.session_key), repr(t.session_key._krb5())]
        for service in (EntityType.AUTH, EntityType.OSD, EntityType.MGR):
            secrets.add(ks.current_secret(service)[1].secret_bytes)
        texts.append(repr(ks.rotating_secrets(EntityType.MGR)))
        # failures: a wrong key, truncated and corrupted replies
        wrong = CephxClientHandler(ADMIN, key256(MGR_SECRET_256))
        rejected, _ = log_in(server, wrong)
        texts += [repr(rejected), rejected.reason, wrong.describe_refusal(-errno.EACCES)]
        fresh = CephxClientHandler(ADMIN, key256(MGR_SECRET_256))
        state = {}
        more = server.handle_request(request(client.spawn().build_request(EntityType.MON), state=state))
        fresh.build_request(EntityType.MON)
        fresh.handle_reply_more(more.payload)
        for n in (3, 20, 60, len(done.payload) - 5, len(done.payload)):
            try:
                fresh.handle_done(4100, ConnectionMode.CRC, done.payload[:n])
            except Msgr2Error as err:
                texts += [str(err), repr(err)]
        blob = "\n".join(texts)
        self.assertIn("client.admin", blob)
        self.assertIn("did not decrypt", blob)
        for s in secrets:
            self.assertTrue(s)
            for form in (s.hex(), s.hex().upper(), base64.b64encode(s).decode(), repr(s)[2:-1], s[:8].hex()):
                self.assertNotIn(form, blob)
        self.assertNotIn("AES256K-", blob)
