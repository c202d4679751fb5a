"""
ceph.conf, CEPH_ARGS, keyring search and mon_host as Ceph 16.2 reads them.
Where the ceph-conf and monmaptool tools are installed, each case is also
put to them, so the expectations are Ceph's and not ours.
"""

import os
import shutil
import subprocess
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from msgr2tx import cephconf
from msgr2tx.cephconf import CephConf, MonHost, parse_mon_host
from msgr2tx.errors import ConfError


def ceph_conf_value(text, option, name="client.bob"):
    """What Ceph's own ceph-conf makes of a conf text (None without Ceph)."""
    if shutil.which("ceph-conf") is None:
        return None
    d = tempfile.mkdtemp(prefix="msgr2tx-cephconf-")
    try:
        path = os.path.join(d, "ceph.conf")
        with open(path, "w") as f:
            f.write(text)
        p = subprocess.run(["ceph-conf", "-c", path, "-n", name, "--show-config-value", option],
                           capture_output=True, text=True, timeout=30, cwd=d)
        return p.stdout.rstrip("\n") if p.returncode == 0 else ConfError
    finally:
        shutil.rmtree(d, True)


#: (conf text, option, value for client.bob); ConfError: the file is rejected
SYNTAX_CASES = [
    ("ms_mon_client_mode = crc\n", "ms_mon_client_mode", "crc"),
    ("ms_mon_client_mode = crc\n[global]\nfsid = x\n", "ms_mon_client_mode", ConfError),
    ("  \n; c\nms_mon_client_mode = crc\n[client]\n", "ms_mon_client_mode", ConfError),
    ("[global]\nms mon client mode = crc\n", "ms_mon_client_mode", "crc"),
    ("[global]\nms  mon\tclient mode = crc\n", "ms_mon_client_mode", "crc"),
    ("[global]\n    ms_mon_client_mode=crc   ; comment\n", "ms_mon_client_mode", "crc"),
    ("[global]\nms_mon_client_mode = crc # comment\n", "ms_mon_client_mode", "crc"),
    ("; c\n# c\n[global] ; c\nms_mon_client_mode = \"crc\"\n", "ms_mon_client_mode", "crc"),
    ("[global]\nms_mon_client_mode = 'crc'\n", "ms_mon_client_mode", "crc"),
    ("[global]\nms_mon_client_mode = secure \\\n crc\n", "ms_mon_client_mode", "secure  crc"),
    ("ms_mon_client_mode = crc\n", "ms_mon_client_mode", "crc"),
    ("[global]\nms_mon_client_mode = crc\nms_mon_client_mode = secure\n", "ms_mon_client_mode", "secure"),
    ("[global]\nms_mon_client_mode = crc\n[global]\nms_mon_client_mode = secure\n", "ms_mon_client_mode", "secure"),
    ("[client]\nms_mon_client_mode = crc\n[global]\nms_mon_client_mode = secure\n", "ms_mon_client_mode", "crc"),
    ("[client.bob]\nms_mon_client_mode = crc\n[client]\nms_mon_client_mode = secure\n", "ms_mon_client_mode",
     "crc"),
    ("[client.eve]\nms_mon_client_mode = crc\n", "ms_mon_client_mode", None),
    ("[global]\nms-mon-client-mode = crc\n", "ms_mon_client_mode", None),
    ("[global]\nms__mon_client_mode = crc\n", "ms_mon_client_mode", None),
    ("[global]\nMS_MON_CLIENT_MODE = crc\n", "ms_mon_client_mode", None),
    ("[Global]\nms_mon_client_mode = crc\n", "ms_mon_client_mode", None),
    ("[global]\nms_mon_client_mode = \n", "ms_mon_client_mode", ""),
    ("[global]\nmon host = a\n[client.bob]\nmon_host = b\n", "mon_host", "b"),
    ("[global]\nms_mon_client_mode\n", "ms_mon_client_mode", ConfError),
    ("[global]\nms_mon_client_mode = \"a ; b\"\n", "ms_mon_client_mode", ConfError),
    ("[global]\nkeyring = /k/$cluster/$name/$type/$id/${name}x/$nosuch\n", "keyring",
     "/k/ceph/client.bob/client/bob/client.bobx/$nosuch"),
]

CEPH_DEFAULTS = {"ms_mon_client_mode": "secure crc", "mon_host": "",
                 "keyring": cephconf.DEFAULT_KEYRING.replace("$cluster", "ceph").replace("$name", "client.bob")
                 + ","}


class ConfSyntaxTests(SynchronousTestCase):
    def ours(self, text, option):
        try:
            conf = CephConf.parse(text)
        except ConfError:
            return ConfError
        raw = conf.lookup(option, "client.bob")
        return None if raw is None else cephconf.expand(raw, "ceph", "client.bob")

    def test_cases(self):
        for text, option, expected in SYNTAX_CASES:
            self.assertEqual(self.ours(text, option), expected, text)

    def test_cases_match_ceph_conf(self):
        if shutil.which("ceph-conf") is None:
            from tests import cephlab
            cephlab._unavailable("ceph-conf is missing")
        for text, option, expected in SYNTAX_CASES:
            theirs = ceph_conf_value(text, option)
            want = CEPH_DEFAULTS[option] if expected is None else expected
            self.assertEqual(theirs, want, text)

    def test_error_names_file_and_line(self):
        e = self.assertRaises(ConfError, CephConf.parse, "[global]\nfsid = x\nmon host\n", "/etc/ceph/ceph.conf")
        self.assertEqual(str(e), "/etc/ceph/ceph.conf line 3: expected 'key = value' or [section]")


class MonHostTests(SynchronousTestCase):
    """Each case as monmaptool --generate builds a monmap from it (Ceph 16.2.15)."""

    CASES = [
        ("1.2.3.4", ["[v2:1.2.3.4:3300/0,v1:1.2.3.4:6789/0]"]),
        ("1.2.3.4:6789", ["v1:1.2.3.4:6789/0"]),
        ("1.2.3.4:3300", ["v2:1.2.3.4:3300/0"]),
        ("1.2.3.4:4000", ["v2:1.2.3.4:4000/0"]),
        ("1.2.3.4 5.6.7.8:1234", ["[v2:1.2.3.4:3300/0,v1:1.2.3.4:6789/0]", "v2:5.6.7.8:1234/0"]),
        ("[v2:1.2.3.4:3300,v1:1.2.3.4:6789],[v2:1.2.3.5:3300]",
         ["[v2:1.2.3.4:3300/0,v1:1.2.3.4:6789/0]", "v2:1.2.3.5:3300/0"]),
        ("[v2:1.2.3.4:3300/0,v1:1.2.3.4:6789/0], 1.2.3.6",
         ["[v2:1.2.3.4:3300/0,v1:1.2.3.4:6789/0]", "[v2:1.2.3.6:3300/0,v1:1.2.3.6:6789/0]"]),
        ("[::1]:3300", ["v2:[::1]:3300/0"]),
        ("[::1]", ["[v2:[::1]:3300/0,v1:[::1]:6789/0]"]),
        ("v2:1.2.3.4", ["v2:1.2.3.4:3300/0"]),
        ("localhost:4000", ["v2:localhost:4000/0"]),
        ("mon1.example.com", ["[v2:mon1.example.com:3300/0,v1:mon1.example.com:6789/0]"]),
    ]

    def test_cases(self):
        for text, expected in self.CASES:
            self.assertEqual([str(h) for h in parse_mon_host(text)], expected, text)

    def test_names_are_marked(self):
        hosts = parse_mon_host("localhost:4000, 10.0.0.1")
        self.assertEqual([h.is_name for h in hosts], [True, False])
        self.assertEqual(hosts[0], MonHost("localhost", (("v2", 4000),)))

    def test_nonce_kept(self):
        self.assertEqual([str(h) for h in parse_mon_host("v2:10.0.0.1:6800/1234")], ["v2:10.0.0.1:6800/1234"])
        self.assertEqual(cephconf.mon_targets(parse_mon_host("[v2:10.0.0.1:6800/7,v1:10.0.0.1:6801/7]")),
                         ["v2:10.0.0.1:6800/7"])

    def test_v2_targets(self):
        self.assertEqual(cephconf.mon_targets(parse_mon_host("1.2.3.4, 1.2.3.5:6789, [::1]:3301")),
                         ["v2:1.2.3.4:3300/0", "v2:[::1]:3301/0"])

    def test_bad(self):
        for text in ("", " , ", "[v2:1.2.3.4:3300", "1.2.3.4:x", "1.2.3.4:70000", "[1.2.3.4:3300]",
                     "bad!host:3300", "[v2:1.2.3.4:3300, v1:1.2.3.4:6789]", "[v2:1.2.3.4:3300,v1:1.2.3.5:6789]"):
            self.assertRaises(ConfError, parse_mon_host, text)

    def test_matches_monmaptool(self):
        if shutil.which("monmaptool") is None:
            from tests import cephlab
            cephlab._unavailable("monmaptool is missing")
        d = tempfile.mkdtemp(prefix="msgr2tx-monmap-")
        self.addCleanup(shutil.rmtree, d, True)
        for text, expected in self.CASES:
            if any(h.is_name for h in parse_mon_host(text)) and "localhost" not in text:
                continue  # no DNS here
            conf = os.path.join(d, "g.conf")
            with open(conf, "w") as f:
                f.write("[global]\nfsid = 11111111-1111-1111-1111-111111111111\nmon host = %s\n" % text)
            path = os.path.join(d, "m")
            p = subprocess.run(["monmaptool", "--create", "--clobber", "--generate", "-c", conf, path],
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(p.returncode, 0, p.stderr)
            out = subprocess.run(["monmaptool", "--print", path], capture_output=True, text=True,
                                 timeout=30).stdout
            theirs = [line.split(" ")[1] for line in out.splitlines() if line[:1].isdigit() and ": " in line]
            ours = [str(h).replace("localhost", "127.0.0.1") for h in parse_mon_host(text)]
            self.assertEqual(theirs, ours, text)


class SearchTests(SynchronousTestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="msgr2tx-cephconf-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_default_search_list(self):
        env = {"HOME": "/home/u"}
        self.assertEqual(cephconf.conf_search_list("ceph", "client.admin", env)[1:],
                         ["/etc/ceph/ceph.conf", os.path.expanduser("~") + "/.ceph/ceph.conf", "ceph.conf"])
        self.assertEqual(cephconf.conf_search_list("ceph", "client.admin", env)[0],
                         "/var/lib/ceph/client/ceph-admin/config")
        self.assertEqual(cephconf.conf_search_list("ceph", "client.admin", {"CEPH_CONF": "/x.conf"}),
                         ["/x.conf"])

    def test_explicit_conf_must_exist(self):
        e = self.assertRaises(ConfError, cephconf.find_conf, "/nonexistent.conf", "ceph", "client.admin", {})
        self.assertEqual(str(e), "cannot read the conf file /nonexistent.conf")
        self.assertRaises(ConfError, cephconf.find_conf, None, "ceph", "client.admin",
                          {"CEPH_CONF": "/nonexistent.conf"})
        good = self.write("foo.conf", "[global]\n")
        self.assertEqual(cephconf.find_conf("/nonexistent.conf," + good, "ceph", "client.admin", {}), good)

    def test_cluster_from_conf_name_and_keyring_expansion(self):
        ring = self.write("foo.client.bob.keyring", "")
        conf = self.write("foo.conf", "[global]\nmon host = 10.0.0.1\n[client]\nkeyring = %s/$cluster.$name.keyring\n"
                          % self.dir)
        c = cephconf.resolve(conf, name="client.bob", env={})
        self.assertEqual((c.cluster, c.conf_path), ("foo", conf))
        self.assertEqual(c.keyring_path(), (ring, [ring]))
        self.assertEqual([str(h) for h in c.mon_hosts()], ["[v2:10.0.0.1:3300/0,v1:10.0.0.1:6789/0]"])
        # the command line wins over the file; --cluster over the file's name
        c = cephconf.resolve(conf, cluster="bar", name="client.bob", overrides={"mon_host": "10.0.0.9:3300"},
                             env={})
        self.assertEqual(c.cluster, "bar")
        self.assertEqual(c.get("mon_host"), "10.0.0.9:3300")
        self.assertEqual(c.keyring_path()[0], None)

    def test_defaults_when_nothing_found(self):
        c = cephconf.resolve(None, name="client.admin", env={"CEPH_CONF": ""}, options=())
        self.assertEqual(c.auth_methods(), ["cephx", "none"])
        self.assertEqual(c.modes(peer_is_mon=True), ["secure", "crc"])
        self.assertEqual(c.modes(peer_is_mon=False), ["crc", "secure"])
        self.assertEqual(c.keyring_path()[1], ["/etc/ceph/ceph.client.admin.keyring", "/etc/ceph/ceph.keyring",
                                               "/etc/ceph/keyring", "/etc/ceph/keyring.bin"])
        e = self.assertRaises(ConfError, c.mon_hosts)
        self.assertIn("give -m/--mon-host", str(e))

    def test_ceph_args(self):
        self.assertEqual(cephconf.ceph_args({"CEPH_ARGS": "--id bob -m '10.0.0.1, 10.0.0.2'"}),
                         ["--id", "bob", "-m", "10.0.0.1, 10.0.0.2"])
        self.assertRaises(ConfError, cephconf.ceph_args, {"CEPH_ARGS": "'open"})
