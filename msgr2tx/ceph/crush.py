"""
CRUSH: Ceph's placement function, and the binary CRUSH map it runs on.

L{CrushMap.decode} reads a CRUSH map as Ceph encodes it (the blob that
C{ceph osd getcrushmap} prints and that an OSDMap carries), and
L{CrushMap.do_rule} maps an input C{x} through one of its rules to a list
of devices, as Ceph's C{crush_do_rule} does, bit for bit.

Facts follow Ceph's C{src/crush/} (C{mapper.c} for the mapping, C{hash.c}
for the hash, C{CrushWrapper::decode} for the encoding, C{crush.h} for the
constants); Linux's C{net/ceph/crush/} is the same algorithm.  Covered:
the five bucket algorithms (uniform, list, tree, straw, straw2), firstn
and indep choices with and without chooseleaf, every tunable and the
rule steps that override them, device weights (partially out devices),
the choose_args weight sets and id remappings of the balancer, and the
MSR rules of Squid and later (types C{msr_firstn} and C{msr_indep} with
C{choosemsr} steps, which retry a whole descent when a device is out; Ceph
makes them for erasure-code profiles with
C{crush-osds-per-failure-domain}), following C{crush_msr_do_rule}.

No I/O and no Twisted here.
"""

import enum
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from msgr2tx.ceph.crush_ln_table import LL, RH_LH
from msgr2tx.core.encoding import Decoder
from msgr2tx.errors import DecodeError, Msgr2Error

CRUSH_MAGIC = 0x00010000

#: an item slot that no device could fill (indep rules keep positions)
ITEM_NONE = 0x7FFFFFFF
#: internal to indep choices: not decided yet
ITEM_UNDEF = 0x7FFFFFFE

#: the one hash CRUSH has (C{CRUSH_HASH_RJENKINS1})
HASH_RJENKINS1 = 0

#: choose_args index that applies when the requested one is missing
DEFAULT_CHOOSE_ARGS = -1

_M32 = 0xFFFFFFFF
_HASH_SEED = 1315423911


class CrushError(Msgr2Error):
    """A CRUSH map or rule that we cannot run (unknown rule type, bad rule number)."""


class BucketAlg(enum.IntEnum):
    """C{crush_algorithm}: how a bucket picks one of its items."""

    UNIFORM = 1
    LIST = 2
    TREE = 3
    STRAW = 4
    STRAW2 = 5


class RuleOp(enum.IntEnum):
    """C{crush_opcodes}: the steps of a rule."""

    NOOP = 0
    TAKE = 1
    CHOOSE_FIRSTN = 2
    CHOOSE_INDEP = 3
    EMIT = 4
    CHOOSELEAF_FIRSTN = 6
    CHOOSELEAF_INDEP = 7
    SET_CHOOSE_TRIES = 8
    SET_CHOOSELEAF_TRIES = 9
    SET_CHOOSE_LOCAL_TRIES = 10
    SET_CHOOSE_LOCAL_FALLBACK_TRIES = 11
    SET_CHOOSELEAF_VARY_R = 12
    SET_CHOOSELEAF_STABLE = 13
    SET_MSR_DESCENTS = 14
    SET_MSR_COLLISION_TRIES = 15
    CHOOSE_MSR = 16


class RuleType(enum.IntEnum):
    """C{crush_rule_type}."""

    REPLICATED = 1
    ERASURE = 3
    MSR_FIRSTN = 4
    MSR_INDEP = 5


# --- the hash ----------------------------------------------------------------

def jenkins_mix(a: int, b: int, c: int) -> Tuple[int, int, int]:
    """Robert Jenkins' 96-bit mix on unsigned 32-bit words (CRUSH's hash and C{ceph_str_hash_rjenkins})."""
    a = (a - b - c) & _M32
    a ^= c >> 13
    b = (b - c - a) & _M32
    b ^= (a << 8) & _M32
    c = (c - a - b) & _M32
    c ^= b >> 13
    a = (a - b - c) & _M32
    a ^= c >> 12
    b = (b - c - a) & _M32
    b ^= (a << 16) & _M32
    c = (c - a - b) & _M32
    c ^= b >> 5
    a = (a - b - c) & _M32
    a ^= c >> 3
    b = (b - c - a) & _M32
    b ^= (a << 10) & _M32
    c = (c - a - b) & _M32
    c ^= b >> 15
    return a, b, c


def hash32_2(a: int, b: int) -> int:
    """C{crush_hash32_rjenkins1_2}: two 32-bit inputs (signed or not) to a u32."""
    a &= _M32
    b &= _M32
    h = _HASH_SEED ^ a ^ b
    x, y = 231232, 1232
    a, b, h = jenkins_mix(a, b, h)
    x, a, h = jenkins_mix(x, a, h)
    b, y, h = jenkins_mix(b, y, h)
    return h


def hash32_3(a: int, b: int, c: int) -> int:
    """C{crush_hash32_rjenkins1_3}: three 32-bit inputs to a u32."""
    a &= _M32
    b &= _M32
    c &= _M32
    h = _HASH_SEED ^ a ^ b ^ c
    x, y = 231232, 1232
    a, b, h = jenkins_mix(a, b, h)
    c, x, h = jenkins_mix(c, x, h)
    y, a, h = jenkins_mix(y, a, h)
    b, x, h = jenkins_mix(b, x, h)
    y, c, h = jenkins_mix(y, c, h)
    return h


def hash32_4(a: int, b: int, c: int, d: int) -> int:
    """C{crush_hash32_rjenkins1_4}: four 32-bit inputs to a u32."""
    a &= _M32
    b &= _M32
    c &= _M32
    d &= _M32
    h = _HASH_SEED ^ a ^ b ^ c ^ d
    x, y = 231232, 1232
    a, b, h = jenkins_mix(a, b, h)
    c, d, h = jenkins_mix(c, d, h)
    a, x, h = jenkins_mix(a, x, h)
    y, b, h = jenkins_mix(y, b, h)
    c, x, h = jenkins_mix(c, x, h)
    y, d, h = jenkins_mix(y, d, h)
    return h


def crush_ln(xin: int) -> int:
    """
    C{crush_ln}: 2^44 * log2(xin + 1) in fixed point, for xin in [0, 0xffff],
    computed with Ceph's tables (see L{msgr2tx.ceph.crush_ln_table}).
    """
    x = xin + 1
    iexpon = 15
    if not x & 0x18000:
        bits = 16 - (x & 0x1FFFF).bit_length()   # clz on 32 bits, minus 16
        x <<= bits
        iexpon = 15 - bits
    index1 = (x >> 8) << 1
    rh = RH_LH[index1 - 256]
    lh = RH_LH[index1 + 1 - 256]
    xl64 = ((x * rh) & 0xFFFFFFFFFFFFFFFF) >> 48
    result = iexpon << 44
    lh = (lh + LL[xl64 & 0xFF]) >> 4
    return result + lh


def _straw2_draw(x: int, item: int, r: int, weight: int) -> int:
    # an exponentially distributed draw scaled by the 16.16 weight; C's
    # signed 64-bit division truncates toward zero
    u = hash32_3(x, item, r) & 0xFFFF
    ln = crush_ln(u) - 0x1000000000000
    q = -ln // weight
    return -q


# --- the map -----------------------------------------------------------------

@dataclass
class Bucket:
    """
    One bucket (C{crush_bucket} and its per-algorithm part).

    C{id} is negative; C{type} indexes L{CrushMap.type_names}; C{weight} and
    every item weight are 16.16 fixed point (0x10000 is 1.0).
    """

    id: int
    type: int
    alg: int
    hash: int
    weight: int
    items: List[int]
    #: list, straw and straw2 buckets: one weight per item
    item_weights: List[int] = field(default_factory=list)
    #: list buckets: running sums of item weights
    sum_weights: List[int] = field(default_factory=list)
    #: tree buckets: the weights of the implicit binary tree's nodes
    node_weights: List[int] = field(default_factory=list)
    #: straw (v1) buckets: the straw lengths
    straws: List[int] = field(default_factory=list)
    #: uniform buckets: the weight every item has
    item_weight: int = 0

    @property
    def size(self) -> int:
        return len(self.items)


@dataclass
class Rule:
    """One rule: its C{crush_rule_type} and its steps as (op, arg1, arg2)."""

    id: int
    type: int
    steps: List[Tuple[int, int, int]]


@dataclass
class ChooseArg:
    """
    The balancer's per-bucket overrides (C{crush_choose_arg}): weight sets
    by position (straw2 only) and replacement ids for the hash.
    """

    weight_set: List[List[int]] = field(default_factory=list)
    ids: Optional[List[int]] = None


@dataclass
class Tunables:
    """The map's tunables, legacy (argonaut) values unless the map says otherwise."""

    choose_local_tries: int = 2
    choose_local_fallback_tries: int = 5
    choose_total_tries: int = 19
    chooseleaf_descend_once: int = 0
    chooseleaf_vary_r: int = 0
    straw_calc_version: int = 0
    allowed_bucket_algs: int = (1 << BucketAlg.UNIFORM) | (1 << BucketAlg.LIST) | (1 << BucketAlg.STRAW)
    chooseleaf_stable: int = 0
    msr_descents: int = 100
    msr_collision_tries: int = 100


class CrushMap:
    """
    A decoded CRUSH map.

    C{buckets[-1 - id]} is the bucket with that (negative) id, or None;
    C{rules[n]} is rule number n, or None.  Names: C{type_names} (type id ->
    name), C{item_names} (device or bucket id -> name), C{rule_names}
    (rule id -> name); device classes: C{class_map} (device id -> class
    id), C{class_names} (class id -> name), C{class_buckets} (bucket id ->
    {class id: shadow bucket id}).  C{choose_args} maps a choose_args index
    (a pool id, or L{DEFAULT_CHOOSE_ARGS}) to {bucket index: L{ChooseArg}}.
    """

    def __init__(self) -> None:
        self.max_devices = 0
        self.buckets: List[Optional[Bucket]] = []
        self.rules: List[Optional[Rule]] = []
        self.type_names: Dict[int, str] = {}
        self.item_names: Dict[int, str] = {}
        self.rule_names: Dict[int, str] = {}
        self.tunables = Tunables()
        self.class_map: Dict[int, int] = {}
        self.class_names: Dict[int, str] = {}
        self.class_buckets: Dict[int, Dict[int, int]] = {}
        self.choose_args: Dict[int, Dict[int, ChooseArg]] = {}

    def __repr__(self) -> str:
        return "<CrushMap devices=%d buckets=%d rules=%d>" % (
            self.max_devices, sum(b is not None for b in self.buckets), sum(r is not None for r in self.rules))

    # ---- decoding ---------------------------------------------------------

    @classmethod
    def decode(cls, data) -> "CrushMap":
        """
        Decode a CRUSH map from bytes (C{CrushWrapper::encode}'s format).

        @raise DecodeError: bad magic, a truncated map, or an unknown bucket
            algorithm.
        """
        return cls.decode_from(Decoder(data))

    @classmethod
    def decode_from(cls, dec: Decoder) -> "CrushMap":
        """Decode a CRUSH map at C{dec}'s position and leave it after the map."""
        m = cls()
        magic = dec.u32()
        if magic != CRUSH_MAGIC:
            raise DecodeError("bad CRUSH map magic 0x%x" % magic)
        max_buckets = dec.i32()
        max_rules = dec.u32()
        m.max_devices = dec.i32()
        if max_buckets < 0 or max_buckets * 4 > dec.remaining() or max_rules * 4 > dec.remaining():
            raise DecodeError("CRUSH map sizes %d/%d do not fit its %d bytes"
                              % (max_buckets, max_rules, dec.remaining()))
        m.buckets = [_decode_bucket(dec) for _ in range(max_buckets)]
        for i in range(max_rules):
            if not dec.u32():
                m.rules.append(None)
                continue
            length = dec.u32()
            if length * 12 > dec.remaining():
                raise DecodeError("CRUSH rule of %d steps does not fit" % length)
            ruleset = dec.u8()
            if ruleset != i:
                raise DecodeError("CRUSH rule %d carries ruleset %d (an encoding too old)" % (i, ruleset))
            rtype = dec.u8()
            dec.u8()   # min_size, no longer used
            dec.u8()   # max_size, no longer used
            steps = [(dec.u32(), dec.i32(), dec.i32()) for _ in range(length)]
            m.rules.append(Rule(i, rtype, steps))
        m.type_names = _decode_name_map(dec)
        m.item_names = _decode_name_map(dec)
        m.rule_names = _decode_name_map(dec)
        t = m.tunables
        if dec.remaining():
            t.choose_local_tries = dec.u32()
            t.choose_local_fallback_tries = dec.u32()
            t.choose_total_tries = dec.u32()
        if dec.remaining():
            t.chooseleaf_descend_once = dec.u32()
        if dec.remaining():
            t.chooseleaf_vary_r = dec.u8()
        if dec.remaining():
            t.straw_calc_version = dec.u8()
        if dec.remaining():
            t.allowed_bucket_algs = dec.u32()
        if dec.remaining():
            t.chooseleaf_stable = dec.u8()
        if dec.remaining():
            m.class_map = dec.map(Decoder.i32, Decoder.i32, 8)
            m.class_names = dec.map(Decoder.i32, Decoder.string, 8)
            m.class_buckets = dec.map(Decoder.i32, lambda d: d.map(Decoder.i32, Decoder.i32, 8), 8)
        if dec.remaining():
            for _ in range(dec.count(12)):
                index = dec.i64()
                args: Dict[int, ChooseArg] = {}
                for _ in range(dec.count(12)):
                    bucket_index = dec.u32()
                    if bucket_index >= max_buckets:
                        raise DecodeError("choose_args for bucket index %d of %d" % (bucket_index, max_buckets))
                    arg = ChooseArg()
                    arg.weight_set = [dec.u32_list() for _ in range(dec.count(4))]
                    ids = [dec.i32() for _ in range(dec.count(4))]
                    arg.ids = ids or None
                    args[bucket_index] = arg
                m.choose_args[index] = args
        if dec.remaining():
            t.msr_descents = dec.u32()
            t.msr_collision_tries = dec.u32()
        return m

    # ---- lookups ----------------------------------------------------------

    def bucket(self, item: int) -> Bucket:
        """The bucket with (negative) id C{item}. @raise CrushError: no such bucket."""
        index = -1 - item
        if 0 <= index < len(self.buckets):
            b = self.buckets[index]
            if b is not None:
                return b
        raise CrushError("no CRUSH bucket %d" % item)

    def rule_id(self, name: str) -> int:
        """The number of the rule called C{name}. @raise CrushError: no such rule."""
        for rid, rname in self.rule_names.items():
            if rname == name:
                return rid
        raise CrushError("no CRUSH rule named %r" % name)

    # ---- mapping ----------------------------------------------------------

    def do_rule(self, ruleno: int, x: int, result_max: int, weights: Optional[Sequence[int]] = None,
                choose_args_index: int = DEFAULT_CHOOSE_ARGS) -> List[int]:
        """
        Map C{x} (a placement seed, u32) through rule C{ruleno} to at most
        C{result_max} items, as C{CrushWrapper::do_rule} does.

        C{weights} are the devices' 16.16 weights (0x10000 in, 0 out; a
        device past the end counts as out); None means every device in.
        C{choose_args_index} picks a choose_args set (a pool id), falling
        back to L{DEFAULT_CHOOSE_ARGS}, then to none.  Indep rules keep
        positions and fill the ones they cannot place with L{ITEM_NONE}.

        MSR rules (types C{msr_firstn} and C{msr_indep}, Squid and later)
        run as C{crush_msr_do_rule} does: an indep one keeps positions
        (L{ITEM_NONE} where nothing could be placed), a firstn one returns
        the items it placed, in the order it placed them.

        @raise CrushError: no such rule, or an MSR rule whose C{take} names
            a device or a missing bucket (Ceph itself cannot run those).
        """
        if not 0 <= ruleno < len(self.rules) or self.rules[ruleno] is None:
            raise CrushError("no CRUSH rule %d" % ruleno)
        rule = self.rules[ruleno]
        assert rule is not None
        if weights is None:
            weights = [0x10000] * self.max_devices
        args = self.choose_args.get(choose_args_index)
        if args is None:
            args = self.choose_args.get(DEFAULT_CHOOSE_ARGS)
        mapping = _Mapping(self, weights, args or {}, x)
        if rule.type in (RuleType.MSR_FIRSTN, RuleType.MSR_INDEP):
            return _MsrMapping(mapping, rule, result_max).run()
        return mapping.run(rule, result_max)


def _decode_name_map(dec: Decoder) -> Dict[int, str]:
    # keys were once encoded as 64-bit: a zero length means the real length follows
    names = {}
    for _ in range(dec.count(8)):
        key = dec.i32()
        length = dec.u32()
        if length == 0:
            length = dec.u32()
        names[key] = dec.raw(length).decode("utf-8", "replace")
    return names


def _decode_bucket(dec: Decoder) -> Optional[Bucket]:
    alg = dec.u32()
    if alg == 0:
        return None
    if alg not in BucketAlg.__members__.values():
        raise DecodeError("unsupported CRUSH bucket algorithm %d" % alg)
    bid = dec.i32()
    btype = dec.u16()
    balg = dec.u8()
    bhash = dec.u8()
    weight = dec.u32()
    size = dec.u32()
    if size * 4 > dec.remaining():
        raise DecodeError("CRUSH bucket %d of %d items does not fit" % (bid, size))
    items = [dec.i32() for _ in range(size)]
    b = Bucket(bid, btype, balg, bhash, weight, items)
    if alg == BucketAlg.UNIFORM:
        b.item_weight = dec.u32()
    elif alg == BucketAlg.LIST:
        for _ in range(size):
            b.item_weights.append(dec.u32())
            b.sum_weights.append(dec.u32())
    elif alg == BucketAlg.TREE:
        b.node_weights = [dec.u32() for _ in range(dec.u8())]   # num_nodes is a u8
    elif alg == BucketAlg.STRAW:
        for _ in range(size):
            b.item_weights.append(dec.u32())
            b.straws.append(dec.u32())
    else:
        b.item_weights = [dec.u32() for _ in range(size)]
    return b


# --- crush_do_rule -----------------------------------------------------------

def _tree_height(n: int) -> int:
    h = 0
    while n & 1 == 0:
        h += 1
        n >>= 1
    return h


class _Mapping:
    """One run of a rule: the per-bucket permutation state lives as long as this."""

    __slots__ = ("map", "weights", "args", "x", "perm")

    def __init__(self, crush: CrushMap, weights: Sequence[int], args: Dict[int, ChooseArg], x: int) -> None:
        self.map = crush
        self.weights = weights
        self.args = args
        self.x = x & _M32
        #: bucket index -> [perm_x, perm_n, perm list]
        self.perm: Dict[int, list] = {}

    # ---- bucket choices ---------------------------------------------------

    def _perm_choose(self, b: Bucket, r: int) -> int:
        x = self.x
        size = b.size
        pr = r % size
        work = self.perm.get(-1 - b.id)
        if work is None:
            work = self.perm[-1 - b.id] = [0, 0, [0] * size]
        perm = work[2]
        if work[0] != x or work[1] == 0:
            work[0] = x
            if pr == 0:
                perm[0] = hash32_3(x, b.id, 0) % size
                work[1] = 0xFFFF
                return b.items[perm[0]]
            for i in range(size):
                perm[i] = i
            work[1] = 0
        elif work[1] == 0xFFFF:
            for i in range(1, size):
                perm[i] = i
            perm[perm[0]] = 0
            work[1] = 1
        while work[1] <= pr:
            p = work[1]
            if p < size - 1:
                i = hash32_3(x, b.id, p) % (size - p)
                if i:
                    perm[p + i], perm[p] = perm[p], perm[p + i]
            work[1] += 1
        return b.items[perm[pr]]

    def _bucket_choose(self, b: Bucket, r: int, position: int) -> int:
        x = self.x
        alg = b.alg
        if alg == BucketAlg.STRAW2:
            arg = self.args.get(-1 - b.id)
            weights = b.item_weights
            ids = b.items
            if arg is not None:
                if arg.weight_set:
                    weights = arg.weight_set[min(position, len(arg.weight_set) - 1)]
                if arg.ids:
                    ids = arg.ids
            high = 0
            high_draw = 0
            for i in range(b.size):
                w = weights[i]
                draw = _straw2_draw(x, ids[i], r, w) if w else -(1 << 63)
                if i == 0 or draw > high_draw:
                    high = i
                    high_draw = draw
            return b.items[high]
        if alg == BucketAlg.UNIFORM:
            return self._perm_choose(b, r)
        if alg == BucketAlg.LIST:
            for i in range(b.size - 1, -1, -1):
                w = hash32_4(x, b.items[i], r, b.id) & 0xFFFF
                if (w * b.sum_weights[i]) >> 16 < b.item_weights[i]:
                    return b.items[i]
            return b.items[0]
        if alg == BucketAlg.TREE:
            n = len(b.node_weights) >> 1
            while not n & 1:
                t = (hash32_4(x, n, r, b.id) * b.node_weights[n]) >> 32
                half = 1 << (_tree_height(n) - 1)
                n = n - half if t < b.node_weights[n - half] else n + half
            return b.items[n >> 1]
        if alg == BucketAlg.STRAW:
            high = 0
            high_draw = 0
            for i in range(b.size):
                draw = (hash32_3(x, b.items[i], r) & 0xFFFF) * b.straws[i]
                if i == 0 or draw > high_draw:
                    high = i
                    high_draw = draw
            return b.items[high]
        return b.items[0]

    def _is_out(self, item: int) -> bool:
        weights = self.weights
        if item >= len(weights):
            return True
        w = weights[item]
        if w >= 0x10000:
            return False
        if w == 0:
            return True
        return (hash32_2(self.x, item) & 0xFFFF) >= w

    def _item_type(self, item: int) -> Optional[int]:
        # the type of an item, or None for an id that names no bucket
        if item >= 0:
            return 0
        index = -1 - item
        if index >= len(self.map.buckets) or self.map.buckets[index] is None:
            return None
        return self.map.buckets[index].type   # type: ignore[union-attr]

    # ---- crush_choose_firstn ----------------------------------------------

    def choose_firstn(self, bucket: Bucket, numrep: int, type_: int, out: List[int], outpos: int,
                      out_size: int, tries: int, recurse_tries: int, local_retries: int,
                      local_fallback_retries: int, recurse_to_leaf: bool, vary_r: int, stable: int,
                      out2: Optional[List[int]], parent_r: int) -> int:
        count = out_size
        max_devices = self.map.max_devices
        rep = 0 if stable else outpos
        while rep < numrep and count > 0:
            ftotal = 0
            skip_rep = False
            item = 0
            while True:     # retry_descent
                retry_descent = False
                in_ = bucket
                flocal = 0
                while True:     # retry_bucket
                    collide = False
                    retry_bucket = False
                    r = rep + parent_r + ftotal
                    if in_.size == 0:
                        reject = True
                    else:
                        if local_fallback_retries > 0 and flocal >= (in_.size >> 1) \
                                and flocal > local_fallback_retries:
                            item = self._perm_choose(in_, r)
                        else:
                            item = self._bucket_choose(in_, r, outpos)
                        if item >= max_devices:
                            skip_rep = True
                            break
                        itemtype = self._item_type(item)
                        if itemtype != type_:
                            if item >= 0 or itemtype is None:
                                skip_rep = True
                                break
                            in_ = self.map.bucket(item)
                            continue        # retry_bucket
                        collide = item in out[:outpos]
                        reject = False
                        if not collide and recurse_to_leaf:
                            if item < 0:
                                sub_r = r >> (vary_r - 1) if vary_r else 0
                                assert out2 is not None
                                got = self.choose_firstn(
                                    self.map.bucket(item), 1 if stable else outpos + 1, 0, out2, outpos, count,
                                    recurse_tries, 0, local_retries, local_fallback_retries, False, vary_r,
                                    stable, None, sub_r)
                                if got <= outpos:
                                    reject = True
                            else:
                                assert out2 is not None
                                _put(out2, outpos, item)
                        if not reject and not collide and itemtype == 0:
                            reject = self._is_out(item)
                    if reject or collide:
                        ftotal += 1
                        flocal += 1
                        if collide and flocal <= local_retries:
                            retry_bucket = True
                        elif local_fallback_retries > 0 and flocal <= in_.size + local_fallback_retries:
                            retry_bucket = True
                        elif ftotal < tries:
                            retry_descent = True
                        else:
                            skip_rep = True
                    if not retry_bucket:
                        break
                if not retry_descent or skip_rep:
                    break
            if not skip_rep:
                _put(out, outpos, item)
                outpos += 1
                count -= 1
            rep += 1
        return outpos

    # ---- crush_choose_indep -----------------------------------------------

    def choose_indep(self, bucket: Bucket, left: int, numrep: int, type_: int, out: List[int], outpos: int,
                     tries: int, recurse_tries: int, recurse_to_leaf: bool, out2: Optional[List[int]],
                     parent_r: int) -> None:
        endpos = outpos + left
        max_devices = self.map.max_devices
        for rep in range(outpos, endpos):
            _put(out, rep, ITEM_UNDEF)
            if out2 is not None:
                _put(out2, rep, ITEM_UNDEF)
        ftotal = 0
        while left > 0 and ftotal < tries:
            for rep in range(outpos, endpos):
                if out[rep] != ITEM_UNDEF:
                    continue
                in_ = bucket
                while True:
                    r = rep + parent_r
                    if in_.alg == BucketAlg.UNIFORM and in_.size % numrep == 0:
                        r += (numrep + 1) * ftotal
                    else:
                        r += numrep * ftotal
                    if in_.size == 0:
                        break
                    item = self._bucket_choose(in_, r, outpos)
                    if item >= max_devices:
                        out[rep] = ITEM_NONE
                        if out2 is not None:
                            out2[rep] = ITEM_NONE
                        left -= 1
                        break
                    itemtype = self._item_type(item)
                    if itemtype != type_:
                        if item >= 0 or itemtype is None:
                            out[rep] = ITEM_NONE
                            if out2 is not None:
                                out2[rep] = ITEM_NONE
                            left -= 1
                            break
                        in_ = self.map.bucket(item)
                        continue
                    if item in out[outpos:endpos]:
                        break
                    if recurse_to_leaf:
                        if item < 0:
                            assert out2 is not None
                            self.choose_indep(self.map.bucket(item), 1, numrep, 0, out2, rep,
                                              recurse_tries, 0, False, None, r)
                            if out2[rep] == ITEM_NONE:
                                break
                        elif out2 is not None:
                            out2[rep] = item
                    if itemtype == 0 and self._is_out(item):
                        break
                    out[rep] = item
                    left -= 1
                    break
            ftotal += 1
        for rep in range(outpos, endpos):
            if out[rep] == ITEM_UNDEF:
                out[rep] = ITEM_NONE
            if out2 is not None and out2[rep] == ITEM_UNDEF:
                out2[rep] = ITEM_NONE

    # ---- crush_do_rule ----------------------------------------------------

    def run(self, rule: Rule, result_max: int) -> List[int]:
        crush = self.map
        t = crush.tunables
        choose_tries = t.choose_total_tries + 1
        choose_leaf_tries = 0
        local_retries = t.choose_local_tries
        local_fallback_retries = t.choose_local_fallback_tries
        vary_r = t.chooseleaf_vary_r
        stable = t.chooseleaf_stable
        result: List[int] = []
        w: List[int] = []
        for op, arg1, arg2 in rule.steps:
            if op == RuleOp.TAKE:
                if (0 <= arg1 < crush.max_devices) or (
                        0 <= -1 - arg1 < len(crush.buckets) and crush.buckets[-1 - arg1] is not None):
                    w = [arg1]
            elif op == RuleOp.SET_CHOOSE_TRIES:
                if arg1 > 0:
                    choose_tries = arg1
            elif op == RuleOp.SET_CHOOSELEAF_TRIES:
                if arg1 > 0:
                    choose_leaf_tries = arg1
            elif op == RuleOp.SET_CHOOSE_LOCAL_TRIES:
                if arg1 >= 0:
                    local_retries = arg1
            elif op == RuleOp.SET_CHOOSE_LOCAL_FALLBACK_TRIES:
                if arg1 >= 0:
                    local_fallback_retries = arg1
            elif op == RuleOp.SET_CHOOSELEAF_VARY_R:
                if arg1 >= 0:
                    vary_r = arg1
            elif op == RuleOp.SET_CHOOSELEAF_STABLE:
                if arg1 >= 0:
                    stable = arg1
            elif op in (RuleOp.CHOOSE_FIRSTN, RuleOp.CHOOSELEAF_FIRSTN,
                        RuleOp.CHOOSE_INDEP, RuleOp.CHOOSELEAF_INDEP):
                if not w:
                    continue
                firstn = op in (RuleOp.CHOOSE_FIRSTN, RuleOp.CHOOSELEAF_FIRSTN)
                recurse_to_leaf = op in (RuleOp.CHOOSELEAF_FIRSTN, RuleOp.CHOOSELEAF_INDEP)
                o: List[int] = []
                c: List[int] = []
                for item in w:
                    numrep = arg1
                    if numrep <= 0:
                        numrep += result_max
                        if numrep <= 0:
                            continue
                    bno = -1 - item
                    if bno < 0 or bno >= len(crush.buckets) or crush.buckets[bno] is None:
                        continue
                    bucket = crush.buckets[bno]
                    assert bucket is not None
                    osize = len(o)
                    sub_o: List[int] = []
                    sub_c: List[int] = []
                    if firstn:
                        if choose_leaf_tries:
                            recurse_tries = choose_leaf_tries
                        elif t.chooseleaf_descend_once:
                            recurse_tries = 1
                        else:
                            recurse_tries = choose_tries
                        n = self.choose_firstn(bucket, numrep, arg2, sub_o, 0, result_max - osize, choose_tries,
                                               recurse_tries, local_retries, local_fallback_retries,
                                               recurse_to_leaf, vary_r, stable, sub_c, 0)
                    else:
                        n = min(numrep, result_max - osize)
                        self.choose_indep(bucket, n, numrep, arg2, sub_o, 0, choose_tries,
                                          choose_leaf_tries or 1, recurse_to_leaf, sub_c, 0)
                    o.extend(sub_o[:n])
                    c.extend((sub_c + [0] * n)[:n])
                w = c if recurse_to_leaf else o
            elif op == RuleOp.EMIT:
                for item in w:
                    if len(result) >= result_max:
                        break
                    result.append(item)
                w = []
        return result


class _MsrMapping:
    """
    One run of an MSR rule (C{crush_msr_do_rule} in Ceph's C{mapper.c}).

    The rule is a prefix of C{set_msr_descents}/C{set_msr_collision_tries}
    steps, then blocks of C{take}, C{choosemsr}..., C{emit}.  Each block
    fills a range of output positions by descending from its root, one
    stride per choice of the first step; a whole descent is tried again (up
    to C{msr_descents} times, with a new retry number) while positions
    stay empty because the device found was out.  Within a descent a
    bucket already used by another stride of the same step is a collision,
    retried up to C{msr_collision_tries} times.  Per step, C{used[step]}
    holds the items chosen for each position (L{ITEM_UNDEF}: none yet).
    """

    def __init__(self, mapping: _Mapping, rule: Rule, result_max: int) -> None:
        self.m = mapping
        self.rule = rule
        self.steps = rule.steps
        self.result_max = result_max
        t = mapping.map.tunables
        self.descents = t.msr_descents
        self.collision_tries = t.msr_collision_tries
        self.out = [ITEM_NONE] * result_max
        self.returned = 0
        self.used: Dict[int, List[int]] = {}
        self.leaf_step = 0

    def _emit(self, position: int, item: int) -> None:
        if self.returned >= self.result_max or position >= self.result_max:
            return
        if self.rule.type == RuleType.MSR_FIRSTN:
            self.out[self.returned] = item
        else:
            self.out[position] = item
        self.returned += 1

    def run(self) -> List[int]:
        steps = self.steps
        n = len(steps)
        stepno = 0
        while stepno < n and steps[stepno][0] in (RuleOp.SET_MSR_DESCENTS, RuleOp.SET_MSR_COLLISION_TRIES):
            if steps[stepno][0] == RuleOp.SET_MSR_DESCENTS:
                self.descents = steps[stepno][1] & _M32
            else:
                self.collision_tries = steps[stepno][1] & _M32
            stepno += 1
        start_index = 0
        crush = self.m.map
        while stepno < n:
            # a block: take, choosemsr..., emit; anything else ends the rule with nothing
            if stepno + 1 >= n or steps[stepno][0] != RuleOp.TAKE:
                return []
            total = 1
            emit = stepno + 1
            while emit < n and steps[emit][0] != RuleOp.EMIT:
                if steps[emit][0] != RuleOp.CHOOSE_MSR:
                    return []
                total *= steps[emit][1] or self.result_max
                emit += 1
            if emit >= n:
                return []
            root = steps[stepno][1]
            if root >= 0 or not 0 <= -1 - root < len(crush.buckets) or crush.buckets[-1 - root] is None:
                raise CrushError("MSR rule %d takes %d, which is not a bucket" % (self.rule.id, root))
            first = stepno + 1
            self.used = {s: [ITEM_UNDEF] * self.result_max for s in range(first, emit)}
            self.leaf_step = emit - 1
            end_index = min(start_index + total, self.result_max)
            limit = self.returned + (end_index - start_index)
            tryno = 0
            while tryno < self.descents and self.returned < limit:
                if first < emit:
                    self._choose(crush.buckets[-1 - root], total, start_index, end_index, first, emit,  # type: ignore[arg-type]
                                 tryno)
                tryno += 1
            start_index = end_index
            stepno = emit + 1
        if self.rule.type == RuleType.MSR_FIRSTN:
            return self.out[:self.returned]
        return self.out

    def _descend(self, bucket: Bucket, type_: int, tryno: int, local_tryno: int, index: int) -> int:
        # down from bucket to an item of type_ (or a device), with one retry number all the way
        r = ((((tryno * self.result_max + index) << 16) + local_tryno) & _M32)
        buckets = self.m.map.buckets
        while True:
            item = self.m._bucket_choose(bucket, r, index)
            if item >= 0:
                return item
            child = buckets[-1 - item] if -1 - item < len(buckets) else None
            if child is None:
                raise CrushError("CRUSH bucket %d holds a missing bucket %d" % (bucket.id, item))
            if child.type == type_:
                return item
            bucket = child

    def _choose(self, bucket: Bucket, total: int, start: int, end: int, stepno: int, end_step: int,
                tryno: int) -> int:
        _, arg1, type_ = self.steps[stepno]
        strides = arg1 or self.result_max
        stride_length = total // strides
        used = self.used[stepno]
        leaves = self.used[self.leaf_step]
        undo: Dict[int, Tuple[int, int, int]] = {}
        mapped = 0
        for stride_index, stride_start in enumerate(range(start, end, stride_length)):
            stride_end = min(stride_start + stride_length, end)
            if all(leaves[i] != ITEM_UNDEF for i in range(stride_start, stride_end)):
                continue    # this stride is placed already
            item = None
            for local_tryno in range(self.collision_tries):
                candidate = self._descend(bucket, type_, tryno, local_tryno, stride_index)
                # taken by another stride of this step's range: collision, try again
                pos = next((i for i in range(start, end) if used[i] == candidate), None)
                if pos is None or stride_start <= pos < stride_end:
                    item = candidate
                    break
            if item is None:
                continue
            if type_ == 0:
                if stride_length != 1 or stepno + 1 != end_step or self.m._is_out(item):
                    continue    # a malformed rule, or out: a later descent tries again
                self._push(used, stride_start, stride_end, item)
                self._emit(stride_start, item)
                mapped += 1
            else:
                if stepno + 1 >= end_step or item >= 0:
                    continue    # a malformed rule: no step left for the leaves
                child = self.m.map.buckets[-1 - item]
                assert child is not None
                child_mapped = self._choose(child, stride_length, stride_start, stride_end, stepno + 1, end_step,
                                            tryno)
                if self._push(used, stride_start, stride_end, item) and child_mapped == 0:
                    # nothing placed under it: free it for other strides, after this pass
                    undo[stride_index] = (stride_start, stride_end, item)
                else:
                    mapped += child_mapped
        for stride_start, stride_end, item in undo.values():
            for i in range(stride_end - 1, stride_start - 1, -1):
                if used[i] != ITEM_UNDEF:
                    used[i] = ITEM_UNDEF
                    break
        return mapped

    @staticmethod
    def _push(used: List[int], start: int, end: int, item: int) -> bool:
        # add item to the stride's set; False if it was there already
        for i in range(start, end):
            if used[i] == item:
                return False
            if used[i] == ITEM_UNDEF:
                used[i] = item
                return True
        return False


def _put(vec: List[int], pos: int, value: int) -> None:
    # C writes into a preallocated array; a Python list grows to the position
    if pos < len(vec):
        vec[pos] = value
    else:
        vec.extend([ITEM_UNDEF] * (pos - len(vec)))
        vec.append(value)


__all__ = [
    "CrushMap", "Bucket", "Rule", "ChooseArg", "Tunables", "CrushError", "BucketAlg", "RuleOp", "RuleType",
    "ITEM_NONE", "DEFAULT_CHOOSE_ARGS", "hash32_2", "hash32_3", "hash32_4", "crush_ln",
]
