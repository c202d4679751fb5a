"""
CEPHX: Ceph's shared-secret authentication, client and server halves.

Client towards a monitor (AUTH_MODE_MON)::

    AUTH_REQUEST       u8 10, EntityName, u64 global_id
    AUTH_REPLY_MORE    CephXServerChallenge
    AUTH_REQUEST_MORE  CEPHX_GET_AUTH_SESSION_KEY + CephXAuthenticate v3
    AUTH_DONE          CephXResponseHeader, service ticket reply (AUTH ticket
                       under the entity key), encrypted connection secret,
                       extra service tickets (under the AUTH session key)

Client towards any other daemon (authorizer)::

    AUTH_REQUEST       authorizer (u8 1, global_id, service_id, ticket, {CephXAuthorize})
    AUTH_REPLY_MORE    {CephXAuthorizeChallenge}      (always: CVE-2020-25660)
    AUTH_REQUEST_MORE  authorizer answering the challenge (server_challenge + 1)
    AUTH_DONE          {CephXAuthorizeReply}: nonce + 1, connection secret

The structures and crypto live in L{msgr2tx.auth.cephx_proto}; this module
keeps per-connection state and plugs into msgr2tx.  Nothing here logs or
formats a secret.
"""

import errno
import os
import time
from typing import Dict, Iterable, Optional, Tuple

from twisted.plugin import IPlugin
from zope.interface import implementer

from msgr2tx.auth import AuthDone, AuthMore, AuthReject, GlobalIdAllocator, parseArgString
from msgr2tx.auth.cephx_proto import (
    AUTH_TICKET_TTL, CEPHX_GET_AUTH_SESSION_KEY, CEPHX_GET_PRINCIPAL_SESSION_KEY, CEPHX_GET_ROTATING_KEY,
    CEPHX_KEY_USAGE_AUTH_CONNECTION_SECRET, CEPHX_KEY_USAGE_AUTHORIZE, CEPHX_KEY_USAGE_AUTHORIZE_CHALLENGE,
    CEPHX_KEY_USAGE_AUTHORIZE_REPLY, CEPHX_KEY_USAGE_TICKET_INFO, CIPHER_TYPES, CRYPTO_AES256KRB5,
    DEFAULT_WANT_KEYS, SECRET_ID_GENERAL, SECURE_CONNECTION_SECRET_LEN, SECURE_KEY_TYPES, SERVICE_TICKET_TTL,
    AuthCapsInfo, Authenticate, AuthTicket, Authorizer, CephxDecodeError, CephxError, CryptoKey,
    RotatingSecrets, ServiceTicket, ServiceTicketInfo, SessionAuthInfo, build_service_ticket_reply,
    calc_client_server_challenge, decode_authorize, decode_authorizer, decode_server_challenge,
    decrypt_bl, decrypt_enc_bl, encode_authorize_challenge, encode_authorize_reply,
    encode_get_auth_session_key, encode_server_challenge, encrypt_bl, encrypt_enc_bl,
    build_rotating_reply, encode_rotating_request, parse_rotating_reply, parse_service_ticket_reply,
    key_type_name, parse_key_type, proofs_equal, random_u64,
)
from msgr2tx.auth.keyring import Keyring, KeyringError
from msgr2tx.core.constants import AUTH_MODE_AUTHORIZER, AUTH_MODE_MON, AuthMethod, ConnectionMode
from msgr2tx.core.encoding import Decoder, Encoder, EntityName, EntityType
from msgr2tx.errors import AuthRejected, DecodeError, Msgr2Error
from msgr2tx.interfaces import IAuthProviderFactory, IClientAuthHandler, IServerAuthHandler

CEPHX_MODES = (ConnectionMode.CRC, ConnectionMode.SECURE)
AUTH_MODE_AUTHORIZER_MAX = 9
AUTH_MODE_MON_MAX = 19

__all__ = [
    "CephxAuthProvider", "CephxClientHandler", "CephxKeyServer", "CephxServerHandler",
    "CephxAuthorityHandler", "CephxServiceHandler", "TicketStore", "CipherPolicy",
]


def _expect_secret_len(con_mode: int, secret: bytes) -> None:
    if con_mode == ConnectionMode.SECURE and len(secret) != SECURE_CONNECTION_SECRET_LEN:
        raise CephxError("secure mode needs a %d-byte connection secret, got %d bytes"
                         % (SECURE_CONNECTION_SECRET_LEN, len(secret)))


def _connection_secret(con_mode: int) -> bytes:
    return os.urandom(SECURE_CONNECTION_SECRET_LEN) if con_mode == ConnectionMode.SECURE else b""


def _response_body(payload: bytes, request_type: int) -> Decoder:
    """
    Check a monitor's CephXResponseHeader (u16 request type, i32 status) and
    return a decoder positioned after it.
    """
    dec = Decoder(payload)
    try:
        answered = dec.u16()
        status = dec.i32()
    except DecodeError as e:
        raise CephxDecodeError("malformed CephXResponseHeader: %s" % e) from None
    if answered != request_type:
        raise CephxDecodeError("cephx response to request type 0x%x" % answered)
    if status:
        raise AuthRejected("cephx: monitor answered status %d" % status)
    return dec


# --- client side ----------------------------------------------------------------------

class TicketStore:
    """The tickets a client holds, by service id, and its global_id."""

    def __init__(self) -> None:
        self.tickets: Dict[int, ServiceTicket] = {}
        self.global_id = 0

    def __repr__(self) -> str:
        return "<TicketStore global_id=%d services=[%s]>" % (
            self.global_id, ", ".join(EntityType.name(s) for s in sorted(self.tickets)))

    def get(self, service_id: int) -> Optional[ServiceTicket]:
        return self.tickets.get(service_id)

    def add(self, tickets: Iterable[ServiceTicket]) -> None:
        for t in tickets:
            self.tickets[t.service_id] = t

    def session_keys(self) -> Dict[int, CryptoKey]:
        return {sid: t.session_key for sid, t in self.tickets.items()}

    def have(self, service_id: int, now: Optional[float] = None) -> bool:
        t = self.tickets.get(service_id)
        return t is not None and t.have_key(now)

    def need(self, want: int, now: Optional[float] = None) -> int:
        """The services in C{want} whose ticket is missing or due for renewal."""
        mask = 0
        bit = 1
        while bit <= want:
            if want & bit:
                t = self.tickets.get(bit)
                if t is None or not t.have_key(now) or t.need_key(now):
                    mask |= bit
            bit <<= 1
        return mask

    def build_authorizer(self, service_id: int, now: Optional[float] = None) -> Authorizer:
        t = self.tickets.get(service_id)
        if t is None or not t.have_key(now):
            raise AuthRejected("cephx: no valid %s ticket" % EntityType.name(service_id))
        return Authorizer(t, self.global_id)


@implementer(IClientAuthHandler)
class CephxClientHandler:
    """
    The cephx client.  Towards a monitor it authenticates with the entity key;
    towards any other daemon it presents an authorizer built from a ticket in
    L{tickets}.  One handler per connection attempt; L{spawn} makes another
    one sharing the key and the tickets.
    """

    method = AuthMethod.CEPHX
    allowed_modes = CEPHX_MODES

    def __init__(self, name: EntityName, key: CryptoKey, global_id: int = 0,
                 want_keys: int = DEFAULT_WANT_KEYS, tickets: Optional[TicketStore] = None) -> None:
        if not isinstance(key, CryptoKey):
            raise TypeError("key must be a CryptoKey")
        self.name = name
        self._key = key
        self.want_keys = want_keys | EntityType.AUTH
        self.tickets = tickets if tickets is not None else TicketStore()
        if global_id:
            self.tickets.global_id = global_id
        #: what we know of the monitor's ciphers before auth: None (nothing,
        #: as on a first connection), else the C{auth_allowed_ciphers} of a
        #: monmap it sent us (MonClient sets it); only then does a refused
        #: aes key get the advice about aes256k
        self.monitor_ciphers: Optional[Tuple[int, ...]] = None
        self._reset()

    def __repr__(self) -> str:
        return "<CephxClientHandler %s global_id=%d %r>" % (self.name, self.global_id, self.tickets)

    __str__ = __repr__

    def __reduce__(self):
        raise TypeError("CephxClientHandler objects are not picklable")

    @property
    def global_id(self) -> int:
        return self.tickets.global_id

    def spawn(self) -> "CephxClientHandler":
        return CephxClientHandler(self.name, self._key, want_keys=self.want_keys, tickets=self.tickets)

    def clone(self) -> "CephxClientHandler":
        """
        Another handler with the same key and a I{copy} of our tickets and
        global_id (Ceph's C{AuthClientHandler::clone}): one per monitor a
        hunting MonClient dials, so that parallel handshakes do not
        overwrite each other's tickets.
        """
        tickets = TicketStore()
        tickets.tickets = dict(self.tickets.tickets)
        tickets.global_id = self.tickets.global_id
        clone = CephxClientHandler(self.name, self._key, want_keys=self.want_keys, tickets=tickets)
        clone.monitor_ciphers = self.monitor_ciphers
        return clone

    def _reset(self) -> None:
        self._role = None
        self._server_challenge = 0
        self._authorizer: Optional[Authorizer] = None

    # -- IClientAuthHandler -------------------------------------------------------------

    def build_request(self, peer_entity_type: int) -> bytes:
        self._reset()
        if peer_entity_type == EntityType.MON:
            self._role = "mon"
            enc = Encoder().u8(AUTH_MODE_MON)
            self.name.encode(enc)
            enc.u64(self.tickets.global_id)
            return enc.getvalue()
        self._role = "authorizer"
        self._authorizer = self.tickets.build_authorizer(peer_entity_type)
        return self._authorizer.payload

    def handle_reply_more(self, payload: bytes) -> bytes:
        if self._role == "mon":
            if self._server_challenge:
                raise AuthRejected("cephx: monitor sent a second challenge")
            challenge = decode_server_challenge(payload)
            if not challenge:
                raise AuthRejected("cephx: monitor sent a zero challenge")
            self._server_challenge = challenge
            client_challenge = random_u64()
            old = self.tickets.get(EntityType.AUTH)
            req = Authenticate(
                client_challenge,
                calc_client_server_challenge(self._key, challenge, client_challenge),
                old.blob if old is not None else None,
                self.want_keys)
            return encode_get_auth_session_key(req)
        if self._role == "authorizer":
            return self._authorizer.add_challenge(payload)
        raise AuthRejected("cephx: AUTH_REPLY_MORE before any request")

    def describe_refusal(self, result: int) -> Optional[str]:
        """
        Words for a monitor's refusal (AUTH_BAD_METHOD with C{result}) once
        it has seen our answer to its challenge; None otherwise.  The
        monitor only says EACCES: the key is wrong, or the entity does not
        exist.  Only when C{monitor_ciphers} (from a monmap of that cluster)
        leaves out our key's type is the cause named as the cipher policy
        (C{auth_allowed_ciphers}, aes256k only by default on new Squid
        19.2.6+ and Tentacle 20.2.4+ clusters); a monitor of an older
        release never refuses a key for its type.
        """
        if self._role != "mon" or not self._server_challenge or result != -errno.EACCES:
            return None
        kind = self._key.type_name
        allowed = self.monitor_ciphers
        if allowed is not None and self._key.type not in allowed:
            return ("the monitor refused %s's %s key: its auth_allowed_ciphers (%s) does not allow keys of %s "
                    "%s; give %s an aes256k key, or allow %s with 'ceph mon set auth_allowed_ciphers aes,aes256k'"
                    % (self.name, kind, ",".join(key_type_name(k) for k in sorted(allowed)),
                       "type" if self._key.type in SECURE_KEY_TYPES else "the insecure type", kind, self.name, kind))
        return ("the monitor refused %s's key: the key is wrong, or %s does not exist (the key must be the "
                "one 'ceph auth get %s' shows)" % (self.name, self.name, self.name))

    def handle_done(self, global_id: int, con_mode: int, payload: bytes):
        if self._role == "mon":
            if not self._server_challenge:
                raise AuthRejected("cephx: monitor finished auth without a challenge")
            session_key, secret = self._handle_mon_done(payload)
            _expect_secret_len(con_mode, secret)
            self.tickets.global_id = global_id
            return session_key.secret_bytes, secret
        if self._role == "authorizer":
            secret = self._authorizer.verify_reply(payload)
            _expect_secret_len(con_mode, secret)
            return self._authorizer.session_key.secret_bytes, secret
        raise AuthRejected("cephx: AUTH_DONE before any request")

    def session_expires(self) -> float:
        """
        When the ticket whose session key the last L{handle_done} returned
        expires (seconds since the epoch, by our clock; 0: not known): the
        AUTH ticket towards a monitor, the service's ticket for an
        authorizer.  msgr2tx does not try a fast reconnect with that key
        after it (docs/protocol.md, "Fast reconnect").
        """
        if self._role == "mon":
            service = EntityType.AUTH
        elif self._role == "authorizer" and self._authorizer is not None:
            service = self._authorizer.service_id
        else:
            return 0.0
        ticket = self.tickets.get(service)
        return ticket.expires if ticket is not None else 0.0

    def _handle_mon_done(self, payload: bytes):
        dec = _response_body(payload, CEPHX_GET_AUTH_SESSION_KEY)
        tickets = parse_service_ticket_reply(self._key, dec, self.tickets.session_keys())
        auth = [t for t in tickets if t.service_id == EntityType.AUTH]
        if not auth:
            raise CephxError("cephx: the monitor's reply has no AUTH ticket")
        session_key = auth[-1].session_key
        secret = b""
        extra = []
        if dec.remaining():
            try:
                cbl = dec.blob()
                extra_bl = dec.blob()
            except DecodeError as e:
                raise CephxDecodeError("malformed cephx connection secret/extra tickets: %s" % e) from None
            if cbl:
                plain = decrypt_bl(session_key, Decoder(cbl), "connection secret",
                                   CEPHX_KEY_USAGE_AUTH_CONNECTION_SECRET)
                try:
                    secret = Decoder(plain).blob()
                except DecodeError as e:
                    raise CephxDecodeError("malformed connection secret: %s" % e) from None
            if extra_bl:
                extra = parse_service_ticket_reply(session_key, Decoder(extra_bl))
        self.tickets.add(tickets)
        self.tickets.add(extra)
        return session_key, secret

    # -- ticket renewal over MAuth ----------------------------------------------------------

    def need_tickets(self, now: Optional[float] = None) -> int:
        return self.tickets.need(self.want_keys & ~EntityType.AUTH, now)

    def need_auth_ticket(self, now: Optional[float] = None) -> bool:
        """True when the AUTH ticket is missing or due for renewal (past 3/4 of its validity)."""
        return bool(self.tickets.need(EntityType.AUTH, now))

    def build_auth_renewal_request(self) -> bytes:
        """
        The C{auth_payload} of an MAuth that renews the AUTH ticket inside
        the monitor session (CEPHX_GET_AUTH_SESSION_KEY + CephXAuthenticate),
        as Ceph's C{CephxClientHandler::build_request} does when C{need}
        includes AUTH: the proof answers the server challenge of this
        connection's handshake, the old ticket goes along and the other
        wanted tickets are asked for in the same request.  Only the handler
        that ran the monitor handshake of the live session can build it.
        """
        if self._role != "mon" or not self._server_challenge:
            raise AuthRejected("cephx: no monitor handshake on this handler to renew the AUTH ticket in")
        client_challenge = random_u64()
        old = self.tickets.get(EntityType.AUTH)
        req = Authenticate(
            client_challenge,
            calc_client_server_challenge(self._key, self._server_challenge, client_challenge),
            old.blob if old is not None else None,
            self.want_keys)
        return encode_get_auth_session_key(req)

    def handle_auth_renewal_reply(self, result_bl: bytes) -> int:
        """Take the tickets of the MAuthReply to L{build_auth_renewal_request}; returns the services renewed."""
        before = {sid: t.blob for sid, t in self.tickets.tickets.items()}
        self._handle_mon_done(result_bl)
        mask = 0
        for sid, t in self.tickets.tickets.items():
            if before.get(sid) is not t.blob:
                mask |= sid
        return mask

    def build_renewal_request(self, keys: Optional[int] = None) -> bytes:
        """
        The C{auth_payload} of an MAuth asking for service tickets
        (CEPHX_GET_PRINCIPAL_SESSION_KEY): header, an authorizer made from
        the AUTH ticket, CephXServiceTicketRequest.
        """
        if keys is None:
            keys = self.need_tickets()
        authorizer = self.tickets.build_authorizer(EntityType.AUTH)
        return (Encoder().u16(CEPHX_GET_PRINCIPAL_SESSION_KEY).raw(authorizer.payload)
                .u8(1).u32(keys & ~EntityType.AUTH).getvalue())

    def build_rotating_request(self) -> bytes:
        """
        The C{auth_payload} of an MAuth asking for the rotating secrets of
        our own service type (CEPHX_GET_ROTATING_KEY); only daemons (OSD,
        MDS, MGR) get an answer.
        """
        return encode_rotating_request()

    def handle_rotating_reply(self, result_bl: bytes) -> RotatingSecrets:
        """Open the MAuthReply to L{build_rotating_request}: the secrets are sealed under our own key."""
        return parse_rotating_reply(self._key, _response_body(result_bl, CEPHX_GET_ROTATING_KEY))

    def handle_renewal_reply(self, result_bl: bytes) -> int:
        """Take the tickets of an MAuthReply; returns the services renewed."""
        dec = _response_body(result_bl, CEPHX_GET_PRINCIPAL_SESSION_KEY)
        auth = self.tickets.get(EntityType.AUTH)
        if auth is None:
            raise AuthRejected("cephx: no AUTH ticket")
        tickets = parse_service_ticket_reply(auth.session_key, dec)
        self.tickets.add(tickets)
        mask = 0
        for t in tickets:
            mask |= t.service_id
        return mask


# --- server side ----------------------------------------------------------------------

class CipherPolicy:
    """
    A monitor's cephx cipher settings, as Tentacle keeps them in its monmap
    (MonMap v10; src/mon/MonMap.h, AuthMonitor.cc of 20.2.4):

      - C{allowed}: the key types an entity may authenticate with
        (C{auth_allowed_ciphers}); another type is refused (EACCES);
      - C{service}: the type of new rotating service secrets
        (C{auth_service_cipher});
      - C{preferred}: the type of new entity keys (C{auth_preferred_cipher}).

    Types are C{CRYPTO_AES} (1) or C{CRYPTO_AES256KRB5} (2).  The default
    allows both, so keyrings of either type keep working, and makes new
    secrets aes256k, as a fresh Tentacle cluster does.  ValueError for an
    empty set, a type that cannot encrypt, or a preferred type that is not
    allowed (keys made with it could never authenticate).
    """

    __slots__ = ("allowed", "service", "preferred")

    def __init__(self, allowed: Iterable[int] = CIPHER_TYPES, service: int = CRYPTO_AES256KRB5,
                 preferred: int = CRYPTO_AES256KRB5) -> None:
        allowed = frozenset(allowed)
        if not allowed:
            raise ValueError("auth_allowed_ciphers must name at least one cipher")
        for kind in set(allowed) | {service, preferred}:
            if kind not in CIPHER_TYPES:
                raise ValueError("cipher %s cannot encrypt (use aes or aes256k)" % key_type_name(kind))
        if preferred not in allowed:
            raise ValueError("auth_preferred_cipher %s is not in auth_allowed_ciphers" % key_type_name(preferred))
        self.allowed = allowed
        self.service = service
        self.preferred = preferred

    @classmethod
    def parse(cls, allowed: Optional[str] = None, service: Optional[str] = None,
              preferred: Optional[str] = None) -> "CipherPolicy":
        """From Ceph's spellings: C{allowed} a comma/space separated list (C{aes,aes256k})."""
        default = cls()
        kinds = default.allowed
        if allowed is not None:
            kinds = frozenset(parse_key_type(n) for n in allowed.replace(",", " ").split())
            if not kinds:
                raise ValueError("auth_allowed_ciphers must name at least one cipher")
        svc = parse_key_type(service) if service else default.service
        pref = parse_key_type(preferred) if preferred else (
            default.preferred if default.preferred in kinds else max(kinds))
        return cls(kinds, svc, pref)

    def allows(self, kind: int) -> bool:
        return kind in self.allowed

    def names(self) -> str:
        return ",".join(key_type_name(k) for k in sorted(self.allowed))

    def __repr__(self) -> str:
        return "<CipherPolicy allowed=%s service=%s preferred=%s>" % (
            self.names(), key_type_name(self.service), key_type_name(self.preferred))


class CephxKeyServer:
    """
    What a cephx authority knows: the entities' keys (a L{Keyring}) and one
    secret per service that tickets are sealed with.  Secrets are generated
    on first use, of the type C{policy.service}; L{rotate} adds a new one
    and keeps the previous ones valid.  C{policy} (a L{CipherPolicy}) also
    says which entity key types may authenticate.
    """

    def __init__(self, keyring: Optional[Keyring] = None, own_name: Optional[EntityName] = None,
                 auth_ttl: float = AUTH_TICKET_TTL, service_ttl: float = SERVICE_TICKET_TTL,
                 clock=time.time, policy: Optional[CipherPolicy] = None) -> None:
        self.keyring = keyring if keyring is not None else Keyring()
        self.own_name = own_name
        self.auth_ttl = auth_ttl
        self.service_ttl = service_ttl
        self.clock = clock
        self.policy = policy if policy is not None else CipherPolicy()
        self._secrets: Dict[int, Dict[int, CryptoKey]] = {}
        self._expirations: Dict[int, Dict[int, float]] = {}

    def __repr__(self) -> str:
        return "<CephxKeyServer %r services=[%s]>" % (
            self.keyring, ", ".join(EntityType.name(s) for s in sorted(self._secrets)))

    __str__ = __repr__

    def __reduce__(self):
        raise TypeError("CephxKeyServer objects are not picklable")

    def rotate(self, service_id: int) -> int:
        versions = self._secrets.setdefault(service_id, {})
        secret_id = max(versions, default=0) + 1
        versions[secret_id] = CryptoKey.generate(self.clock(), self.policy.service)
        while len(versions) > 3:
            del versions[min(versions)]
        return secret_id

    def install_rotating(self, service_id: int, secrets: RotatingSecrets) -> None:
        """
        Take a monitor's rotating secrets for C{service_id} (what a service
        fetched with CEPHX_GET_ROTATING_KEY): tickets sealed with any of
        them open from now on, and secrets the monitor dropped stop working.
        """
        if not len(secrets):
            raise CephxError("no rotating secrets for %s" % EntityType.name(service_id))
        self._secrets[service_id] = secrets.keys()
        self._expirations[service_id] = {i: exp for i, (_, exp) in secrets.secrets.items()}

    def rotating_secrets(self, service_id: int) -> RotatingSecrets:
        """What a monitor hands a daemon of type C{service_id}: its service's secrets, oldest first."""
        self.current_secret(service_id)
        known = self._expirations.get(service_id, {})
        out = {secret_id: (key, known.get(secret_id, key.created.to_float() + self.service_ttl))
               for secret_id, key in self._secrets[service_id].items()}
        self._expirations[service_id] = {i: exp for i, (_, exp) in out.items()}
        return RotatingSecrets(out, max(out))

    def current_secret(self, service_id: int):
        versions = self._secrets.get(service_id)
        if not versions:
            self.rotate(service_id)
            versions = self._secrets[service_id]
        secret_id = max(versions)
        return secret_id, versions[secret_id]

    def get_service_secret(self, service_id: int, secret_id: int) -> Optional[CryptoKey]:
        if secret_id == SECRET_ID_GENERAL:
            if self.own_name is None or self.own_name.type != service_id or self.own_name not in self.keyring:
                return None
            return self.keyring.get(self.own_name)
        return self._secrets.get(service_id, {}).get(secret_id)

    def new_entity_key(self) -> CryptoKey:
        """A new random key for an entity, of the type C{policy.preferred}."""
        return CryptoKey.generate(self.clock(), self.policy.preferred)

    def session_auth_info(self, service_id: int, name: EntityName, global_id: int,
                          ttl: Optional[float] = None, caps: Optional[AuthCapsInfo] = None,
                          key_type: Optional[int] = None) -> SessionAuthInfo:
        """
        Everything needed to issue a C{service_id} ticket to C{name}.  The
        session key's type: for the AUTH ticket, C{key_type} (the entity
        key's type); for any other service, the lower of C{key_type} and
        the service secret's type, so that both the client and the service
        can use it (KeyServer::_build_session_auth_info, 20.2.4).  Without
        C{key_type}, the service secret's type.
        """
        if ttl is None:
            ttl = self.auth_ttl if service_id == EntityType.AUTH else self.service_ttl
        if caps is None:
            caps = AuthCapsInfo()
            if service_id not in (EntityType.AUTH, EntityType.MON) and name in self.keyring:
                caps = AuthCapsInfo.from_string(self.keyring.caps(name).get(EntityType.name(service_id)))
        secret_id, secret = self.current_secret(service_id)
        kind = secret.type if key_type is None else key_type
        if service_id != EntityType.AUTH:
            kind = min(kind, secret.type)
        ticket = AuthTicket.new(name, global_id, ttl, self.clock(), caps)
        return SessionAuthInfo(service_id, secret_id, ticket, CryptoKey.generate(self.clock(), kind), secret, ttl)

    def decode_ticket(self, service_id: int, blob) -> ServiceTicketInfo:
        """Open a ticket blob sealed for C{service_id}; CephxError if it does not."""
        if not blob.blob:
            raise CephxError("empty %s ticket" % EntityType.name(service_id))
        secret = self.get_service_secret(service_id, blob.secret_id)
        if secret is None:
            raise CephxError("no %s secret with id %d" % (EntityType.name(service_id), blob.secret_id))
        what = "%s ticket" % EntityType.name(service_id)
        return ServiceTicketInfo.from_bytes(decrypt_enc_bl(secret, blob.blob, what, CEPHX_KEY_USAGE_TICKET_INFO))


def _reject(reason: str, err: int = errno.EACCES) -> AuthReject:
    return AuthReject(-err, reason)


@implementer(IServerAuthHandler)
class CephxAuthorityHandler:
    """The monitor role: authenticates entities of a keyring, hands out tickets."""

    method = AuthMethod.CEPHX
    allowed_modes = CEPHX_MODES

    def __init__(self, key_server: CephxKeyServer, first_global_id: int = 4100) -> None:
        self.key_server = key_server
        #: shared with the other handlers of a server (L{share_global_ids})
        self.global_ids = GlobalIdAllocator(first_global_id)

    def __repr__(self) -> str:
        return "<CephxAuthorityHandler %r>" % (self.key_server,)

    def handle_request(self, request):
        try:
            if not request.more:
                return self._start(request)
            return self._finish(request)
        except Msgr2Error as e:
            return _reject("cephx: %s" % (e,))

    def _start(self, request):
        dec = Decoder(request.payload)
        mode = dec.u8()
        if not AUTH_MODE_MON <= mode <= AUTH_MODE_MON_MAX:
            return _reject("cephx: auth mode %d is not a monitor request" % mode)
        name = EntityName.decode(dec)
        global_id = dec.u64()
        challenge = random_u64(nonzero=True)
        request.state["cephx"] = {
            "role": "mon", "name": name, "global_id": global_id, "challenge": challenge,
        }
        return AuthMore(encode_server_challenge(challenge))

    def _finish(self, request):
        st = request.state.get("cephx")
        if not st or st.get("role") != "mon" or not st.get("challenge"):
            return _reject("cephx: AUTH_REQUEST_MORE without a challenge")
        challenge = st.pop("challenge")  # one answer per challenge
        name = st["name"]
        dec = Decoder(request.payload)
        request_type = dec.u16()
        if request_type != CEPHX_GET_AUTH_SESSION_KEY:
            return _reject("cephx: request type 0x%x from %s during auth" % (request_type, name), errno.EINVAL)
        req = Authenticate.decode(dec)
        ks = self.key_server
        if name not in ks.keyring:
            return _reject("cephx: unknown entity %s" % (name,))
        try:
            entity_key = ks.keyring.get(name)
        except KeyringError as e:  # a key of a type we cannot use; the message names the type only
            return _reject("cephx: %s" % (e,))
        if not ks.policy.allows(entity_key.type):
            return _reject("cephx: %s's key is of type %s, which auth_allowed_ciphers (%s) does not allow"
                           % (name, entity_key.type_name, ks.policy.names()))
        expected = calc_client_server_challenge(entity_key, challenge, req.client_challenge)
        if not proofs_equal(req.key, expected):
            return _reject("cephx: %s failed the challenge (wrong key?)" % (name,))

        # global_id: new, or reclaimed with a valid old ticket (CVE-2021-20288)
        global_id = st["global_id"]
        old_session_key = None
        if not global_id:
            if req.old_ticket.blob:
                return _reject("cephx: %s presented a ticket with no global_id" % (name,), errno.EINVAL)
            global_id = self.global_ids.allocate()
        else:
            if not req.old_ticket.blob:
                return _reject("cephx: %s tried to reclaim global_id %d without a ticket" % (name, global_id))
            try:
                old = ks.decode_ticket(EntityType.AUTH, req.old_ticket)
            except Msgr2Error:
                return _reject("cephx: %s tried to reclaim global_id %d with a bad ticket" % (name, global_id))
            if old.ticket.global_id != global_id or old.ticket.name != name:
                return _reject("cephx: %s tried to reclaim global_id %d with a mismatching ticket"
                               % (name, global_id))
            old_session_key = old.session_key

        auth_info = ks.session_auth_info(EntityType.AUTH, name, global_id, key_type=entity_key.type)
        session_key = auth_info.session_key
        enc = Encoder().u16(CEPHX_GET_AUTH_SESSION_KEY).i32(0)
        enc.raw(build_service_ticket_reply(entity_key, [auth_info], old_session_key))
        secret = b""
        if req.other_keys:
            secret = _connection_secret(request.con_mode)
            enc.blob(encrypt_bl(session_key, Encoder().blob(secret).getvalue(), CEPHX_KEY_USAGE_AUTH_CONNECTION_SECRET))
            infos = []
            bit = 1
            while bit <= req.other_keys:
                if req.other_keys & bit and bit != EntityType.AUTH:
                    infos.append(ks.session_auth_info(bit, name, global_id, key_type=entity_key.type))
                bit <<= 1
            enc.blob(build_service_ticket_reply(session_key, infos) if infos else b"")
        elif request.con_mode == ConnectionMode.SECURE:
            return _reject("cephx: %s asked for no service keys, so secure mode has no secret" % (name,),
                           errno.EOPNOTSUPP)
        return AuthDone(global_id, enc.getvalue(), session_key.secret_bytes, secret, name,
                        expires=auth_info.ticket.expires.to_float())

    def handle_principal_session_key(self, auth_payload: bytes) -> bytes:
        """
        Answer an MAuth CEPHX_GET_PRINCIPAL_SESSION_KEY payload (ticket
        renewal); returns the MAuthReply C{result_bl}.  No challenge here,
        as in Ceph: the authorizer is bound to the AUTH session.
        """
        dec = Decoder(auth_payload)
        if dec.u16() != CEPHX_GET_PRINCIPAL_SESSION_KEY:
            raise CephxDecodeError("not a CEPHX_GET_PRINCIPAL_SESSION_KEY request")
        global_id, service_id, blob = decode_authorizer(dec)
        if service_id != EntityType.AUTH:
            raise CephxError("renewal authorizer is for %s, not auth" % EntityType.name(service_id))
        info = self.key_server.decode_ticket(EntityType.AUTH, blob)
        if info.ticket.global_id != global_id:
            raise CephxError("renewal authorizer global_id mismatch")
        if info.ticket.expires.to_float() < self.key_server.clock():
            raise CephxError("expired AUTH ticket")
        decode_authorize(decrypt_bl(info.session_key, dec, "CephXAuthorize", CEPHX_KEY_USAGE_AUTHORIZE))
        if dec.u8() < 1:
            raise CephxDecodeError("CephXServiceTicketRequest struct_v 0")
        keys = dec.u32()
        infos = []
        bit = 1
        while bit <= keys:
            if keys & bit and bit != EntityType.AUTH:
                infos.append(self.key_server.session_auth_info(bit, info.ticket.name, global_id,
                                                               key_type=info.session_key.type))
            bit <<= 1
        return (Encoder().u16(CEPHX_GET_PRINCIPAL_SESSION_KEY).i32(0).getvalue()
                + build_service_ticket_reply(info.session_key, infos))

    def handle_rotating_request(self, name: EntityName, auth_payload: bytes) -> bytes:
        """
        Answer an MAuth CEPHX_GET_ROTATING_KEY from C{name} (a daemon
        authenticated on this connection); returns the MAuthReply
        C{result_bl}.  The secrets are sealed under the daemon's own key.
        """
        dec = Decoder(auth_payload)
        if dec.u16() != CEPHX_GET_ROTATING_KEY:
            raise CephxDecodeError("not a CEPHX_GET_ROTATING_KEY request")
        if name.type in (EntityType.CLIENT, EntityType.AUTH):
            raise CephxError("%s has no service secrets to rotate" % (name,))
        try:
            entity_key = self.key_server.keyring.get(name)
        except KeyringError:
            raise CephxError("unknown entity %s" % (name,)) from None
        return build_rotating_reply(entity_key, self.key_server.rotating_secrets(name.type))


@implementer(IServerAuthHandler)
class CephxServiceHandler:
    """
    The service role (OSD, MDS, MGR, ...): checks authorizers against the
    service secrets.  Every authorizer is challenged, whatever the peer
    claims (CVE-2020-25660), so a replayed AUTH_REQUEST gets nowhere.
    """

    method = AuthMethod.CEPHX
    allowed_modes = CEPHX_MODES

    def __init__(self, key_server: CephxKeyServer, service_ids: Optional[Iterable[int]] = None) -> None:
        self.key_server = key_server
        self.service_ids = None if service_ids is None else frozenset(service_ids)

    def __repr__(self) -> str:
        return "<CephxServiceHandler %r>" % (self.key_server,)

    def handle_request(self, request):
        try:
            return self._verify(request)
        except Msgr2Error as e:
            return _reject("cephx: %s" % (e,))

    def _verify(self, request):
        dec = Decoder(request.payload)
        global_id, service_id, blob = decode_authorizer(dec)
        what = EntityType.name(service_id)
        if service_id == EntityType.AUTH or (self.service_ids is not None and service_id not in self.service_ids):
            return _reject("cephx: authorizer for service %s, which we do not provide" % what)
        info = self.key_server.decode_ticket(service_id, blob)
        ticket = info.ticket
        if ticket.global_id != global_id:
            return _reject("cephx: %s authorizer global_id %d does not match its ticket" % (ticket.name, global_id))
        if ticket.expires.sec and ticket.expires.to_float() < self.key_server.clock():
            return _reject("cephx: %s presented an expired %s ticket" % (ticket.name, what))
        nonce, have_challenge, plus_one = decode_authorize(
            decrypt_bl(info.session_key, dec, "CephXAuthorize", CEPHX_KEY_USAGE_AUTHORIZE))
        st = request.state.setdefault("cephx", {})
        if not request.more:
            challenge = random_u64()
            st.clear()
            st.update(role="service", challenge=challenge)
            return AuthMore(encrypt_enc_bl(info.session_key, encode_authorize_challenge(challenge),
                                           CEPHX_KEY_USAGE_AUTHORIZE_CHALLENGE))
        challenge = st.pop("challenge", None) if st.get("role") == "service" else None
        if challenge is None or not have_challenge or \
                not proofs_equal(plus_one, (challenge + 1) & 0xFFFFFFFFFFFFFFFF):
            return _reject("cephx: %s did not answer the authorizer challenge" % (ticket.name,))
        secret = _connection_secret(request.con_mode)
        reply = encrypt_bl(info.session_key, encode_authorize_reply(nonce + 1, secret), CEPHX_KEY_USAGE_AUTHORIZE_REPLY)
        return AuthDone(global_id, reply, info.session_key.secret_bytes, secret, ticket.name,
                        expires=ticket.expires.to_float() if ticket.expires.sec else 0.0)


@implementer(IServerAuthHandler)
class CephxServerHandler:
    """
    Both roles behind one handler, chosen by the first payload byte: 10-19
    monitor authentication, 1-9 authorizers (a monitor accepts both).
    """

    method = AuthMethod.CEPHX
    allowed_modes = CEPHX_MODES

    def __init__(self, key_server: CephxKeyServer, authority: bool = True,
                 service_ids: Optional[Iterable[int]] = None, first_global_id: int = 4100) -> None:
        self.key_server = key_server
        self.authority = CephxAuthorityHandler(key_server, first_global_id) if authority else None
        self.service = CephxServiceHandler(key_server, service_ids)

    def __repr__(self) -> str:
        return "<CephxServerHandler %r authority=%s>" % (self.key_server, self.authority is not None)

    @property
    def global_ids(self) -> Optional[GlobalIdAllocator]:
        """The authority role's global_id allocator (None without that role)."""
        return self.authority.global_ids if self.authority is not None else None

    @global_ids.setter
    def global_ids(self, allocator: GlobalIdAllocator) -> None:
        if self.authority is not None:
            self.authority.global_ids = allocator

    def handle_request(self, request):
        if request.more:
            role = request.state.get("cephx", {}).get("role")
        else:
            mode = request.payload[0] if request.payload else 0
            if AUTH_MODE_MON <= mode <= AUTH_MODE_MON_MAX:
                role = "mon"
            elif AUTH_MODE_AUTHORIZER <= mode <= AUTH_MODE_AUTHORIZER_MAX:
                role = "service"
            else:
                return _reject("cephx: unknown auth mode %d" % mode)
        if role == "mon" and self.authority is not None:
            return self.authority.handle_request(request)
        if role == "service":
            return self.service.handle_request(request)
        return _reject("cephx: we do not authenticate that kind of request")


# --- the plugin ----------------------------------------------------------------------------

@implementer(IPlugin, IAuthProviderFactory)
class CephxAuthProvider:
    name = "cephx"
    methodID = AuthMethod.CEPHX
    description = "Ceph's shared-secret authentication (crc or secure mode)."
    argStringFormat = ("keyring=PATH[:name=ENTITY][:allowed_ciphers=aes,aes256k][:service_cipher=aes256k]"
                       "[:preferred_cipher=aes256k] (client: whose key to use, default client.admin; "
                       "server: the keyring of the entities it authenticates, name = our own entity, "
                       "and the monitor's cipher policy: key types allowed to authenticate, type of "
                       "new service secrets and of new keys)")

    def clientHandler(self, argstring="", name=None, global_id=0, keyring=None, key=None,
                      want_keys=DEFAULT_WANT_KEYS, **kwargs):
        args = parseArgString(argstring, ("keyring", "name"), "cephx")
        if name is None:
            name = EntityName.parse(args.get("name", "client.admin"))
        elif isinstance(name, str):
            name = EntityName.parse(name)
        if key is None:
            if keyring is None:
                path = args.get("keyring")
                if not path:
                    raise KeyringError("cephx needs keyring=PATH")
                keyring = Keyring.load(path)
            key = keyring.get(name)
        return CephxClientHandler(name, key, global_id, want_keys)

    def serverHandler(self, argstring="", keyring=None, key_server=None, authority=True, service_ids=None,
                      policy=None, **kwargs):
        """
        A server handler: the authority (monitor) role and the service role
        by default; C{authority=False} for a daemon that only checks
        authorizers (with the secrets of C{key_server}, e.g. rotating
        secrets fetched from a monitor).  The cipher policy comes from
        C{policy} (a L{CipherPolicy}) or the argstring's
        C{allowed_ciphers}, C{service_cipher} and C{preferred_cipher};
        ValueError if they name an unknown or unusable cipher.
        """
        args = parseArgString(argstring, ("keyring", "name", "allowed_ciphers", "service_cipher",
                                          "preferred_cipher"), "cephx")
        if key_server is None:
            if keyring is None:
                path = args.get("keyring")
                if not path:
                    raise KeyringError("cephx needs keyring=PATH")
                keyring = Keyring.load(path)
            own = EntityName.parse(args["name"]) if args.get("name") else None
            if policy is None:
                policy = CipherPolicy.parse(args.get("allowed_ciphers"), args.get("service_cipher"),
                                            args.get("preferred_cipher"))
            key_server = CephxKeyServer(keyring, own, policy=policy)
        return CephxServerHandler(key_server, authority=authority, service_ids=service_ids)
