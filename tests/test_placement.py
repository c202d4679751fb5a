"""
CRUSH placement and the OSDMap against Ceph's own tools.

Known answers come from Ceph itself, at test time: CRUSH maps written in
Ceph's text syntax are compiled with C{crushtool} and mapped with
C{crushtool --test --show-mappings}; OSDMaps come from a real monitor
(C{ceph osd getmap}) and are mapped with C{osdmaptool
--test-map-pgs-dump-all} and C{ceph osd map}.  Every bucket algorithm,
firstn and indep rules with and without chooseleaf, legacy and current
tunables, per-rule tunable steps, choose_args weight sets and ids,
partially and fully out devices, pg_upmap, pg_upmap_items, primary
affinity, erasure-coded and non-hashpspool pools are covered; MSR rules
against Ceph 20.2's crushtool and a 20.2 monitor with MSR pools.  Known
answers: every field C{osdmaptool --dump} shows of each release's map, and
thousands of object names per pool against the monitor's C{osd map}
(asked through librados, C{ceph_osd_map_many}).
"""

import atexit
import datetime
import json
import math
import os
import re
import shutil
import subprocess
import tempfile
import uuid

from twisted.trial.unittest import SynchronousTestCase

from msgr2tx.ceph.crush import ITEM_NONE, CrushError, CrushMap, crush_ln, hash32_2
from msgr2tx.ceph.osdmap import OSD_EXISTS, OSD_UP, OSDMap, PgId, PlacementError, stable_mod, str_hash_rjenkins
from msgr2tx.errors import DecodeError
from tests import cephlab

LEGACY_TUNABLES = """\
tunable choose_local_tries 2
tunable choose_local_fallback_tries 5
tunable choose_total_tries 19
tunable chooseleaf_descend_once 0
tunable chooseleaf_vary_r 0
tunable chooseleaf_stable 0
tunable straw_calc_version 0
tunable allowed_bucket_algs 62
"""

CURRENT_TUNABLES = """\
tunable choose_local_tries 0
tunable choose_local_fallback_tries 0
tunable choose_total_tries 50
tunable chooseleaf_descend_once 1
tunable chooseleaf_vary_r 1
tunable chooseleaf_stable 1
tunable straw_calc_version 1
tunable allowed_bucket_algs 62
"""

#: one bucket of every algorithm under racks and a list root; seven rules
MAP_BODY = """\
device 0 osd.0
device 1 osd.1
device 2 osd.2
device 3 osd.3
device 4 osd.4
device 5 osd.5
device 6 osd.6
device 7 osd.7
device 8 osd.8
device 9 osd.9
device 10 osd.10
device 11 osd.11
device 12 osd.12
device 13 osd.13
device 14 osd.14
device 15 osd.15
type 0 osd
type 1 host
type 2 rack
type 3 root
host h_uniform {
	id -1
	alg uniform
	hash 0
	item osd.0 weight 1.000
	item osd.1 weight 1.000
	item osd.2 weight 1.000
}
host h_list {
	id -2
	alg list
	hash 0
	item osd.3 weight 1.000
	item osd.4 weight 2.000
	item osd.5 weight 0.500
}
host h_tree {
	id -3
	alg tree
	hash 0
	item osd.6 weight 1.000
	item osd.7 weight 3.000
	item osd.8 weight 1.500
	item osd.9 weight 0.250
}
host h_straw {
	id -4
	alg straw
	hash 0
	item osd.10 weight 1.000
	item osd.11 weight 2.000
	item osd.12 weight 0.700
}
host h_straw2 {
	id -5
	alg straw2
	hash 0
	item osd.13 weight 1.000
	item osd.14 weight 2.500
	item osd.15 weight 0.100
}
rack r1 {
	id -6
	alg straw2
	hash 0
	item h_uniform weight 3.000
	item h_list weight 3.500
	item h_tree weight 5.750
}
rack r2 {
	id -7
	alg straw
	hash 0
	item h_straw weight 3.700
	item h_straw2 weight 3.600
}
root default {
	id -8
	alg list
	hash 0
	item r1 weight 12.250
	item r2 weight 7.300
}
rule rulerephost {
	id 0
	type replicated
	min_size 1
	max_size 10
	step take default
	step chooseleaf firstn 0 type host
	step emit
}
rule rulereprackthenhost {
	id 1
	type replicated
	min_size 1
	max_size 10
	step take default
	step choose firstn 2 type rack
	step chooseleaf firstn 2 type host
	step emit
}
rule ruleechost {
	id 2
	type erasure
	min_size 1
	max_size 10
	step set_chooseleaf_tries 5
	step set_choose_tries 100
	step take default
	step chooseleaf indep 0 type host
	step emit
}
rule ruleecchoose {
	id 3
	type erasure
	min_size 1
	max_size 10
	step take default
	step choose indep 0 type osd
	step emit
}
rule rulereptuned {
	id 4
	type replicated
	min_size 1
	max_size 10
	step set_choose_local_tries 0
	step set_choose_local_fallback_tries 0
	step set_chooseleaf_vary_r 1
	step set_chooseleaf_stable 1
	step take default
	step chooseleaf firstn 0 type host
	step emit
}
rule ruletwotakes {
	id 5
	type replicated
	min_size 1
	max_size 10
	step take r1
	step chooseleaf firstn 1 type host
	step emit
	step take r2
	step chooseleaf firstn -1 type host
	step emit
}
rule ruleecrackhost {
	id 6
	type erasure
	min_size 1
	max_size 10
	step take default
	step choose indep 2 type rack
	step chooseleaf indep 2 type host
	step emit
}
"""

#: crushtool --test maps with choose_args index 0
CHOOSE_ARGS = """\
choose_args 0 {
  {
    bucket_id -5
    weight_set [
      [ 2.000 1.000 0.500 ]
      [ 1.000 1.000 3.000 ]
    ]
    ids [ -20 -21 -22 ]
  }
  {
    bucket_id -6
    weight_set [
      [ 1.000 5.000 1.000 ]
    ]
  }
}
"""

RULES = range(7)
XS = 400


def _tool(*argv, input=None):
    p = subprocess.run(argv, capture_output=True, input=input, timeout=120)
    if p.returncode:
        raise AssertionError("%s failed: %s" % (" ".join(argv), p.stderr.decode("utf-8", "replace")[-2000:]))
    return p.stdout.decode()


def _ids(text):
    # Ceph prints an empty erasure-coded position as NONE or 2147483647
    return [ITEM_NONE if v == "NONE" else int(v) for v in text.split(",") if v]


class CrushMappingTests(SynchronousTestCase):
    """Our CRUSH against C{crushtool --test}, input by input."""

    def setUp(self):
        cephlab.ensure_ceph()
        self.dir = tempfile.mkdtemp(prefix="msgr2tx-crush-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def compile(self, text):
        src = os.path.join(self.dir, "map.txt")
        out = os.path.join(self.dir, "map.bin")
        with open(src, "w") as f:
            f.write(text)
        _tool("crushtool", "-c", src, "-o", out)
        with open(out, "rb") as f:
            return out, CrushMap.decode(f.read())

    def check(self, path, crush, rule, num_rep, weights=None, choose_args_index=-1):
        argv = ["crushtool", "-i", path, "--test", "--show-mappings", "--rule", str(rule),
                "--num-rep", str(num_rep), "--min-x", "0", "--max-x", str(XS - 1)]
        dense = [0x10000] * crush.max_devices
        for osd, weight in (weights or {}).items():
            argv += ["--weight", str(osd), "%g" % weight]
            dense[osd] = int(weight * 0x10000)
        seen = 0
        for line in _tool(*argv).splitlines():
            m = re.match(r"CRUSH rule \d+ x (\d+) \[(.*)\]", line)
            if not m:
                continue
            x = int(m.group(1))
            got = crush.do_rule(rule, x, num_rep, dense, choose_args_index)
            self.assertEqual(got, _ids(m.group(2)), "rule %d x %d num_rep %d" % (rule, x, num_rep))
            seen += 1
        self.assertEqual(seen, XS)

    def test_legacy_tunables_every_bucket_algorithm(self):
        path, crush = self.compile(LEGACY_TUNABLES + MAP_BODY)
        self.assertEqual(crush.tunables.choose_total_tries, 19)
        self.assertEqual(sorted({b.alg for b in crush.buckets if b}), [1, 2, 3, 4, 5])
        for rule in RULES:
            for num_rep in (3, 5):
                self.check(path, crush, rule, num_rep)

    def test_current_tunables(self):
        path, crush = self.compile(CURRENT_TUNABLES + MAP_BODY)
        self.assertEqual((crush.tunables.chooseleaf_vary_r, crush.tunables.chooseleaf_stable), (1, 1))
        for rule in RULES:
            for num_rep in (2, 4):
                self.check(path, crush, rule, num_rep)

    def test_device_weights(self):
        # devices partially and fully out: is_out() hashes x with the device
        for tunables in (LEGACY_TUNABLES, CURRENT_TUNABLES):
            path, crush = self.compile(tunables + MAP_BODY)
            for rule in (0, 2, 3):
                self.check(path, crush, rule, 3, weights={4: 0, 14: 0.3, 7: 0.75})

    def test_choose_args(self):
        path, crush = self.compile(CURRENT_TUNABLES + MAP_BODY + CHOOSE_ARGS)
        self.assertEqual(sorted(crush.choose_args), [0])
        self.assertEqual(crush.choose_args[0][4].ids, [-20, -21, -22])
        for rule in RULES:
            self.check(path, crush, rule, 3, choose_args_index=0)
        # without that index (and no default set) the weight sets do not apply
        plain = CrushMap.decode(open(self.compile(CURRENT_TUNABLES + MAP_BODY)[0], "rb").read())
        self.assertEqual([crush.do_rule(0, x, 3, None, 7) for x in range(50)],
                         [plain.do_rule(0, x, 3) for x in range(50)])

    def test_names_and_rules(self):
        _, crush = self.compile(LEGACY_TUNABLES + MAP_BODY)
        self.assertEqual(crush.type_names, {0: "osd", 1: "host", 2: "rack", 3: "root"})
        self.assertEqual(crush.item_names[-8], "default")
        self.assertEqual(crush.item_names[15], "osd.15")
        self.assertEqual(crush.rule_id("rulerephost"), 0)
        with self.assertRaises(CrushError):
            crush.rule_id("nope")
        with self.assertRaises(CrushError):
            crush.do_rule(99, 1, 3)

    def test_truncated_map(self):
        path, _ = self.compile(LEGACY_TUNABLES + MAP_BODY)
        with open(path, "rb") as f:
            data = f.read()
        with self.assertRaises(DecodeError):
            CrushMap.decode(b"\x01" + data[1:])
        for cut in (3, 20, 100, len(data) // 2):
            with self.assertRaises(DecodeError):
                CrushMap.decode(data[:cut])


class FixedPointTests(SynchronousTestCase):
    """Values that pin the arithmetic, from Ceph's definitions."""

    def test_crush_ln_close_to_log2(self):
        # 2^44 * log2(x + 1) from tables, within 1e-4 of the real logarithm
        # everywhere (the tables are not exact, and CRUSH depends on their
        # exact values, which the straw2 mappings above check)
        self.assertEqual(crush_ln(0), 0)
        worst = max(abs(crush_ln(x) - (1 << 44) * math.log2(x + 1)) for x in range(0x10000))
        self.assertLess(worst, (1 << 44) / 10000)

    def test_stable_mod(self):
        # 12 PGs: mask 15; seeds 12..15 fold onto 4..7
        self.assertEqual([stable_mod(x, 12, 15) for x in range(16)], list(range(12)) + [4, 5, 6, 7])

    def test_hash_is_u32(self):
        for a, b in ((0, 0), (-1, 7), (0x7FFFFFFF, 1)):
            self.assertTrue(0 <= hash32_2(a, b) <= 0xFFFFFFFF)


_REAL: dict = {}


def _real_cluster_map(release):
    """(monitor, osdmap path, decoded OSDMap) of *release*, made once per test process."""
    if release in _REAL:
        return _REAL[release]
    cephlab.ensure_ceph()
    mon = cephlab.CephMonitor(auth="none", release=release).start()
    atexit.register(mon.stop)
    # the ceph CLI's commands as JSON, all in one librados process (a CLI call each costs 0.3 s)
    mon_commands(mon, [{"prefix": "osd new", "uuid": str(uuid.uuid4())} for _ in range(6)] + [
        cmd for h in range(3) for cmd in (
            {"prefix": "osd crush add-bucket", "name": "h%d" % h, "type": "host"},
            {"prefix": "osd crush move", "name": "h%d" % h, "args": ["root=default"]})] + [
        {"prefix": "osd crush add", "id": i, "weight": 2.5 if i == 4 else 1.0, "args": ["host=h%d" % (i % 3)]}
        for i in range(6)] + [
        {"prefix": "osd crush rule create-replicated", "name": "byhost", "root": "default", "type": "host"},
        {"prefix": "osd erasure-code-profile set", "name": "ec21",
         "profile": ["k=2", "m=1", "crush-failure-domain=host"]},
        {"prefix": "osd pool create", "pool": "rep3", "pg_num": 12, "pgp_num": 12, "pool_type": "replicated",
         "rule": "byhost"},
        {"prefix": "osd pool set", "pool": "rep3", "var": "size", "val": "3"},
        {"prefix": "osd pool create", "pool": "rep2", "pg_num": 33},
        {"prefix": "osd pool set", "pool": "rep2", "var": "size", "val": "2"},
        {"prefix": "osd pool create", "pool": "ecpool", "pg_num": 16, "pgp_num": 16, "pool_type": "erasure",
         "erasure_code_profile": "ec21"},
        {"prefix": "osd pool create", "pool": "nohash", "pg_num": 8},
        {"prefix": "osd pool set", "pool": "nohash", "var": "hashpspool", "val": "false",
         "yes_i_really_mean_it": True},
        {"prefix": "osd set-require-min-compat-client", "version": "luminous"},
        {"prefix": "osd pg-upmap-items", "pgid": "1.1", "id": [0, 3]},
        {"prefix": "osd pg-upmap", "pgid": "1.2", "id": [5, 1, 3]},
        {"prefix": "osd primary-affinity", "id": 1, "weight": 0.3},
        {"prefix": "osd out", "ids": ["5"]},
    ])
    c = mon.ceph_checked
    path = os.path.join(mon.dir, "osdmap.bin")
    c("osd", "getmap", "-o", path)
    with open(path, "rb") as f:
        _REAL[release] = (mon, path, OSDMap.decode(f.read()))
    return _REAL[release]


class RealOSDMapTests(SynchronousTestCase):
    """
    A real 16.2 monitor's OSDMap: six OSDs on three hosts (one heavier, one
    out), pools with 12, 33, 16 and 8 PGs (replicated by host and by OSD,
    erasure-coded k=2 m=1, one without hashpspool), a pg_upmap, a
    pg_upmap_items entry and a primary affinity; decoded by us and mapped
    by Ceph's tools.
    """

    release = cephlab.DEFAULT_RELEASE

    def setUp(self):
        self.mon, self.path, self.map = _real_cluster_map(self.release)

    def dump(self, *extra):
        # the release's own osdmaptool (the scratch path is the same inside its chroot)
        out = _tool(*cephlab.release_argv(self.release), "osdmaptool", self.path, "--test-map-pgs-dump-all", *extra)
        pat = re.compile(r"(\d+\.[0-9a-f]+) raw \(\[(.*?)\], p(-?\d+)\) up \(\[(.*?)\], p(-?\d+)\) "
                         r"acting \(\[(.*?)\], p(-?\d+)\)")
        rows = [m.groups() for m in map(pat.match, out.splitlines()) if m]
        self.assertEqual(len(rows), 12 + 33 + 16 + 8)
        return rows

    def test_decoded_map(self):
        m = self.map
        self.assertEqual(str(m.fsid), self.mon.fsid)
        self.assertEqual({p.name: (p.pg_num, p.size, p.type) for p in m.pools.values()},
                         {"rep3": (12, 3, 1), "rep2": (33, 2, 1), "ecpool": (16, 3, 3), "nohash": (8, 1, 1)})
        self.assertEqual(m.pool_by_name("ecpool").erasure_code_profile, "ec21")
        self.assertEqual(m.erasure_code_profiles["ec21"]["k"], "2")
        self.assertEqual(m.pool_by_name("nohash").flags & 1, 0)
        self.assertEqual(m.max_osd, 6)
        self.assertEqual(m.osd_weight, [0x10000] * 5 + [0])
        self.assertTrue(all(m.exists(i) and not m.is_up(i) for i in range(6)))
        self.assertEqual(m.pg_upmap, {PgId(1, 2): [5, 1, 3]})
        self.assertEqual(m.pg_upmap_items, {PgId(1, 1): [(0, 3)]})
        self.assertEqual(m.primary_affinity[1], 19660)
        with self.assertRaises(PlacementError):
            m.pool_by_name("nope")

    def test_raw_placement_with_real_states(self):
        # the OSDs exist but are down, osd.5 is out: CRUSH's raw sets
        for pg, raw, raw_primary, up, up_primary, acting, acting_primary in self.dump():
            got, _ = self.map.pg_to_raw_osds(PgId.parse(pg))
            self.assertEqual(got, _ids(raw), pg)
            # nothing is up: empty sets, or all-NONE positions for the EC pool
            self.assertEqual(tuple(self.map.pg_to_up_acting(PgId.parse(pg))),
                             (_ids(up), int(up_primary), _ids(acting), int(acting_primary)), pg)

    def test_up_acting_all_up(self):
        # as osdmaptool --mark-up-in: every OSD up and in (upmaps, affinity apply)
        m = OSDMap.decode(open(self.path, "rb").read())
        for i in range(m.max_osd):
            m.osd_state[i] |= OSD_EXISTS | OSD_UP
            m.osd_weight[i] = 0x10000
        for pg, _, _, up, up_primary, acting, acting_primary in self.dump("--mark-up-in"):
            self.assertEqual(tuple(m.pg_to_up_acting(PgId.parse(pg))),
                             (_ids(up), int(up_primary), _ids(acting), int(acting_primary)), pg)

    def test_objects_like_ceph_osd_map(self):
        # the monitor's own answer: raw hash, folded PG, up and acting
        pat = re.compile(r"object '(.*)' -> pg (\d+)\.([0-9a-f]+) \((\S+)\) -> up \(\[(.*?)\], p(-?\d+)\) "
                         r"acting \(\[(.*?)\], p(-?\d+)\)")
        for pool in ("rep3", "rep2", "ecpool", "nohash"):
            pool_id = self.map.pool_by_name(pool).id
            for i in range(2):     # the CLI's text, NONE included; thousands more below, as JSON
                name = "obj-%s-%d" % (pool, i * 37)
                out = self.mon.ceph_checked("osd", "map", pool, name).stdout.decode()
                m = pat.search(out)
                self.assertIsNotNone(m, out)
                raw, pg, placement = self.map.map_object(pool_id, name.encode())
                self.assertEqual((raw.pool, raw.seed), (int(m.group(2)), int(m.group(3), 16)), out)
                self.assertEqual(str(pg), m.group(4), out)
                self.assertEqual(tuple(placement), (_ids(m.group(5)), int(m.group(6)),
                                                    _ids(m.group(7)), int(m.group(8))), out)

    def test_known_answers_from_osdmaptool(self):
        # the release's osdmaptool reads the same map: every field it shows, as we decode it
        fields = check_osdmap_dump(self, self.map, osdmaptool_dump(self.release, self.path))
        self.assertGreater(fields, 80)

    def test_many_objects_like_ceph_osd_map(self):
        # 1500 names per pool, the monitor's answer for each
        pools = ("rep3", "rep2", "ecpool", "nohash")
        answers = ceph_osd_map_many(self.mon, [(p, object_names(p, 1500)) for p in pools])
        self.assertEqual(check_osd_map_answers(self, self.map, answers), 6000)

    def test_known_hash(self):
        # ceph osd map rep3 foo -> pg 1.7fc1f406 (1.6), seen on 16.2
        self.assertEqual(str_hash_rjenkins(b"foo"), 0x7FC1F406)
        self.assertEqual(str(self.map.map_object(self.map.pool_by_name("rep3").id, b"foo")[1]), "1.6")


cephlab.release_variants(globals(), RealOSDMapTests)


#: two racks of three hosts of three devices (one host a uniform bucket); MSR rules
MSR_MAP = CURRENT_TUNABLES + """\
device 0 osd.0
device 1 osd.1
device 2 osd.2
device 3 osd.3
device 4 osd.4
device 5 osd.5
device 6 osd.6
device 7 osd.7
device 8 osd.8
device 9 osd.9
device 10 osd.10
device 11 osd.11
device 12 osd.12
device 13 osd.13
device 14 osd.14
device 15 osd.15
device 16 osd.16
device 17 osd.17
type 0 osd
type 1 host
type 2 rack
type 3 root
""" + "".join("""\
host h%d {
	id %d
	alg %s
	hash 0
	item osd.%d weight %s
	item osd.%d weight %s
	item osd.%d weight %s
}
""" % (h, -1 - h, "uniform" if h == 4 else "straw2", 3 * h, "1.000", 3 * h + 1, "1.000" if h == 4 else "2.000",
       3 * h + 2, "1.000" if h == 4 else "0.500") for h in range(6)) + """\
rack r1 {
	id -7
	alg straw2
	hash 0
	item h0 weight 3.500
	item h1 weight 3.500
	item h2 weight 3.500
}
rack r2 {
	id -8
	alg straw2
	hash 0
	item h3 weight 3.500
	item h4 weight 3.000
	item h5 weight 3.500
}
root default {
	id -9
	alg straw2
	hash 0
	item r1 weight 10.500
	item r2 weight 10.000
}
rule msr_hosts_by_two {
	id 0
	type msr_indep
	step take default
	step choosemsr 3 type host
	step choosemsr 2 type osd
	step emit
}
rule msr_firstn_hosts {
	id 1
	type msr_firstn
	step take default
	step choosemsr 0 type host
	step choosemsr 1 type osd
	step emit
}
rule msr_three_levels {
	id 2
	type msr_indep
	step set_msr_descents 3
	step set_msr_collision_tries 2
	step take default
	step choosemsr 2 type rack
	step choosemsr 2 type host
	step choosemsr 1 type osd
	step emit
}
rule msr_two_blocks {
	id 3
	type msr_indep
	step take r1
	step choosemsr 2 type host
	step choosemsr 1 type osd
	step emit
	step take r2
	step choosemsr 0 type osd
	step emit
}
rule msr_firstn_devices {
	id 4
	type msr_firstn
	step take default
	step choosemsr 4 type osd
	step emit
}
"""

MSR_RELEASE = "tentacle"


class MsrCrushMappingTests(SynchronousTestCase):
    """
    MSR rules (msr_indep, msr_firstn; choosemsr steps, per-rule and map
    tunables, several blocks) against Ceph 20.2's C{crushtool --test}, with
    devices out, partially out and a whole host out.
    """

    XS = 200

    def setUp(self):
        cephlab.ensure_ceph()
        self.prefix = cephlab.release_argv(MSR_RELEASE)
        self.dir = cephlab.release_tmpdir(MSR_RELEASE, prefix="msgr2tx-msr-")
        self.addCleanup(cephlab.remove_release_tmpdir, self.dir)
        self.checked = 0

    def compile(self, text):
        src = os.path.join(self.dir, "map.txt")
        out = os.path.join(self.dir, "map.bin")
        with open(src, "w") as f:
            f.write(text)
        _tool(*self.prefix, "crushtool", "-c", src, "-o", out)
        with open(out, "rb") as f:
            return out, CrushMap.decode(f.read())

    def check(self, path, crush, rule, num_rep, weights, choose_args_index=-1):
        argv = [*self.prefix, "crushtool", "-i", path, "--test", "--show-mappings", "--rule", str(rule),
                "--num-rep", str(num_rep), "--min-x", "0", "--max-x", str(self.XS - 1)]
        dense = [0x10000] * crush.max_devices
        for osd, weight in weights.items():
            argv += ["--weight", str(osd), "%g" % weight]
            dense[osd] = int(weight * 0x10000)
        seen = 0
        for line in _tool(*argv).splitlines():
            m = re.match(r"CRUSH rule \d+ x (\d+) \[(.*)\]", line)
            if m:
                x = int(m.group(1))
                self.assertEqual(crush.do_rule(rule, x, num_rep, dense, choose_args_index), _ids(m.group(2)),
                                 "rule %d x %d num_rep %d weights %s" % (rule, x, num_rep, weights))
                seen += 1
        self.assertEqual(seen, self.XS)
        self.checked += seen

    def test_msr_rules(self):
        path, crush = self.compile(MSR_MAP)
        self.assertEqual([crush.rules[r].type for r in range(5)], [5, 4, 5, 5, 4])
        self.assertEqual((crush.tunables.msr_descents, crush.tunables.msr_collision_tries), (100, 100))
        outs = ({}, {4: 0, 7: 0.3, 13: 0.6}, {3: 0, 4: 0, 5: 0, 16: 0, 1: 0.5})
        for rule in range(5):
            for num_rep in (4, 6, 9):
                for weights in outs:
                    # more hosts than there are (in) makes Ceph retry 100 x 100 times: slow in Python
                    if rule == 1 and num_rep > (6 if not weights else 4):
                        continue
                    self.check(path, crush, rule, num_rep, weights)
        self.assertEqual(self.checked, 40 * self.XS)

    def test_msr_choose_args(self):
        # the balancer's weight sets (by stride position) and ids under MSR descents
        path, crush = self.compile(MSR_MAP + """\
choose_args 0 {
  {
    bucket_id -9
    weight_set [
      [ 1.000 9.000 ]
      [ 6.000 1.000 ]
    ]
  }
  {
    bucket_id -7
    weight_set [
      [ 0.500 3.000 1.000 ]
    ]
    ids [ -30 -31 -32 ]
  }
  {
    bucket_id -1
    weight_set [
      [ 2.000 1.000 0.100 ]
      [ 0.300 1.000 3.000 ]
      [ 1.000 1.000 1.000 ]
    ]
  }
}
""")
        self.assertEqual(sorted(crush.choose_args), [0])
        # the weight sets change placements (without that index, none apply)
        self.assertNotEqual([crush.do_rule(0, x, 6, None, 0) for x in range(50)],
                            [crush.do_rule(0, x, 6, None, 5) for x in range(50)])
        for rule in range(5):
            self.check(path, crush, rule, 4, {}, 0)
        self.check(path, crush, 0, 6, {7: 0, 1: 0.5}, 0)

    def test_msr_map_tunables(self):
        path, crush = self.compile(MSR_MAP.replace("tunable allowed_bucket_algs 62\n",
                                                   "tunable allowed_bucket_algs 62\ntunable msr_descents 2\n"
                                                   "tunable msr_collision_tries 1\n"))
        self.assertEqual((crush.tunables.msr_descents, crush.tunables.msr_collision_tries), (2, 1))
        for rule in (0, 1, 3):
            self.check(path, crush, rule, 6, {0: 0, 9: 0, 10: 0.2, 11: 0})
        self.check(path, crush, 1, 9, {})


#: argv: conf keyring names.json; names.json = [[pool, [object names]], ...];
#: prints the monitor's ``osd map`` answer (JSON) for each, in order
LIBRADOS_OSD_MAP = r"""
import json, sys, rados
conf, keyring, path = sys.argv[1:4]
conf_over = {"keyring": keyring} if keyring else {}
out = []
with rados.Rados(conffile=conf, conf=conf_over) as r:
    for pool, names in json.load(open(path)):
        for name in names:
            cmd = {"prefix": "osd map", "pool": pool, "object": name, "format": "json"}
            ret, buf, err = r.mon_command(json.dumps(cmd), b"")
            if ret:
                raise SystemExit("osd map %s %s: %d %s" % (pool, name, ret, err))
            out.append(json.loads(buf))
print(json.dumps(out))
"""


#: argv: conf keyring commands.json (a list of monitor commands as JSON objects); runs them in order
LIBRADOS_MON_COMMANDS = r"""
import json, sys, rados
conf, keyring, path = sys.argv[1:4]
with rados.Rados(conffile=conf, conf={"keyring": keyring} if keyring else {}) as r:
    for cmd in json.load(open(path)):
        ret, buf, err = r.mon_command(json.dumps(cmd), b"")
        if ret:
            raise SystemExit("%s: %d %s" % (json.dumps(cmd), ret, err))
"""


def _librados_script(mon, script, payload):
    # run a script with the monitor release's python3-rados on a JSON file
    d = cephlab.release_tmpdir(mon.release, prefix="msgr2tx-lr-")
    try:
        path = os.path.join(d, "in.json")
        with open(path, "w") as f:
            json.dump(payload, f)
        env = {k: v for k, v in os.environ.items() if k not in ("CEPH_ARGS", "CEPH_CONF", "CEPH_KEYRING")}
        keyring = mon.keyring if mon.auth != "none" else ""
        p = subprocess.run(mon.librados_argv() + ["-c", script, mon.conf, keyring, path],
                           capture_output=True, timeout=300, env=env)
    finally:
        cephlab.remove_release_tmpdir(d)
    if p.returncode:
        raise AssertionError("librados script failed: %s" % p.stderr.decode("utf-8", "replace")[-2000:])
    return p.stdout


def mon_commands(mon, commands):
    """Run monitor commands (JSON objects, as the ceph CLI sends them) in
    order in one librados process: a fraction of a second for dozens."""
    _librados_script(mon, LIBRADOS_MON_COMMANDS, list(commands))


def ceph_osd_map_many(mon, jobs):
    """The monitor's ``ceph osd map POOL NAME`` for many names at once:
    *jobs* is [(pool name, [object names])]; returns the JSON answers in
    order.  One librados process of the monitor's release sends them all
    as monitor commands (thousands per second, where the CLI does a few
    dozen)."""
    return json.loads(_librados_script(mon, LIBRADOS_OSD_MAP, [[pool, list(names)] for pool, names in jobs]))


def check_osd_map_answers(test, osdmap, answers):
    """Assert that our placement of each object equals the monitor's JSON
    ``osd map`` answer (raw hash, PG, up, acting, primaries); returns how
    many were checked."""
    for a in answers:
        pool = osdmap.pool_by_name(a["pool"])
        raw, pg, placement = osdmap.map_object(pool.id, a["objname"].encode())
        got = ("%d.%x" % (raw.pool, raw.seed), str(pg), list(placement.up), placement.up_primary,
               list(placement.acting), placement.acting_primary)
        # (an empty erasure-coded position is 2147483647, ITEM_NONE, in the JSON)
        want = (a["raw_pgid"], a["pgid"], a["up"], a["up_primary"], a["acting"], a["acting_primary"])
        test.assertEqual(got, want, a)
    return len(answers)


def object_names(pool, count):
    """*count* object names of the kinds applications use."""
    kinds = ("%s-obj-%d", "rbd_data.%s.%016x", "%s/dir/file.%d", "%s \u00e9\u00e8 %d")
    return [kinds[i % len(kinds)] % (pool, i) for i in range(count)]


_MSR_REAL: list = []

#: a replicated MSR rule, added with crushtool (Ceph makes MSR rules itself
#: only for erasure-code profiles with crush-osds-per-failure-domain)
MSR_FIRSTN_RULE = """
rule msrfirst {
	id 9
	type msr_firstn
	step take default
	step choosemsr 3 type host
	step choosemsr 1 type osd
	step emit
}
"""


def _msr_cluster_map():
    """(monitor, osdmap path, OSDMap) of a 20.2 monitor with MSR pools, made once."""
    if _MSR_REAL:
        return _MSR_REAL[0]
    cephlab.ensure_ceph()
    mon = cephlab.CephMonitor(auth="none", release=MSR_RELEASE).start()
    atexit.register(mon.stop)
    c = mon.ceph_checked
    mon_commands(mon, [{"prefix": "osd new", "uuid": str(uuid.uuid4())} for _ in range(10)] + [
        cmd for h in range(5) for cmd in (
            {"prefix": "osd crush add-bucket", "name": "h%d" % h, "type": "host"},
            {"prefix": "osd crush move", "name": "h%d" % h, "args": ["root=default"]})] + [
        {"prefix": "osd crush add", "id": i, "weight": 1.5 if i == 7 else 1.0, "args": ["host=h%d" % (i % 5)]}
        for i in range(10)] + [
        # MSR rules need every client to be Squid or newer
        {"prefix": "osd set-require-min-compat-client", "version": "squid"},
        {"prefix": "osd erasure-code-profile set", "name": "msr42",
         "profile": ["k=4", "m=2", "crush-failure-domain=host", "crush-num-failure-domains=3",
                     "crush-osds-per-failure-domain=2"]},
        {"prefix": "osd pool create", "pool": "msrec", "pg_num": 32, "pgp_num": 32, "pool_type": "erasure",
         "erasure_code_profile": "msr42"}])
    crushmap = os.path.join(mon.dir, "crush.bin")
    c("osd", "getcrushmap", "-o", crushmap)
    prefix = cephlab.release_argv(MSR_RELEASE)
    _tool(*prefix, "crushtool", "-d", crushmap, "-o", crushmap + ".txt")
    with open(crushmap + ".txt", "a") as f:
        f.write(MSR_FIRSTN_RULE)
    _tool(*prefix, "crushtool", "-c", crushmap + ".txt", "-o", crushmap + ".new")
    c("osd", "setcrushmap", "-i", crushmap + ".new")
    c("osd", "pool", "create", "msrrep", "24", "24", "replicated", "msrfirst")
    c("osd", "pool", "set", "msrrep", "size", "3")
    c("osd", "out", "3")
    c("osd", "reweight", "6", "0.4")
    path = os.path.join(mon.dir, "osdmap.bin")
    c("osd", "getmap", "-o", path)
    with open(path, "rb") as f:
        _MSR_REAL.append((mon, path, OSDMap.decode(f.read())))
    return _MSR_REAL[0]


class RealMsrOSDMapTests(SynchronousTestCase):
    """
    A 20.2 monitor's OSDMap with MSR pools: an erasure-coded pool (k=4 m=2)
    whose profile asks for 2 OSDs on each of 3 hosts (Ceph makes an
    msr_indep rule for it), and a replicated pool on an msr_firstn rule set
    with crushtool; ten OSDs on five hosts, one out, one reweighted to 0.4.
    Our placement against osdmaptool's and the monitor's.
    """

    def setUp(self):
        self.mon, self.path, self.map = _msr_cluster_map()

    def test_rules_decoded(self):
        crush = self.map.crush
        ec = self.map.pool_by_name("msrec")
        rep = self.map.pool_by_name("msrrep")
        self.assertEqual((crush.rules[ec.crush_rule].type, crush.rules[rep.crush_rule].type), (5, 4))
        self.assertEqual([op for op, _, _ in crush.rules[ec.crush_rule].steps], [1, 16, 16, 4])
        self.assertEqual((ec.size, rep.size), (6, 3))

    def dump(self, *extra):
        out = _tool(*cephlab.release_argv(MSR_RELEASE), "osdmaptool", self.path, "--test-map-pgs-dump-all", *extra)
        pat = re.compile(r"(\d+\.[0-9a-f]+) raw \(\[(.*?)\], p(-?\d+)\) up \(\[(.*?)\], p(-?\d+)\) "
                         r"acting \(\[(.*?)\], p(-?\d+)\)")
        rows = [m.groups() for m in map(pat.match, out.splitlines()) if m]
        self.assertEqual(len(rows), 32 + 24)
        return rows

    def test_raw_placement_with_out_and_reweighted(self):
        for pg, raw, _, up, up_primary, acting, acting_primary in self.dump():
            got, _ = self.map.pg_to_raw_osds(PgId.parse(pg))
            self.assertEqual(got, _ids(raw), pg)
            self.assertNotIn(3, got)
            self.assertEqual(tuple(self.map.pg_to_up_acting(PgId.parse(pg))),
                             (_ids(up), int(up_primary), _ids(acting), int(acting_primary)), pg)

    def test_up_acting_all_up(self):
        m = OSDMap.decode(open(self.path, "rb").read())
        for i in range(m.max_osd):
            m.osd_state[i] |= OSD_EXISTS | OSD_UP
            m.osd_weight[i] = 0x10000
        for pg, _, _, up, up_primary, acting, acting_primary in self.dump("--mark-up-in"):
            self.assertEqual(tuple(m.pg_to_up_acting(PgId.parse(pg))),
                             (_ids(up), int(up_primary), _ids(acting), int(acting_primary)), pg)

    def test_known_answers_from_osdmaptool(self):
        self.assertGreater(check_osdmap_dump(self, self.map, osdmaptool_dump(MSR_RELEASE, self.path)), 80)

    def test_objects_like_ceph_osd_map(self):
        answers = ceph_osd_map_many(self.mon, [(p, object_names(p, 1500)) for p in ("msrec", "msrrep")])
        self.assertEqual(check_osd_map_answers(self, self.map, answers), 3000)


def _stamp(text):
    # osdmaptool's "2026-11-30T12:03:54.989884+0000" -> (seconds, microseconds)
    t = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z")
    return int(t.timestamp()), t.microsecond


def osdmaptool_dump(release, path):
    """``osdmaptool PATH --dump json`` of *release* (the data ``--print`` shows, as JSON)."""
    return json.loads(_tool(*cephlab.release_argv(release), "osdmaptool", path, "--dump", "json"))


def check_osdmap_dump(test, m, d):
    """
    Assert, field by field, that our decoded OSDMap *m* says what Ceph's
    dump *d* of the same map says: epoch, fsid, stamps, flags, versions,
    every pool's placement fields, every OSD's state, weight, primary
    affinity and public addresses, upmaps, temps and erasure-code
    profiles.  Returns the number of fields compared.
    """
    n = [0]

    def eq(got, want, what):
        test.assertEqual(got, want, what)
        n[0] += 1

    eq(m.epoch, d["epoch"], "epoch")
    eq(str(m.fsid), d["fsid"], "fsid")
    eq((m.created.sec, m.created.nsec // 1000), _stamp(d["created"]), "created")
    eq((m.modified.sec, m.modified.nsec // 1000), _stamp(d["modified"]), "modified")
    eq(m.flags, d["flags_num"], "flags")
    eq(m.crush_version, d["crush_version"], "crush_version")
    eq(m.pool_max, d["pool_max"], "pool_max")
    eq(m.max_osd, d["max_osd"], "max_osd")
    eq(sorted(m.pools), sorted(p["pool"] for p in d["pools"]), "pool ids")
    for p in d["pools"]:
        ours = m.pools[p["pool"]]
        for field, value in (("name", p["pool_name"]), ("type", p["type"]), ("size", p["size"]),
                             ("min_size", p["min_size"]), ("crush_rule", p["crush_rule"]),
                             ("object_hash", p["object_hash"]), ("pg_num", p["pg_num"]),
                             ("pgp_num", p["pg_placement_num"]), ("flags", p["flags"]),
                             ("last_change", int(p["last_change"])),
                             ("erasure_code_profile", p["erasure_code_profile"]),
                             ("stripe_width", p["stripe_width"]),
                             ("last_force_op_resend", int(p["last_force_op_resend"])),
                             ("application_metadata", p["application_metadata"])):
            eq(getattr(ours, field), value, "pool %d %s" % (ours.id, field))
    eq(len(d["osds"]), sum(1 for i in range(m.max_osd) if m.exists(i)), "OSDs that exist")
    for o in d["osds"]:
        i = o["osd"]
        eq((m.exists(i), m.is_up(i)), ("exists" in o["state"], bool(o["up"])), "osd.%d state" % i)
        eq(bool(m.osd_weight[i]), bool(o["in"]), "osd.%d in" % i)
        test.assertAlmostEqual(m.osd_weight[i] / 0x10000, o["weight"], places=5, msg="osd.%d weight" % i)
        affinity = m.primary_affinity[i] if m.primary_affinity else 0x10000
        test.assertAlmostEqual(affinity / 0x10000, o["primary_affinity"], places=5,
                               msg="osd.%d primary affinity" % i)
        eq([str(a) for a in m.osd_addrs[i].addrs],
           ["%s:%s/%d" % (a["type"], a["addr"], a["nonce"]) for a in o["public_addrs"]["addrvec"]],
           "osd.%d public addrs" % i)
        n[0] += 2
    eq({str(k): v for k, v in m.pg_upmap.items()}, {e["pgid"]: e["osds"] for e in d["pg_upmap"]}, "pg_upmap")
    eq({str(k): v for k, v in m.pg_upmap_items.items()},
       {e["pgid"]: [(x["from"], x["to"]) for x in e["mappings"]] for e in d["pg_upmap_items"]}, "pg_upmap_items")
    eq({str(k): v for k, v in m.pg_temp.items()}, {e["pgid"]: e["osds"] for e in d["pg_temp"]}, "pg_temp")
    eq({str(k): v for k, v in m.primary_temp.items()}, {e["pgid"]: e["osd"] for e in d["primary_temp"]},
       "primary_temp")
    eq(m.erasure_code_profiles, d["erasure_code_profiles"], "erasure_code_profiles")
    return n[0]
