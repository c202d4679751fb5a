"""
The Objecter, Twisted side: object requests sent to the right OSD and
resent when the map moves them.

An L{Objecter} takes requests (pool, object or PG, a list of
L{msgr2tx.ceph.osd_types.OSDOp}), finds their PG and its acting primary in
the current OSDMap (L{msgr2tx.clients.follower.OSDMapFollower}), and sends an
L{msgr2tx.messages.osd.MOSDOp} over one lossy msgr2 session per OSD
(an authorizer from the monitor's service tickets when auth is cephx).
Replies are matched by tid and by the attempt they answer.  It follows the
rules of Ceph's C{src/osdc/Objecter.cc}:

 - C{_calc_target}: a request is sent again when a new map changes its PG's
   interval (up or acting set or primary, pool size or pg_num) or the pool's
   C{last_force_op_resend} passes what the request last saw; a request with
   no primary, or paused (C{target_should_be_paused}: the PAUSERD/PAUSEWR
   map flags; for a write without FULL_TRY or FULL_FORCE, the pool's FULL
   flag or the map's), waits for a map that gives it one (the OSD drops a
   write to a full pool without a reply, so sending it would only time
   out);
 - an OSD whose address changed or which went down loses its session; a
   session that closes under requests reconnects and sends them all again
   (C{_kick_requests}), as a lossy client session must;
 - C{handle_osd_op_reply}: a reply to an earlier attempt is dropped;
   C{-EAGAIN} resubmits with a new tid; a redirect resubmits to the
   redirected locator;
 - C{handle_osd_backoff}: BLOCK is acknowledged and requests for that PG are
   held until UNBLOCK;
 - the op throttle (C{objecter_inflight_ops}, C{objecter_inflight_op_bytes}):
   requests beyond it wait their turn.

Every request has a deadline (C{op_timeout}); when it passes the request
fails with L{msgr2tx.errors.OpTimeout}.  Nothing waits forever.  One timer
serves all deadlines: set for the earliest, it fails what is late, is set
again for the earliest left, and ends when nothing is in flight then
(L{close} cancels it).
"""

import collections
import dataclasses
import errno
import itertools
import struct
import time
from typing import Deque, Dict, List, Optional, Sequence, Set, Tuple

from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from msgr2tx.ceph.osd_types import (
    FLAG_FULL_FORCE, FLAG_FULL_TRY, FLAG_IGNORE_CACHE, FLAG_IGNORE_OVERLAY, FLAG_KNOWN_REDIR, FLAG_ONDISK,
    FLAG_READ, FLAG_REDIRECTED, FLAG_RWORDERED, FLAG_SUPPORTSPOOLEIO, FLAG_WRITE, OP_READ, ObjectLocator, OSDOp,
    op_is_pg, op_is_write,
)
from msgr2tx.ceph.osdmap import OSDMap, PgId, Placement, Pool, stable_mod
from msgr2tx.core.caches import remember
from msgr2tx.core.encoding import utime_t
from msgr2tx.core.features import CEPH_FEATURES_ALL
from msgr2tx.errors import OpTimeout, PoolNotFound, RadosError
from msgr2tx.interfaces import IMsgr2Receiver
from msgr2tx.messages.osd import (
    BACKOFF_ACK_BLOCK, BACKOFF_BLOCK, BACKOFF_UNBLOCK, MOSDBackoff, MOSDMap, MOSDOp, MOSDOpReply,
)

#: C{CEPH_OSDMAP_FULL} (the cluster-wide full flag: deprecated since Mimic,
#: which marks pools full instead, but still honoured), C{CEPH_OSDMAP_PAUSERD},
#: C{CEPH_OSDMAP_PAUSEWR}
OSDMAP_FULL = 1 << 1
OSDMAP_PAUSERD = 1 << 2
OSDMAP_PAUSEWR = 1 << 3
#: object names whose raw hash the Objecter remembers (cleared when full)
SEED_CACHE = 4096
_NO_MTIME = utime_t(0, 0)
#: a deadline this close to now has come (float sums of now and timeouts)
_DEADLINE_SLACK = 1e-6
#: C{extent.length} in the C{ceph_osd_op} union
_EXTENT_LENGTH = struct.Struct("<Q")


_BASE_FLAGS = FLAG_KNOWN_REDIR | FLAG_SUPPORTSPOOLEIO | FLAG_ONDISK


def request_flags(ops: Sequence[OSDOp]) -> int:
    """
    The C{flags} of a request, as C{Objecter::_prepare_osd_op} and
    C{pg_read} set them: KNOWN_REDIR, SUPPORTSPOOLEIO and ONDISK always,
    WRITE if an op writes else READ, and IGNORE_OVERLAY for PG ops
    (listing).
    """
    if len(ops) == 1:
        code = ops[0].op
        return _BASE_FLAGS | (FLAG_WRITE if op_is_write(code) else FLAG_READ) | (
            FLAG_IGNORE_OVERLAY if op_is_pg(code) else 0)
    flags = _BASE_FLAGS
    flags |= FLAG_WRITE if any(op_is_write(o.op) for o in ops) else FLAG_READ
    if any(op_is_pg(o.op) for o in ops):
        flags |= FLAG_IGNORE_OVERLAY
    return flags


def build_request(op: "Op", epoch: int, client_inc: int = 0, features: int = CEPH_FEATURES_ALL) -> MOSDOp:
    """The L{MOSDOp} for C{op}'s current target and attempt (C{Objecter::_prepare_osd_op})."""
    assert op.pg is not None
    locator = op.locator
    if op.pg_seed is not None:
        # a PG op's locator carries the PG's seed as its hash (Objecter::pg_read)
        locator = ObjectLocator(locator.pool, locator.key, locator.nspace, op.pg_seed)
    return MOSDOp.request(op.pg.pool, op.pg.seed, op.hash, epoch, op.flags, op.oid, locator, op.ops, client_inc,
                          op.mtime, op.attempts, features, op.shard, op.tid)


def _respects_full(flags: int) -> bool:
    """C{op_target_t::respects_full}: a write (or read-ordered) request without FULL_TRY or FULL_FORCE."""
    return bool(flags & (FLAG_WRITE | FLAG_RWORDERED)) and not flags & (FLAG_FULL_TRY | FLAG_FULL_FORCE)


#: what holds a request back (L{Objecter.held_reasons}): a full pool, the
#: pause flags, no primary OSD up for its PG
HELD_FULL = "full"
HELD_PAUSED = "paused"
HELD_NO_PRIMARY = "no-primary"


def _pause(flags: int, osdmap: OSDMap, pool: Pool) -> Optional[str]:
    """
    C{Objecter::target_should_be_paused} (without the epoch barrier, which
    we never set): L{HELD_PAUSED} or L{HELD_FULL} when C{osdmap} holds a
    request with C{flags} to C{pool} back, else None.
    """
    mflags = osdmap.flags
    if flags & FLAG_READ and mflags & OSDMAP_PAUSERD:
        return HELD_PAUSED
    if flags & FLAG_WRITE:
        if mflags & OSDMAP_PAUSEWR:
            return HELD_PAUSED
        if _respects_full(flags) and (mflags & OSDMAP_FULL or pool.flags & Pool.FLAG_FULL):
            return HELD_FULL
    return None


def pause_reason(flags: int, osdmap: OSDMap, pool: Optional[Pool]) -> Optional[Tuple[str, str]]:
    """
    Why C{osdmap} holds a request with C{flags} to C{pool} back:
    (L{HELD_FULL} or L{HELD_PAUSED}, a sentence that says what to do), or
    None when it does not.
    """
    kind = _pause(flags, osdmap, pool) if pool is not None else None
    if kind is None:
        return None
    if kind == HELD_PAUSED:
        return HELD_PAUSED, ("the cluster is paused (osdmap e%d has the pauserd/pausewr flags; "
                             "'ceph osd unpause' clears them)" % osdmap.epoch)
    if pool.flags & Pool.FLAG_FULL_QUOTA:
        why = ("its quota is reached ('ceph health detail' says which; raise it with "
               "'ceph osd pool set-quota %s max_bytes|max_objects N')" % pool.name)
    elif pool.flags & Pool.FLAG_FULL:
        why = ("an OSD it maps to is full ('ceph health detail' names it; free space, add OSDs, "
               "or raise the ratio with 'ceph osd set-full-ratio RATIO')")
    else:
        why = "the cluster is marked full"
    return HELD_FULL, ("pool %r is full in osdmap e%d: %s; Ceph holds writes to a full pool until it is not"
                       % (pool.name, osdmap.epoch, why))


class Op:
    """
    One request in flight.  C{pgid} is set for PG ops (listing): the
    folded PG to send to; otherwise the object's name places it.
    C{deferred} fires with the L{MOSDOpReply} (whatever its result).
    C{deadline} is when it times out (reactor seconds; 0: never), after
    C{timeout} seconds.
    """

    __slots__ = ("locator", "oid", "ops", "flags", "pg_seed", "tid", "attempts", "deferred", "deadline",
                 "timeout", "session", "osd", "pg", "hash", "interval", "last_force_resend", "paused", "shard",
                 "budget", "budgeted", "mtime", "done")

    def __init__(self, locator: ObjectLocator, oid: str, ops: List[OSDOp], flags: int,
                 pg_seed: Optional[int] = None) -> None:
        self.locator = locator
        self.oid = oid
        self.ops = ops
        self.flags = flags
        self.pg_seed = pg_seed
        self.tid = 0
        self.attempts = 0
        self.deferred: defer.Deferred = defer.Deferred()
        self.deadline = 0.0
        self.timeout = 0.0
        self.session: Optional["OSDSession"] = None
        # the target as last calculated
        self.osd = -1
        self.pg: Optional[PgId] = None
        self.hash = 0
        self.interval: Optional[tuple] = None
        self.last_force_resend = 0
        self.paused = False
        self.shard = -1
        self.budget = 0
        self.budgeted = False
        self.mtime = _NO_MTIME
        self.done = False

    @property
    def is_write(self) -> bool:
        return bool(self.flags & FLAG_WRITE)

    def __repr__(self) -> str:
        return "<Op tid=%d %d/%r osd.%d [%s]>" % (self.tid, self.locator.pool, self.oid, self.osd,
                                                  ",".join(o.name for o in self.ops))


@implementer(IMsgr2Receiver)
class OSDSession:
    """
    Our lossy msgr2 session to one OSD: the requests sent on it (by tid),
    the connection (None while connecting or after it closed) and the
    backoffs the OSD asked for.
    """

    def __init__(self, objecter: "Objecter", osd: int, addr: str) -> None:
        self.objecter = objecter
        self.osd = osd
        self.addr = addr
        self.ops: Dict[int, Op] = {}
        self.protocol = None
        self.connecting = False
        self.closed = False
        self.reconnect_call = None
        #: PG -> backoff ids in force
        self.backoffs: Dict[Tuple[int, int], Set[int]] = {}
        #: the map (and its epoch) whose address for this OSD is C{addr}
        self.checked_map: Optional[OSDMap] = None
        self.checked_epoch = -1

    def __repr__(self) -> str:
        return "<OSDSession osd.%d %s ops=%d>" % (self.osd, self.addr, len(self.ops))

    # ---- IMsgr2Receiver ----------------------------------------------------

    def connectionReady(self, protocol, info) -> None:
        if self.closed:
            protocol.close()
            return
        self.protocol = protocol
        self.connecting = False
        for tid in sorted(self.ops):
            self.objecter._transmit(self.ops[tid])

    def messageReceived(self, protocol, message) -> None:
        if protocol is not self.protocol:
            return
        if isinstance(message, MOSDOpReply):
            self.objecter._handle_reply(self, message)
        elif isinstance(message, MOSDBackoff):
            self._handle_backoff(message)
        elif isinstance(message, MOSDMap):
            # an OSD shares the maps we lack (Objecter::handle_osd_map takes them from OSDs too)
            handle = getattr(self.objecter.follower, "handle_osdmap", None)
            if handle is not None:
                handle(message)
        else:
            self.objecter.log.debug("osd.{osd} sent {msg!r}; ignored", osd=self.osd, msg=message)

    def connectionLost(self, protocol, reason) -> None:
        if protocol is not None and protocol is not self.protocol and self.protocol is not None:
            return
        self.protocol = None
        self.connecting = False
        self.backoffs.clear()
        if not self.closed and self.ops:
            # a lossy session loses what was in flight: reconnect and send it all again
            self.objecter.log.info("session to osd.{osd} lost ({why}); {n} requests to resend",
                                   osd=self.osd, why=reason.getErrorMessage() if reason else "", n=len(self.ops))
            self.schedule_reconnect()

    # ---- connection ---------------------------------------------------------

    def connect(self) -> None:
        if self.closed or self.connecting or self.protocol is not None:
            return
        self.connecting = True
        d = self.objecter._connect(self)

        def failed(f):
            if self.protocol is None:
                self.connecting = False
                self.objecter.log.info("cannot reach osd.{osd} at {addr}: {why}",
                                       osd=self.osd, addr=self.addr, why=f.getErrorMessage())
                if self.ops:
                    self.schedule_reconnect()
        d.addErrback(failed)

    def schedule_reconnect(self) -> None:
        if self.closed or self.reconnect_call is not None:
            return

        def again():
            self.reconnect_call = None
            if self.ops:
                self.connect()
        self.reconnect_call = self.objecter.reactor.callLater(self.objecter.reconnect_delay, again)

    def close(self) -> None:
        self.closed = True
        if self.reconnect_call is not None and self.reconnect_call.active():
            self.reconnect_call.cancel()
        self.reconnect_call = None
        protocol, self.protocol = self.protocol, None
        if protocol is not None:
            protocol.close()

    def send(self, message) -> bool:
        if self.protocol is None:
            self.connect()
            return False
        self.protocol.sendMessage(message)
        return True

    # ---- backoff ---------------------------------------------------------------

    def blocked(self, op: Op) -> bool:
        return op.pg is not None and bool(self.backoffs.get((op.pg.pool, op.pg.seed)))

    def _handle_backoff(self, m: MOSDBackoff) -> None:
        pg = (m.pool, m.seed)
        if m.op == BACKOFF_BLOCK:
            self.backoffs.setdefault(pg, set()).add(m.id)
            self.send(MOSDBackoff(m.pool, m.seed, m.shard, m.map_epoch, BACKOFF_ACK_BLOCK, m.id, m.begin, m.end))
        elif m.op == BACKOFF_UNBLOCK:
            ids = self.backoffs.get(pg)
            if ids is not None:
                ids.discard(m.id)
                if not ids:
                    del self.backoffs[pg]
            for tid in sorted(self.ops):
                op = self.ops[tid]
                if op.pg is not None and (op.pg.pool, op.pg.seed) == pg:
                    self.objecter._transmit(op)


class Objecter:
    """
    Object requests over per-OSD sessions.

    @param reactor: the reactor (for connections and timers).
    @param follower: an L{OSDMapFollower} (its map must reach epoch 1 before
        requests go out; they wait for it, within their timeout).
    @param auth: the client auth handlers the monitor session authenticated
        with; OSD sessions use C{handler.spawn()} (cephx: an authorizer from
        the OSD service ticket) or the handler itself (none: with the
        global_id the monitor gave).
    @param config: the L{ConnectionConfig} for OSD sessions (lossy).
    @param op_timeout: seconds a request may take, resends included.
    @param max_in_flight_ops: requests in flight at most (Ceph's
        C{objecter_inflight_ops}); more wait their turn.
    @param max_in_flight_bytes: bytes of write data and read lengths in
        flight at most (C{objecter_inflight_op_bytes}); one request larger
        than this still goes alone.
    """

    log = Logger()

    def __init__(self, reactor, follower, auth: Sequence, config, op_timeout: float = 30.0,
                 connect_timeout: float = 10.0, reconnect_delay: float = 0.2, client_inc: int = 0,
                 max_in_flight_ops: int = 1024, max_in_flight_bytes: int = 100 << 20) -> None:
        self.reactor = reactor
        self.follower = follower
        self.auth = list(auth)
        self.config = config
        self.op_timeout = op_timeout
        self.connect_timeout = connect_timeout
        self.reconnect_delay = reconnect_delay
        self.client_inc = client_inc
        self.sessions: Dict[int, OSDSession] = {}
        #: requests with no OSD to go to yet (no map, no primary, paused)
        self.homeless: Dict[int, Op] = {}
        self._tids = itertools.count(1)
        #: requests sent again (new map, lost session, unblocked backoff, -EAGAIN, redirect)
        self.resends = 0
        #: Ceph's objecter_inflight_ops and objecter_inflight_op_bytes: more
        #: waits (within its timeout) until requests in flight finish
        self.max_in_flight_ops = max_in_flight_ops
        self.max_in_flight_bytes = max_in_flight_bytes
        self._budget_ops = 0
        self._budget_bytes = 0
        self._throttled: Deque[Op] = collections.deque()
        self._placement_map: Optional[OSDMap] = None
        #: raw object hashes by (hash function, name, namespace, key), up to SEED_CACHE
        self._seeds: Dict[tuple, int] = {}
        self._placement_epoch = 0
        self._placements: Dict[Tuple[PgId, int], Placement] = {}
        #: (pool, oid, namespace, key, PG seed of a PG op) -> what _target found in the map of _placement_epoch
        self._targets: Dict[tuple, tuple] = {}
        #: locators by (pool, key, namespace), up to SEED_CACHE
        self._locators: Dict[tuple, ObjectLocator] = {}
        #: requests with a deadline (insertion order) and the one timer that fails late ones
        self._deadlines: Dict[Op, None] = {}
        self._sweep_call = None
        self._sweep_at = 0.0
        self._closed = False
        follower.add_listener(self._handle_osdmap)

    @property
    def osdmap(self) -> Optional[OSDMap]:
        return self.follower.osdmap

    # ---- public ------------------------------------------------------------------

    def submit(self, pool: int, oid: str, ops: List[OSDOp], namespace: str = "", key: str = "",
               pg_seed: Optional[int] = None, timeout: Optional[float] = None,
               extra_flags: int = 0) -> defer.Deferred:
        """
        Send one request and fire with its L{MOSDOpReply} (any result: the
        caller maps C{result} and the ops' C{rval} to errors).  C{pg_seed}
        sends a PG op (listing) to that folded PG of C{pool}.  C{extra_flags}
        are added to the request's C{CEPH_OSD_FLAG_*} (C{FLAG_FULL_FORCE}:
        a write that a full pool does not hold, as librados'
        C{OPERATION_FULL_FORCE}).

        @raise PoolNotFound: (as a failure) no such pool in the current map.
        @raise OpTimeout: (as a failure) no reply within the timeout.
        @raise RadosError: (as a failure, errno 0) the Objecter is closed:
            nothing was sent.
        """
        flags = request_flags(ops) | extra_flags
        lkey = (pool, key, namespace)
        locator = self._locators.get(lkey)
        if locator is None:
            locator = remember(self._locators, lkey, ObjectLocator(pool, key, namespace), SEED_CACHE)
        op = Op(locator, oid, ops, flags, pg_seed)
        if flags & FLAG_WRITE:
            op.mtime = utime_t.from_float(time.time())
        if self._closed:
            # (never sent: not an OpTimeout, which may have taken effect)
            op.deferred.errback(RadosError("the client is closed (Rados.close() was called): nothing was sent",
                                           0, pool=pool, oid=oid))
            return op.deferred
        seconds = self.op_timeout if timeout is None else timeout
        if seconds:
            self._add_deadline(op, seconds)
        if len(ops) == 1:
            o = ops[0]
            op.budget = len(o.indata) + (_EXTENT_LENGTH.unpack_from(o.args, 8)[0] if o.op == OP_READ else 0)
        else:
            op.budget = sum(len(o.indata) for o in ops) + sum(o.extent_args[1] for o in ops if o.op == OP_READ)
        if self._throttled or not self._take_budget(op):
            # Objecter's op throttle: wait (within the timeout) for requests in flight to finish
            self._throttled.append(op)
            return op.deferred
        self._start(op)
        return op.deferred

    def _take_budget(self, op: Op) -> bool:
        if self._budget_ops and (self._budget_ops + 1 > self.max_in_flight_ops
                                 or self._budget_bytes + op.budget > self.max_in_flight_bytes):
            return False
        self._budget_ops += 1
        self._budget_bytes += op.budget
        op.budgeted = True
        return True

    def _start(self, op: Op) -> None:
        op.tid = next(self._tids)
        self._target_and_send(op, new=True)

    def _release_budget(self, op: Op) -> None:
        if op.budgeted:
            op.budgeted = False
            self._budget_ops -= 1
            self._budget_bytes -= op.budget
        while self._throttled and not self._closed:
            waiting = self._throttled[0]
            if waiting.done:
                self._throttled.popleft()
                continue
            if not self._take_budget(waiting):
                break
            self._throttled.popleft()
            self._start(waiting)

    def close(self) -> None:
        """Close every OSD session and fail what is in flight."""
        self._closed = True
        waiting = list(self._throttled)
        self._throttled.clear()
        for op in waiting + list(self.homeless.values()) + [o for s in self.sessions.values() for o in s.ops.values()]:
            self._finish(op, failure=OpTimeout("the client shut down before a reply", pool=op.locator.pool,
                                               oid=op.oid))
        for s in list(self.sessions.values()):
            s.close()
        self.sessions.clear()
        self._deadlines.clear()
        if self._sweep_call is not None:
            self._sweep_call.cancel()
            self._sweep_call = None

    def in_flight(self) -> int:
        """Requests not finished: waiting for budget, for an OSD, or for a reply."""
        return len(self._throttled) + len(self.homeless) + sum(len(s.ops) for s in self.sessions.values())

    # ---- target calculation (Objecter::_calc_target) ------------------------------------

    def _calc_target(self, op: Op, osdmap: OSDMap) -> bool:
        """
        Recompute where C{op} goes.  Returns True when it must be sent
        (again): a new OSD or interval, or a forced resend.

        @raise PoolNotFound: the pool is gone.
        """
        pool = osdmap.pools.get(op.locator.pool)
        if pool is None:
            raise PoolNotFound("pool %d is not in osdmap e%d" % (op.locator.pool, osdmap.epoch),
                               errno.ENOENT, pool=op.locator.pool, oid=op.oid)
        force = False
        if pool.last_force_op_resend > op.last_force_resend:
            if op.interval is not None:     # not for a request calculated the first time
                force = True
            op.last_force_resend = pool.last_force_op_resend
        if self._placement_map is not osdmap or self._placement_epoch != osdmap.epoch:
            self._new_placement_map(osdmap)
        # what follows depends on the object and the map only: remembered
        # for this map, as the same objects are addressed again and again
        loc = op.locator
        tkey = (pool.id, op.oid, loc.nspace, loc.key, op.pg_seed)
        target = self._targets.get(tkey)
        if target is None:
            target = remember(self._targets, tkey, self._target(op, osdmap, pool), SEED_CACHE)
        op.hash, pg, interval, op.shard, primary = target
        paused = _pause(op.flags, osdmap, pool) is not None
        changed = interval != op.interval or force or paused != op.paused or primary != op.osd
        op.pg, op.interval, op.paused = pg, interval, paused
        op.osd = primary
        return changed

    def _target(self, op: Op, osdmap: OSDMap, pool) -> tuple:
        """
        (raw hash, PG, interval, shard, primary or -1) of C{op}'s object in
        C{osdmap}: the part of C{_calc_target} that the map and the object
        decide.
        """
        if op.pg_seed is not None:
            raw = PgId(pool.id, op.pg_seed)
            pg = raw
        else:
            # the raw hash depends on the name, namespace, key and the pool's
            # hash function only: remembered across maps
            loc = op.locator
            hkey = (pool.object_hash, op.oid, loc.nspace, loc.key)
            seed = self._seeds.get(hkey)
            if seed is None:
                seed = remember(self._seeds, hkey, pool.hash_key((loc.key or op.oid).encode("utf-8"),
                                                                 loc.nspace.encode("utf-8")), SEED_CACHE)
            raw = PgId(pool.id, seed)
            pg = pool.raw_pg_to_pg(raw)
        placement = self._placement(osdmap, pool, raw, pg)
        interval = (pg, tuple(placement.up), placement.up_primary, tuple(placement.acting),
                    placement.acting_primary, pool.size, pool.min_size, pool.pg_num)
        primary = placement.acting_primary
        # an erasure-coded PG is addressed by the primary's shard (its position in the acting set)
        shard = -1
        if pool.type == pool.TYPE_ERASURE and primary in placement.acting:
            shard = placement.acting.index(primary)
        if primary >= 0 and not osdmap.is_up(primary):
            primary = -1
        return raw.seed, pg, interval, shard, primary

    def _new_placement_map(self, osdmap: OSDMap) -> None:
        # (incrementals change a map in place: the epoch tells)
        self._placement_map, self._placement_epoch = osdmap, osdmap.epoch
        self._placements.clear()
        self._targets.clear()

    def _placement(self, osdmap: OSDMap, pool, raw: PgId, pg: PgId) -> Placement:
        """
        C{osdmap.pg_to_up_acting(raw)}, remembered for the map: the result
        depends on the raw seed only through its folds by C{pg_num} (temps,
        upmaps) and C{pgp_num} (the CRUSH input), so objects of one PG share it.
        """
        if self._placement_map is not osdmap or self._placement_epoch != osdmap.epoch:
            self._new_placement_map(osdmap)
        key = (pg, stable_mod(raw.seed, pool.pgp_num, pool.pgp_num_mask))
        placement = self._placements.get(key)
        if placement is None:
            placement = self._placements[key] = osdmap.pg_to_up_acting(raw)
        return placement

    def _target_and_send(self, op: Op, new: bool = False) -> None:
        osdmap = self.osdmap
        if osdmap is None:
            self.homeless[op.tid] = op
            self.follower.when_epoch(1)
            return
        try:
            changed = self._calc_target(op, osdmap)
        except PoolNotFound as e:
            self._detach(op)
            self._finish(op, failure=e)
            return
        if not changed and not new:
            return
        self._detach(op)
        if op.osd < 0 or op.paused:
            self.homeless[op.tid] = op
            return
        session = self._session(op.osd, osdmap)
        op.session = session
        session.ops[op.tid] = op
        self._transmit(op)

    def _detach(self, op: Op) -> None:
        self.homeless.pop(op.tid, None)
        if op.session is not None:
            op.session.ops.pop(op.tid, None)
            op.session = None

    def _session(self, osd: int, osdmap: OSDMap) -> OSDSession:
        session = self.sessions.get(osd)
        if session is not None and session.checked_map is osdmap and session.checked_epoch == osdmap.epoch:
            return session      # its address was checked against this map
        addr = osdmap.osd_addrs[osd].msgr2_addr()
        text = str(addr) if addr is not None else ""
        if session is not None and session.addr != text:
            self._close_session(session)
            session = None
        if session is None:
            session = self.sessions[osd] = OSDSession(self, osd, text)
        session.checked_map, session.checked_epoch = osdmap, osdmap.epoch
        return session

    def _close_session(self, session: OSDSession) -> None:
        self.sessions.pop(session.osd, None)
        ops = list(session.ops.values())
        session.ops.clear()
        session.close()
        for op in ops:
            op.session = None
            op.interval = None          # send again wherever it goes now
            self._target_and_send(op, new=True)

    def _connect(self, session: OSDSession) -> defer.Deferred:
        from msgr2tx.client import connect
        if not session.addr:
            return defer.fail(PoolNotFound("osd.%d has no msgr2 address in the osdmap" % session.osd))
        handlers = [h.spawn() if hasattr(h, "spawn") else h for h in self.auth]
        # CLIENT_IDENT must carry our global_id: the OSD names us client.<gid>
        # and an op's reqid is (that name, tid); with a shared or unset gid two
        # clients' writes would look like resends of each other and be dropped
        # as duplicates
        global_id = next((h.global_id for h in self.auth if getattr(h, "global_id", 0)), 0)
        config = self.config
        if global_id and config.entity_num != global_id:
            config = dataclasses.replace(config, entity_num=global_id)
        return connect(self.reactor, session.addr, handlers, config, receiver=session,
                       timeout=self.connect_timeout)

    def _transmit(self, op: Op) -> None:
        session = op.session
        if session is None or op.done or session.blocked(op):
            return
        osdmap = self.osdmap
        assert op.pg is not None and osdmap is not None
        if session.send(build_request(op, osdmap.epoch, self.client_inc)):
            if op.attempts:
                self.resends += 1
            op.attempts += 1

    # ---- map changes (Objecter::handle_osd_map / _scan_requests) ---------------------------

    def _handle_osdmap(self, osdmap: OSDMap) -> None:
        for session in list(self.sessions.values()):
            osd = session.osd
            addr = osdmap.osd_addrs[osd].msgr2_addr() if 0 <= osd < osdmap.max_osd else None
            if not osdmap.is_up(osd) or addr is None or str(addr) != session.addr:
                self._close_session(session)
        ops = list(self.homeless.values()) + [o for s in list(self.sessions.values()) for o in s.ops.values()]
        for op in sorted(ops, key=lambda o: o.tid):
            if not op.done:
                self._target_and_send(op)

    # ---- replies (Objecter::handle_osd_op_reply) ------------------------------------------

    def _handle_reply(self, session: OSDSession, reply: MOSDOpReply) -> None:
        op = session.ops.get(reply.tid)
        if op is None:
            self.log.debug("reply for unknown tid {tid} from osd.{osd}", tid=reply.tid, osd=session.osd)
            return
        if reply.retry_attempt >= 0 and reply.retry_attempt != op.attempts - 1:
            self.log.debug("reply to attempt {got} of tid {tid}, {want} is current; dropped",
                           got=reply.retry_attempt, tid=op.tid, want=op.attempts - 1)
            return
        if reply.redirect is not None:
            loc = reply.redirect.locator
            op.locator = ObjectLocator(loc.pool if loc.pool != -1 else op.locator.pool,
                                       loc.key or op.locator.key, loc.nspace or op.locator.nspace, loc.hash)
            if reply.redirect.object:
                op.oid = reply.redirect.object
            op.flags |= FLAG_REDIRECTED | FLAG_IGNORE_CACHE | FLAG_IGNORE_OVERLAY
            self._resubmit(op)
            return
        if reply.result == -errno.EAGAIN:
            self._resubmit(op)
            return
        session.ops.pop(op.tid, None)
        op.session = None
        self._finish(op, result=reply)

    def _resubmit(self, op: Op) -> None:
        self._detach(op)
        op.tid = next(self._tids)
        op.interval = None
        op.osd = -1
        self._target_and_send(op, new=True)

    # ---- completion -------------------------------------------------------------------

    # ---- deadlines: one timer for every request ---------------------------------------

    def _add_deadline(self, op: Op, seconds: float) -> None:
        op.timeout = seconds
        op.deadline = deadline = self.reactor.seconds() + seconds
        self._deadlines[op] = None
        self._arm_sweep(deadline, seconds)

    def _arm_sweep(self, at: float, delay: float) -> None:
        """Have the one timer fire at C{at} (in C{delay} seconds) unless it fires earlier already."""
        call = self._sweep_call
        if call is None:
            self._sweep_at = at
            self._sweep_call = self.reactor.callLater(delay, self._sweep)
        elif at < self._sweep_at:
            self._sweep_at = at
            call.reset(delay)

    def _sweep(self) -> None:
        """Fail the requests whose deadline has come; wait for the next one."""
        self._sweep_call = None
        now = self.reactor.seconds()
        for op in [o for o in self._deadlines if o.deadline <= now + _DEADLINE_SLACK]:
            self._timed_out(op)
        if self._deadlines:
            first = min(o.deadline for o in self._deadlines)
            self._arm_sweep(first, max(0.0, first - now))

    def _timed_out(self, op: Op) -> None:
        held = self._held_reason(op)
        self._detach(op)
        what = "%s on %r in pool %d" % ("/".join(o.name for o in op.ops), op.oid, op.locator.pool)
        if held is not None:
            kind, why = held
            if kind == HELD_FULL:
                why += " (a remove with force_full=True goes through: that frees space)"
            text = "%s timed out after %g s, held back %s: %s" % (
                what, op.timeout, "and never sent" if not op.attempts else "after %d attempts" % op.attempts, why)
        else:
            text = "%s got no reply in %g s (last sent to %s, %d attempts)" % (
                what, op.timeout, "osd.%d" % op.osd if op.osd >= 0 else "no OSD (no primary or no map yet)",
                op.attempts)
        self._finish(op, failure=OpTimeout(text, pool=op.locator.pool, oid=op.oid))

    def _held_reason(self, op: Op) -> Optional[Tuple[str, str]]:
        """
        Why the current map holds C{op} back, as (kind, sentence), or None
        when it is not held (in flight, or no map yet).
        """
        osdmap = self.follower.osdmap
        if osdmap is None or op.done:
            return None
        if op.paused:
            return pause_reason(op.flags, osdmap, osdmap.pools.get(op.locator.pool))
        if op.osd < 0 and op.pg is not None and op.tid in self.homeless:
            pg = "%d.%x" % (op.pg.pool, op.pg.seed)
            return HELD_NO_PRIMARY, (
                "PG %s has no primary OSD up in osdmap e%d (its OSDs are down or out: 'ceph pg map %s' and "
                "'ceph osd tree' show them); the request waits for a map that gives it one"
                % (pg, osdmap.epoch, pg))
        return None

    def held_reasons(self) -> List[Tuple[str, str]]:
        """
        Why the current map holds requests back: (kind, sentence) for each
        distinct reason, kind L{HELD_FULL}, L{HELD_PAUSED} or
        L{HELD_NO_PRIMARY}; empty when nothing is held.
        """
        reasons: Dict[Tuple[str, str], None] = {}
        for op in self.homeless.values():
            reason = self._held_reason(op)
            if reason is not None:
                reasons[reason] = None
        return list(reasons)

    def _finish(self, op: Op, result=None, failure=None) -> None:
        if op.done:
            return
        op.done = True
        if op.deadline:
            # (the timer stays: when it fires with nothing in flight it ends,
            # so one request after another costs no timer each)
            self._deadlines.pop(op, None)
        self._release_budget(op)
        if failure is not None:
            op.deferred.errback(failure)
        else:
            op.deferred.callback(result)


__all__ = ["Objecter", "OSDSession", "Op", "request_flags", "build_request", "pause_reason", "OSDMAP_FULL",
           "OSDMAP_PAUSERD", "OSDMAP_PAUSEWR", "HELD_FULL", "HELD_PAUSED", "HELD_NO_PRIMARY"]
