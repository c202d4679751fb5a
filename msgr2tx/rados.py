"""
RADOS objects from Twisted, with no librados.

L{Rados} is a client: a monitor session (L{msgr2tx.clients.monclient.MonClient}),
the OSDMap kept current (L{msgr2tx.clients.follower.OSDMapFollower}) and the
L{msgr2tx.clients.objecter.Objecter} that sends requests to OSDs.  An
L{IoCtx} is one pool (and namespace); its methods return Deferreds, so in a
coroutine run by C{defer.ensureDeferred} they are awaited::

    rados = Rados(reactor, "v2:127.0.0.1:3300", auth="cephx:keyring=/etc/ceph/ceph.client.admin.keyring")
    await rados.connect()
    ioctx = rados.open_ioctx("data")
    await ioctx.write_full("greeting", b"hello")
    data = await ioctx.read("greeting")
    rados.close()

Failures are L{msgr2tx.errors.RadosError} subclasses: L{ObjectNotFound}
(ENOENT), L{ObjectExists} (EEXIST), L{NoData} (ENODATA, no such xattr),
L{PermissionDenied}, L{PoolNotFound}, L{OpTimeout}.  The operations follow
librados's (C{src/librados/IoCtxImpl.cc} and C{src/osdc/Objecter.h}
C{ObjectOperation}): the same ops with the same arguments go on the wire.
"""

import dataclasses
import errno
import os
from typing import Any, Dict, Iterable, List, Optional, Sequence, Union

from twisted.internet import defer

from msgr2tx.ceph import osd_types as T
from msgr2tx.clients.follower import OSDMapFollower
from msgr2tx.clients.objecter import Objecter
from msgr2tx.ceph.osdmap import OSDMap, PgId, PlacementError
from msgr2tx.core.config import ConnectionConfig
from msgr2tx.core.constants import ConnectionMode
from msgr2tx.core.encoding import Decoder, EntityName
from msgr2tx.core.features import CEPH_FEATUREMASK_CRUSH_MSR
from msgr2tx.errors import (
    NoData, ObjectExists, ObjectNotFound, OperationNotSupported, PermissionDenied, PoolNotFound, RadosError,
)

#: entries asked for per PGNLS request (librados's default listing batch)
LIST_BATCH = 1024
#: the namespace that lists every namespace (C{LIBRADOS_ALL_NSPACES})
ALL_NAMESPACES = "\x01"
#: bytes per read request when reading more (the rados tool's op size)
READ_CHUNK = 4 << 20
#: omap entries asked for per request when reading a whole omap
OMAP_BATCH = 512

_ERRORS = {
    errno.ENOENT: (ObjectNotFound, "not found"),
    errno.EEXIST: (ObjectExists, "already exists"),
    errno.ENODATA: (NoData, "has no such attribute"),
    errno.EPERM: (PermissionDenied, "operation not permitted"),
    errno.EACCES: (PermissionDenied, "permission denied"),
    errno.EOPNOTSUPP: (OperationNotSupported, "refused: operation not supported"),
    # (what an OSD answers a write that FULL_TRY let through to a full pool)
    errno.ENOSPC: (RadosError, "refused: the pool is full (no space left on its OSDs)"),
    errno.EDQUOT: (RadosError, "refused: the pool's quota is reached"),
    # (PrimaryLogPG: an extent past osd_max_object_size)
    errno.EFBIG: (RadosError, "refused: it would end past the OSDs' largest object size (osd_max_object_size, "
                              "128 MiB by default; 'ceph config get osd osd_max_object_size' shows it)"),
}

#: what an erasure-coded pool refuses (pg_pool_t::supports_omap, requires_aligned_append)
_EC_REFUSALS = ("; pool %r is erasure-coded: Ceph refuses omap there, and writes other than whole-object "
                "writes and stripe-aligned appends unless the pool has allow_ec_overwrites")


def _error(result: int, pool: str, oid: Optional[str], what: str, namespace: str = "") -> RadosError:
    code = -result
    # in words, then the errno's name: 'message too long (EMSGSIZE)'
    cls, text = _ERRORS.get(code, (RadosError, os.strerror(code).lower() if code in errno.errorcode
                                   else "error %d" % code))
    subject = "object %r in pool %r" % (oid, pool) if oid is not None else "pool %r" % (pool,)
    if namespace:
        subject += " namespace %r" % (namespace,)
    return cls("%s: %s %s (%s)" % (what, subject, text, errno.errorcode.get(code, code)),
               code, pool=pool, oid=oid)


def _check_extent(offset: int, length: int = 0, what: str = "length") -> None:
    """Refuse a negative offset or length before it reaches the wire (they are u64 there)."""
    if offset < 0 or length < 0:
        raise ValueError("offset and %s must not be negative (got %d and %d)" % (what, offset, length))


def _reply_ops(ops):
    # a large read's outdata arrives as a view of the received frame: operate() gives bytes
    for op in ops:
        if op.outdata.__class__ is not bytes:
            op.outdata = bytes(op.outdata)
    return ops


def _nothing(ops) -> None:
    return None


def _first_outdata(ops) -> bytes:
    data = ops[0].outdata
    return data if data.__class__ is bytes else bytes(data)


def _first_outdata_view(ops):
    return ops[0].outdata


@dataclasses.dataclass(frozen=True)
class ObjectStat:
    """What L{IoCtx.stat} returns: size in bytes, mtime in seconds since the epoch."""

    size: int
    mtime: float


class Rados:
    """
    A RADOS client.

    @param reactor: the Twisted reactor.
    @param mon_addrs: monitors as L{msgr2tx.clients.monclient.resolve_monitors}
        takes them: a C{mon_host} string (C{"v2:127.0.0.1:3300"}, several
        separated by commas) or a list of addresses.
    @param auth: an auth spec (C{"none"}, C{"cephx:keyring=PATH"}; several
        separated by commas; the entity is C{name}) or a list of client auth
        handlers and specs.
    @param name: our entity (C{client.admin}).
    @param config: a L{ConnectionConfig} for the OSD sessions (modes,
        msgr2 revision) and, unless C{mon_config} is given, the monitor
        sessions too; lossy sessions are always used.  Without either, the
        modes are Ceph's defaults: C{ms_mon_client_mode} (secure, then crc)
        to monitors and C{ms_client_mode} (crc, then secure) to OSDs.
    @param mon_config: a L{ConnectionConfig} for the monitor sessions only.
    @param op_timeout: seconds an object operation may take (resends
        included) before it fails with L{msgr2tx.errors.OpTimeout}.
    @param connect_timeout: seconds L{connect} may take in all (monitor
        session and first OSDMap) before it fails with
        L{msgr2tx.errors.NoMonitorSession} or L{msgr2tx.errors.NoOSDMap}
        (both L{msgr2tx.errors.ConnectionClosed}).
    """

    def __init__(self, reactor, mon_addrs: Union[str, Sequence[str]], auth: Union[str, Sequence] = "none",
                 name: str = "client.admin", config: Optional[ConnectionConfig] = None,
                 op_timeout: float = 30.0, connect_timeout: float = 10.0,
                 mon_config: Optional[ConnectionConfig] = None) -> None:
        self.reactor = reactor
        self.mon_addrs = mon_addrs if isinstance(mon_addrs, str) else list(mon_addrs)
        self.name = EntityName.parse(name)
        if isinstance(auth, str):
            from msgr2tx.auth import makeClientHandler
            self.auth = [makeClientHandler(spec.strip(), name=self.name) for spec in auth.split(",") if spec.strip()]
        else:
            # handlers, or auth specs ("cephx:keyring=PATH", "none") among them
            from msgr2tx.auth import makeClientHandler
            self.auth = [makeClientHandler(a.strip(), name=self.name) if isinstance(a, str) else a for a in auth]
        if mon_config is None:
            mon_config = config or ConnectionConfig(name=self.name, modes=(ConnectionMode.SECURE, ConnectionMode.CRC))
        if config is None:
            config = ConnectionConfig(name=self.name, modes=(ConnectionMode.CRC, ConnectionMode.SECURE))
        # we run MSR rules, and a cluster whose map has them requires CRUSH_MSR of its clients
        self.config, self.mon_config = (
            dataclasses.replace(c, lossy=True, features_supported=c.features_supported | CEPH_FEATUREMASK_CRUSH_MSR)
            for c in (config, mon_config))
        self.op_timeout = op_timeout
        self.connect_timeout = connect_timeout
        self.monclient: Any = None
        self.follower: Optional[OSDMapFollower] = None
        self.objecter: Optional[Objecter] = None

    @defer.inlineCallbacks
    def connect(self, give_up_after_round: bool = False):
        """
        Find a monitor and authenticate (L{MonClient} in hunting mode:
        several monitors dialled at once, the session kept and hunted for
        again when it drops), wait for the first OSDMap, and get ready for
        object I/O, all within C{connect_timeout} seconds.  Fires with
        C{self}.

        @param give_up_after_round: fail as soon as every monitor of the
            first hunt round failed (connection refused, say) rather than
            hunting again until C{connect_timeout}: for command lines.
        @raise AuthError: (as a failure) the monitors refused our credentials.
        @raise NoMonitorSession: (as a failure) no monitor session within
            C{connect_timeout} seconds (or after the first round); the
            message names each monitor's last failure.
        @raise NoOSDMap: (as a failure) the session came up but the monitor
            sent no OSDMap before C{connect_timeout} ran out: the peer is not
            a Ceph monitor, or one that cannot serve maps.
        """
        from msgr2tx.clients.monclient import MonClient

        started = self.reactor.seconds()
        self.monclient = MonClient(clock=self.reactor)
        self.follower = OSDMapFollower(self.monclient)
        try:
            yield self.monclient.start(self.reactor, self.mon_addrs, self.auth, self.mon_config,
                                       connect_timeout=self.connect_timeout)
            yield self.monclient.authenticate(timeout=self.connect_timeout, give_up_after_round=give_up_after_round)
        except BaseException:
            self.monclient.stop()
            raise
        self.objecter = Objecter(self.reactor, self.follower, self.auth, self.config, op_timeout=self.op_timeout)
        try:
            yield self._first_osdmap(max(0.0, self.connect_timeout - (self.reactor.seconds() - started)))
        except BaseException:
            self.close()
            raise
        return self

    def _first_osdmap(self, timeout: float) -> defer.Deferred:
        """The follower's first OSDMap, or L{NoOSDMap} after C{timeout} seconds."""
        from msgr2tx.errors import NoOSDMap

        waiting = self.follower.when_epoch(1)
        if waiting.called:
            return waiting
        d: defer.Deferred = defer.Deferred()

        def expire():
            monclient = self.monclient
            protocol = monclient.protocol
            info = getattr(protocol, "info", None)
            peer = str(info.peer_name) if info is not None else "a monitor"
            addr = dict(monclient.monitors).get(monclient.active_name)
            where = "%s (%s)" % (monclient.active_name, addr) if monclient.active_name else "the monitor"
            d.errback(NoOSDMap(
                "no osdmap from %s within %gs of connect(): the session came up (the peer identified as %s) "
                "but it never answered the osdmap subscription; is it a Ceph monitor (port 3300 of a ceph-mon), "
                "and in quorum?" % (where, self.connect_timeout, peer), where))
        call = self.reactor.callLater(timeout, expire)

        def got(result):
            if call.active():
                call.cancel()
                d.callback(result)
        waiting.addBoth(got)
        return d

    @property
    def osdmap(self) -> OSDMap:
        """The current OSDMap. @raise RadosError: not connected."""
        if self.follower is None or self.follower.osdmap is None:
            raise RadosError("not connected: call connect() first")
        return self.follower.osdmap

    def pool_names(self) -> List[str]:
        """The pools of the current map, by id."""
        return [p.name for _, p in sorted(self.osdmap.pools.items())]

    def open_ioctx(self, pool: Union[str, int], namespace: str = "") -> "IoCtx":
        """
        An I/O context for a pool (by name or id) and namespace.

        @raise PoolNotFound: no such pool in the current map.
        """
        m = self.osdmap
        if isinstance(pool, int):
            p = m.pools.get(pool)
            if p is None:
                raise PoolNotFound("no pool with id %d in osdmap e%d" % (pool, m.epoch), errno.ENOENT, pool=pool)
        else:
            try:
                p = m.pool_by_name(pool)
            except PlacementError:
                raise PoolNotFound("no pool named %r in osdmap e%d (pools: %s)"
                                   % (pool, m.epoch, ", ".join(self.pool_names()) or "none"),
                                   errno.ENOENT, pool=pool) from None
        return IoCtx(self, p.id, p.name, namespace)

    def close(self) -> None:
        """Fail what is in flight, close the OSD sessions and the monitor session."""
        if self.objecter is not None:
            self.objecter.close()
        if self.monclient is not None:
            self.monclient.stop()


class IoCtx:
    """
    Object I/O in one pool and namespace.  Object names are str; data,
    xattr and omap values are bytes.  Every method returns a Deferred.
    """

    def __init__(self, rados: Rados, pool_id: int, pool_name: str, namespace: str = "") -> None:
        self.rados = rados
        self.pool_id = pool_id
        self.pool_name = pool_name
        self.namespace = namespace
        #: the largest read sent as one request (the rados tool's 4 MiB)
        self.read_chunk = READ_CHUNK

    def __repr__(self) -> str:
        return "<IoCtx pool %d (%s) ns=%r>" % (self.pool_id, self.pool_name, self.namespace)

    def set_namespace(self, namespace: str) -> None:
        self.namespace = namespace

    def operate(self, oid: str, ops: List[T.OSDOp], what: str = "operate", key: str = "",
                timeout: Optional[float] = None) -> defer.Deferred:
        """
        Run a compound operation (a list of L{msgr2tx.ceph.osd_types.OSDOp})
        on one object; fires with the reply's ops (each with C{rval} and
        C{outdata}).  C{what} names the operation in error messages.

        @raise RadosError: (as a failure) a negative result, as its subclass.
        """
        return self._submit(oid, ops, what, _reply_ops, key, timeout)

    def _submit(self, oid: str, ops: List[T.OSDOp], what: str, pick, key: str = "",
                timeout: Optional[float] = None, extra_flags: int = 0) -> defer.Deferred:
        """L{operate}, firing with C{pick(reply ops)} (one callback per request)."""
        objecter = self.rados.objecter
        if objecter is None:
            return defer.fail(RadosError("not connected: call connect() first"))
        return objecter.submit(self.pool_id, oid, ops, self.namespace, key, None, timeout,
                               extra_flags).addCallback(self._done, oid, what, pick)

    def _done(self, reply, oid: str, what: str, pick):
        if reply.result < 0:
            e = _error(reply.result, self.pool_name, oid, what, self.namespace)
            if isinstance(e, OperationNotSupported) and self._erasure_coded():
                e.args = (e.args[0] + _EC_REFUSALS % (self.pool_name,),)
            raise e
        return pick(reply.ops)

    def _erasure_coded(self) -> bool:
        m = self.rados.follower.osdmap if self.rados.follower is not None else None
        pool = m.pools.get(self.pool_id) if m is not None else None
        return pool is not None and pool.type == pool.TYPE_ERASURE

    # ---- data ------------------------------------------------------------------

    def write_full(self, oid: str, data: bytes) -> defer.Deferred:
        """Replace the object's data with C{data} (creating it). Fires with None."""
        data = bytes(data)
        op = T.OSDOp.extent(T.OP_WRITEFULL, 0, len(data), data)
        return self._submit(oid, [op], "write_full", _nothing)

    def write(self, oid: str, data: bytes, offset: int = 0) -> defer.Deferred:
        """Write C{data} at byte C{offset} (creating the object). Fires with None."""
        _check_extent(offset)
        data = bytes(data)
        op = T.OSDOp.extent(T.OP_WRITE, offset, len(data), data)
        return self._submit(oid, [op], "write", _nothing)

    def append(self, oid: str, data: bytes) -> defer.Deferred:
        """Append C{data} to the object. Fires with None."""
        data = bytes(data)
        op = T.OSDOp.extent(T.OP_APPEND, 0, len(data), data)
        return self._submit(oid, [op], "append", _nothing)

    def read(self, oid: str, length: Optional[int] = None, offset: int = 0) -> defer.Deferred:
        """
        Fire with up to C{length} bytes from C{offset} (C{None}: to the end
        of the object).  Short at the end of the object, as in librados.
        Reads of more than C{read_chunk} bytes go as several requests of
        that size, as the rados tool reads (so no reply outgrows a frame).

        @raise ValueError: a negative C{offset} or C{length}.
        @raise ObjectNotFound: (as a failure) no such object.
        """
        _check_extent(offset, length or 0)
        if length is not None and length <= self.read_chunk:
            if length == 0:
                return defer.succeed(b"")
            op = T.OSDOp.extent(T.OP_READ, offset, length)
            return self._submit(oid, [op], "read", _first_outdata)
        return self._read_chunks(oid, length, offset)

    def read_view(self, oid: str, length: int, offset: int = 0) -> defer.Deferred:
        """
        L{read} without its last copy: fire with up to C{length} bytes from
        C{offset} as C{bytes}, or as a read-only C{memoryview} of the
        received frame (no copy of the data after the socket read) when 64
        KiB or more arrived in a frame the messenger keeps whole (frames of
        256 KiB and more, L{msgr2tx.core.framing.LARGE_FRAME}).  The view
        keeps that frame's buffer (its size plus 64 KiB) alive, and a later
        large reply can reuse the buffer only once nothing refers to it, so
        drop or C{release()} the view when done; take C{bytes(view)} to keep
        the data.  (In secure mode on msgr2.1, data of 1 MiB or more is
        decrypted into C{bytes} of its own, L{msgr2tx.core.framing.
        OWN_SEGMENT_MIN}: it comes as those C{bytes}.)  C{length} is at most
        C{read_chunk} (one request).

        @raise ValueError: C{length} is larger than C{read_chunk}, or negative.
        @raise ObjectNotFound: (as a failure) no such object.
        """
        _check_extent(offset, length)
        if length > self.read_chunk:
            raise ValueError("read_view reads at most read_chunk (%d) bytes in one request, not %d: use read() "
                             "for more (it joins several requests) or read_view in pieces" % (self.read_chunk, length))
        if length <= 0:
            return defer.succeed(b"")
        op = T.OSDOp.extent(T.OP_READ, offset, length)
        return self._submit(oid, [op], "read", _first_outdata_view)

    @defer.inlineCallbacks
    def _read_chunks(self, oid: str, length: Optional[int], offset: int):
        parts = []
        got = 0
        while length is None or got < length:
            want = self.read_chunk if length is None else min(self.read_chunk, length - got)
            data = yield self._submit(oid, [T.OSDOp.extent(T.OP_READ, offset + got, want)], "read",
                                      _first_outdata_view)
            parts.append(data)
            got += len(data)
            if len(data) < want:
                break
        return b"".join(parts)

    def stat(self, oid: str) -> defer.Deferred:
        """Fire with an L{ObjectStat} (size, mtime). @raise ObjectNotFound: (as a failure)."""
        def done(ops):
            size, mtime = T.decode_stat(ops[0].outdata)
            return ObjectStat(size, mtime.to_float())
        return self.operate(oid, [T.OSDOp.plain(T.OP_STAT)], "stat").addCallback(done)

    def remove(self, oid: str, force_full: bool = False) -> defer.Deferred:
        """
        Delete the object.  Like every write, a remove waits while the pool
        is full (Ceph's Objecter holds it); C{force_full} sends it anyway
        (C{CEPH_OSD_FLAG_FULL_FORCE}, librados' C{OPERATION_FULL_FORCE}, the
        rados tool's C{rm --force-full}): how space is freed in a full pool.

        @raise ObjectNotFound: (as a failure).
        """
        return self._submit(oid, [T.OSDOp.plain(T.OP_DELETE)], "remove", _nothing,
                            extra_flags=T.FLAG_FULL_FORCE if force_full else 0)

    def create(self, oid: str, exclusive: bool = True) -> defer.Deferred:
        """Create an empty object. @raise ObjectExists: (as a failure) C{exclusive} and it exists."""
        op = T.OSDOp.plain(T.OP_CREATE, flags=T.OP_FLAG_EXCL if exclusive else 0)
        return self.operate(oid, [op], "create").addCallback(lambda _: None)

    def truncate(self, oid: str, size: int) -> defer.Deferred:
        """Cut or extend the object to C{size} bytes. @raise ValueError: a negative C{size}."""
        _check_extent(size, what="size")
        op = T.OSDOp.extent(T.OP_TRUNCATE, size, 0)
        return self.operate(oid, [op], "truncate").addCallback(lambda _: None)

    # ---- xattrs ----------------------------------------------------------------

    def getxattr(self, oid: str, name: str) -> defer.Deferred:
        """Fire with the attribute's value. @raise NoData: (as a failure) no such attribute."""
        op = T.OSDOp.xattr(T.OP_GETXATTR, name.encode("utf-8"))
        return self._submit(oid, [op], "getxattr %s" % name, _first_outdata)

    def setxattr(self, oid: str, name: str, value: bytes) -> defer.Deferred:
        """Set an attribute (creating the object)."""
        op = T.OSDOp.xattr(T.OP_SETXATTR, name.encode("utf-8"), bytes(value))
        return self.operate(oid, [op], "setxattr %s" % name).addCallback(lambda _: None)

    def rmxattr(self, oid: str, name: str) -> defer.Deferred:
        """Remove an attribute."""
        op = T.OSDOp.xattr(T.OP_RMXATTR, name.encode("utf-8"))
        return self.operate(oid, [op], "rmxattr %s" % name).addCallback(lambda _: None)

    # ---- omap ------------------------------------------------------------------

    def omap_set(self, oid: str, values: Dict[str, bytes]) -> defer.Deferred:
        """Set omap keys (C{omap_set_vals}; creates the object)."""
        op = T.OSDOp.omap(T.OP_OMAPSETVALS, T.encode_str_bl_map(values))
        return self.operate(oid, [op], "omap_set").addCallback(lambda _: None)

    def omap_get_vals(self, oid: str, start_after: str = "", filter_prefix: str = "",
                      max_return: int = OMAP_BATCH) -> defer.Deferred:
        """
        One C{omap_get_vals} request: fires with C{(values, more)}, the keys
        after C{start_after} with C{filter_prefix} (at most C{max_return})
        and whether more follow.
        """
        op = T.OSDOp.omap(T.OP_OMAPGETVALS, T.omap_get_vals_indata(start_after, max_return, filter_prefix))
        return self._submit(oid, [op], "omap_get_vals", lambda ops: T.decode_omap_vals(ops[0].outdata))

    @defer.inlineCallbacks
    def omap_get(self, oid: str, filter_prefix: str = ""):
        """Fire with the whole omap (or the keys with C{filter_prefix}) as a dict, in as many requests as it takes."""
        out: Dict[str, bytes] = {}
        after = ""
        while True:
            values, more = yield self.omap_get_vals(oid, after, filter_prefix)
            out.update(values)
            if not more or not values:
                return out
            after = max(values, key=lambda k: k.encode("utf-8", "surrogateescape"))

    def omap_get_by_keys(self, oid: str, keys: Iterable[str]) -> defer.Deferred:
        """Fire with the values of those keys that exist (C{omap_get_vals_by_keys})."""
        op = T.OSDOp.omap(T.OP_OMAPGETVALSBYKEYS, T.encode_str_set(keys))
        return self._submit(oid, [op], "omap_get_by_keys",
                            lambda ops: T.decode_str_bl_map(Decoder(ops[0].outdata)))

    def omap_rm_keys(self, oid: str, keys: Iterable[str]) -> defer.Deferred:
        """Remove omap keys."""
        op = T.OSDOp.omap(T.OP_OMAPRMKEYS, T.encode_str_set(keys))
        return self.operate(oid, [op], "omap_rm_keys").addCallback(lambda _: None)

    # ---- listing ---------------------------------------------------------------

    @defer.inlineCallbacks
    def list_objects(self, batch: int = LIST_BATCH, all_namespaces: bool = False):
        """
        Fire with the L{msgr2tx.ceph.osd_types.ListEntry}s of the pool's
        objects in this namespace, or in every namespace with
        C{all_namespaces} (C{rados ls}, C{rados ls --all}), PG by PG
        (PGNLS), in hash order as Ceph lists them.
        """
        objecter = self.rados.objecter
        if objecter is None:
            raise RadosError("not connected: call connect() first")
        entries: List[T.ListEntry] = []
        cursor = T.HOBJECT_MIN
        while True:
            m = self.rados.osdmap
            pool = m.pools.get(self.pool_id)
            if pool is None:
                raise PoolNotFound("pool %r is gone (osdmap e%d)" % (self.pool_name, m.epoch), errno.ENOENT,
                                   pool=self.pool_name)
            seed = pool.raw_pg_to_pg(PgId(self.pool_id, cursor.hash)).seed
            reply = yield objecter.submit(self.pool_id, "", [T.pgnls_op(batch, m.epoch, cursor)],
                                          namespace=ALL_NAMESPACES if all_namespaces else self.namespace,
                                          pg_seed=seed)
            if reply.result < 0:
                raise _error(reply.result, self.pool_name, None, "list", self.namespace)
            response = T.NlsResponse.decode(reply.ops[0].outdata)
            entries.extend(response.entries)
            cursor = response.handle
            if cursor.max:
                return entries

    @defer.inlineCallbacks
    def list_names(self):
        """Fire with the names of the pool's objects in this namespace, sorted."""
        entries = yield self.list_objects()
        return sorted(e.oid for e in entries)


__all__ = ["Rados", "IoCtx", "ObjectStat", "LIST_BATCH", "OMAP_BATCH", "READ_CHUNK", "ALL_NAMESPACES"]
