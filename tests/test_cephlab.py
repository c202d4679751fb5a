"""
Checks that the real-Ceph harness in tests/cephlab.py works: a monitor
starts on loopback and the ceph CLI can talk to it; a memstore OSD comes up
(cephx and none), rados put/get round-trips, and Debian's python3 with
python3-rados can use the cluster.
"""

import json
import os
import re
import subprocess
import sys
import time

from twisted.trial import unittest

from tests import cephlab


class _MonitorMixin:
    auth = None

    def setUp(self):
        cephlab.ensure_ceph()
        self.mon = cephlab.CephMonitor(auth=self.auth)
        t0 = time.monotonic()
        self.mon.start()
        elapsed = time.monotonic() - t0
        self.addCleanup(self.mon.stop)
        sys.stdout.write(
            "\n  [cephlab] mon auth=%s at %s started in %.2f s\n"
            % (self.auth, self.mon.addr, elapsed)
        )

    def assertCephOK(self, p):
        self.assertEqual(
            p.returncode,
            0,
            "%s -> %d\nstdout: %r\nstderr: %r" % (p.args, p.returncode, p.stdout, p.stderr),
        )

    def test_attributes(self):
        self.assertTrue(self.mon.running)
        self.assertEqual(self.mon.addr, "v2:127.0.0.1:%d" % self.mon.port)
        self.assertTrue(self.mon.dir.startswith("/tmp/msgr2tx-ceph-"))
        self.assertTrue(self.mon.conf.startswith(self.mon.dir))
        self.assertTrue(self.mon.keyring.startswith(self.mon.dir))
        self.assertTrue(cephlab.port_open(self.mon.port))

    def test_version(self):
        p = self.mon.ceph("version")
        self.assertCephOK(p)
        self.assertIn(b"ceph version", p.stdout)

    def test_mon_dump(self):
        p = self.mon.ceph("mon", "dump", "--format", "json")
        self.assertCephOK(p)
        dump = json.loads(p.stdout)
        self.assertEqual(dump["fsid"], self.mon.fsid)
        [mon] = dump["mons"]
        self.assertEqual(mon["name"], "a")
        addrs = mon["public_addrs"]["addrvec"]
        self.assertEqual(
            [(a["type"], a["addr"]) for a in addrs],
            [("v2", "127.0.0.1:%d" % self.mon.port)],
        )

    def test_restart(self):
        """kill9() then restart() gives a working monitor on the same port
        with the same cluster."""
        port, fsid = self.mon.port, self.mon.fsid
        self.mon.kill9()
        self.assertFalse(self.mon.running)
        t0 = time.monotonic()
        self.mon.restart()
        sys.stdout.write("  [cephlab] restart took %.2f s\n" % (time.monotonic() - t0))
        self.assertEqual(self.mon.port, port)
        dump = self.mon.ceph_json("mon", "dump")
        self.assertEqual(dump["fsid"], fsid)


class MonitorAuthNoneTests(_MonitorMixin, unittest.TestCase):
    auth = "none"


class MonitorCephxTests(_MonitorMixin, unittest.TestCase):
    auth = "cephx"

    def test_key(self):
        key = self.mon.key("client.admin")
        self.assertTrue(key)
        p = self.mon.ceph("auth", "get-key", "client.admin")
        self.assertCephOK(p)
        self.assertEqual(p.stdout.decode().strip(), key)


class SharedMonitorTests(unittest.TestCase):
    def test_shared(self):
        mon = cephlab.shared_monitor()
        self.assertIs(cephlab.shared_monitor(), mon)
        self.assertTrue(mon.running)
        self.assertEqual(mon.ceph_json("mon", "dump")["fsid"], mon.fsid)


# --------------------------------------------------------------------------
# OSDs, pools, rados


OSD_ADDR = re.compile(r"^v2:127\.0\.0\.1:(\d+)/(\d+)$")


class _OSDMixin:
    auth = None

    def setUp(self):
        cephlab.ensure_ceph()
        self.mon = cephlab.CephMonitor(auth=self.auth)
        self.addCleanup(self.mon.stop)
        self.mon.start()
        self.osd = self.mon.add_osd(memstore_bytes=64 * 1024 * 1024)
        sys.stdout.write(
            "\n  [cephlab] auth=%s osd.0 at %s up in %.2f s\n"
            % (self.auth, self.osd.addr, self.osd.start_time)
        )

    def assertOK(self, p):
        self.assertEqual(
            p.returncode,
            0,
            "%s -> %d\nstdout: %r\nstderr: %r" % (p.args, p.returncode, p.stdout, p.stderr),
        )

    def test_osd_up(self):
        """The osdmap shows osd.0 up at the v2-only address we report."""
        self.assertTrue(self.osd.running)
        self.assertIs(self.mon.osds[0], self.osd)
        m = OSD_ADDR.match(self.osd.addr)
        self.assertIsNotNone(m, self.osd.addr)
        self.assertEqual((self.osd.port, self.osd.nonce), (int(m.group(1)), int(m.group(2))))
        self.assertTrue(cephlab.port_open(self.osd.port))

        [entry] = self.mon.osd_dump()["osds"]
        self.assertEqual(entry["osd"], 0)
        self.assertEqual(entry["up"], 1)
        self.assertEqual(entry["in"], 1)
        self.assertEqual(entry["uuid"], self.osd.uuid)
        self.assertEqual(
            entry["public_addrs"]["addrvec"],
            [{"type": "v2", "addr": "127.0.0.1:%d" % self.osd.port, "nonce": self.osd.nonce}],
        )
        self.assertEqual(self.osd.addr, "v2:" + entry["public_addr"])
        for kind in ("cluster_addrs", "heartbeat_back_addrs", "heartbeat_front_addrs"):
            [a] = self.osd.addrs[kind]
            self.assertRegex(a, OSD_ADDR)

        p = self.mon.ceph("osd", "stat")
        self.assertOK(p)
        self.assertIn(b"1 osds: 1 up", p.stdout)
        self.assertIn(b"1 in", p.stdout)

    def test_rados_put_get(self):
        """``rados -c CONF -p POOL put/get`` round-trips an object."""
        pool = self.mon.create_pool("lab")
        data = os.urandom(300 * 1024)
        d = self.mktemp()
        os.mkdir(d)
        src, dst = os.path.join(d, "in"), os.path.join(d, "out")
        with open(src, "wb") as f:
            f.write(data)
        self.assertOK(self.mon.rados("-p", pool, "put", "obj1", src))
        self.assertOK(self.mon.rados("-p", pool, "get", "obj1", dst))
        with open(dst, "rb") as f:
            self.assertEqual(f.read(), data)
        # The same through stdin/stdout.
        self.mon.rados_put(pool, "obj2", b"hello osd")
        self.assertEqual(self.mon.rados_get(pool, "obj2"), b"hello osd")
        p = self.mon.rados("-p", pool, "ls")
        self.assertOK(p)
        self.assertEqual(sorted(p.stdout.split()), [b"obj1", b"obj2"])


class OSDCephxTests(_OSDMixin, unittest.TestCase):
    auth = "cephx"

    def test_osd_up(self):
        """As for auth none; also, the OSD's keyring holds the key the
        monitor has for osd.0, with the osd profile caps."""
        _OSDMixin.test_osd_up(self)
        key = self.osd.key()
        self.assertTrue(key)
        p = self.mon.ceph("auth", "get-key", "osd.0")
        self.assertOK(p)
        self.assertEqual(p.stdout.decode().strip(), key)
        caps = self.mon.ceph_json("auth", "get", "osd.0")[0]["caps"]
        self.assertEqual(caps["mon"], "allow profile osd")
        self.assertEqual(caps["osd"], "allow *")

    def test_restart_keeps_objects(self):
        """stop()/start() (SIGTERM, fast shutdown off) keeps the memstore;
        the new incarnation has a new up_from and a fresh addr."""
        pool = self.mon.create_pool("keep")
        self.mon.rados_put(pool, "o", b"persist me")
        old_addr, old_up_from = self.osd.addr, self.osd.up_from
        self.osd.restart()
        sys.stdout.write(
            "  [cephlab] osd.0 restart %.2f s, %s -> %s\n"
            % (self.osd.start_time, old_addr, self.osd.addr)
        )
        self.assertGreater(self.osd.up_from, old_up_from)
        self.assertRegex(self.osd.addr, OSD_ADDR)
        [entry] = self.mon.osd_dump()["osds"]
        self.assertEqual(self.osd.addr, "v2:" + entry["public_addr"])
        self.assertEqual(self.mon.rados_get(pool, "o"), b"persist me")

    def test_librados_python(self):
        """Debian's python3 with python3-rados connects with the monitor's
        conf and keyring, runs a mon command and reads an object."""
        python = cephlab.librados_python()
        pool = self.mon.create_pool("py")
        self.mon.rados_put(pool, "from-cli", b"via rados CLI")
        script = r"""
import json, sys, rados
conf, keyring, pool = sys.argv[1:4]
r = rados.Rados(conffile=conf, name="client.admin",
                conf={"keyring": keyring, "client_mount_timeout": "10",
                      "rados_osd_op_timeout": "10"})
r.connect(timeout=10)
ret, out, err = r.mon_command(json.dumps({"prefix": "version", "format": "json"}), b"")
ioctx = r.open_ioctx(pool)
ioctx.write_full("from-py", b"via librados")
got = ioctx.read("from-cli")
ioctx.close()
r.shutdown()
print(json.dumps({"ret": ret, "out": out.decode(), "got": got.decode()}))
"""
        p = subprocess.run(
            [python, "-c", script, self.mon.conf, self.mon.keyring, pool],
            env=cephlab._clean_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            timeout=40,
        )
        self.assertOK(p)
        res = json.loads(p.stdout.decode().strip().splitlines()[-1])
        self.assertEqual(res["ret"], 0)
        self.assertIn("ceph version 16.", json.loads(res["out"])["version"])
        self.assertEqual(res["got"], "via rados CLI")
        self.assertEqual(self.mon.rados_get(pool, "from-py"), b"via librados")


class OSDAuthNoneTests(_OSDMixin, unittest.TestCase):
    auth = "none"


class LibradosPythonTests(unittest.TestCase):
    def test_path(self):
        cephlab.ensure_ceph()
        python = cephlab.librados_python()
        self.assertEqual(python, "/usr/bin/python3")
        p = subprocess.run(
            [python, "-c", "import rados; print(rados.__file__)"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            timeout=30,
        )
        self.assertEqual(p.returncode, 0, p.stderr)


# --------------------------------------------------------------------------
# Newer releases in their chroots


LIBRADOS_VERSION_SCRIPT = r"""
import json, sys, rados
conf, keyring, pool = sys.argv[1:4]
r = rados.Rados(conffile=conf, name="client.admin",
                conf={"keyring": keyring, "client_mount_timeout": "10", "rados_osd_op_timeout": "10"})
r.connect(timeout=10)
ret, out, err = r.mon_command(json.dumps({"prefix": "version", "format": "json"}), b"")
ioctx = r.open_ioctx(pool)
ioctx.write_full("from-py", b"via librados")
ioctx.close()
r.shutdown()
print(json.dumps({"ret": ret, "version": json.loads(out)["version"]}))
"""


class ReleaseTests(unittest.TestCase):
    """A monitor, a memstore OSD, the CLIs and librados of one release
    (its chroot built on first use and cached); parametrized below."""

    release = cephlab.DEFAULT_RELEASE
    timeout = 600  # a first build of a chroot takes one to two minutes

    def setUp(self):
        cephlab.ensure_release(self.release)
        self.mon = cephlab.CephMonitor(auth="cephx", release=self.release)
        self.addCleanup(self.mon.stop)
        self.mon.start()

    def test_versions_and_data(self):
        version = cephlab.release_info(self.release).version
        p = self.mon.ceph("version")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(("ceph version %s." % version).encode(), p.stdout)
        self.assertIn(self.release.encode(), p.stdout)
        # the daemons are this release's, started from its chroot
        self.assertEqual(bool(self.mon.argv_prefix), cephlab.release_info(self.release).in_chroot)
        versions = self.mon.ceph_json("versions")
        self.assertEqual(list(versions["mon"]), [p.stdout.decode().strip()])
        osd = self.mon.add_osd(memstore_bytes=64 * 1024 * 1024)
        self.assertRegex(osd.addr, OSD_ADDR)
        self.assertEqual(list(self.mon.ceph_json("versions")["osd"]), [p.stdout.decode().strip()])
        pool = self.mon.create_pool("rel")
        self.mon.rados_put(pool, "o", b"release data")
        self.assertEqual(self.mon.rados_get(pool, "o"), b"release data")
        got = subprocess.run(
            self.mon.librados_argv() + ["-c", LIBRADOS_VERSION_SCRIPT, self.mon.conf, self.mon.keyring, pool],
            env=cephlab._clean_env(), stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
        self.assertEqual(got.returncode, 0, got.stderr[-3000:])
        res = json.loads(got.stdout.decode().strip().splitlines()[-1])
        self.assertEqual(res["ret"], 0)
        self.assertTrue(res["version"].startswith("ceph version %s." % version), res)
        self.assertEqual(self.mon.rados_get(pool, "from-py"), b"via librados")

    def test_scratch_dir_shared_with_the_chroot(self):
        """The scratch dir has one path for host and chroot tools."""
        self.assertTrue(self.mon.dir.startswith("/tmp/msgr2tx-ceph-"))
        root = cephlab.chroot_ready(self.release) if cephlab.release_info(self.release).in_chroot else None
        if root:
            self.assertTrue(os.path.islink(self.mon.dir))
            self.assertEqual(os.path.realpath(self.mon.dir), os.path.join(root, self.mon.dir.lstrip("/")))
        p = subprocess.run(self.mon.argv_prefix + ["cat", self.mon.conf], capture_output=True, timeout=10)
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(self.mon.conf, "rb") as f:
            self.assertEqual(p.stdout, f.read())
        d = self.mon.dir
        self.mon.stop()
        self.assertFalse(os.path.lexists(d))
        if root:
            self.assertFalse(os.path.exists(os.path.join(root, d.lstrip("/"))))


cephlab.release_variants(globals(), ReleaseTests)


class TentacleKeyTypeTests(unittest.TestCase):
    """key_type: the cephx keys and the monmap's cipher policy of a Tentacle lab."""

    timeout = 600

    def _mon(self, key_type):
        cephlab.ensure_release("tentacle")
        mon = cephlab.CephMonitor(auth="cephx", release="tentacle", key_type=key_type)
        self.addCleanup(mon.stop)
        return mon.start()

    def _type(self, key):
        import base64
        return int.from_bytes(base64.b64decode(key)[:2], "little")

    def _check(self, key_type, number):
        mon = self._mon(key_type)
        self.assertEqual(self._type(mon.key()), number)
        made = mon.ceph_checked("auth", "get-or-create", "client.other", "mon", "allow r").stdout.decode()
        self.assertEqual(self._type(made.split("key = ")[1].split()[0]), number)
        dump = mon.ceph_json("mon", "dump")
        self.assertEqual(dump["auth_service_cipher"]["name"], key_type)
        self.assertEqual(dump["auth_preferred_cipher"]["name"], key_type)
        self.assertEqual(sorted(c["name"] for c in dump["auth_allowed_ciphers"]), ["aes", "aes256k"])

    def test_aes(self):
        self._check("aes", 1)

    def test_aes256k(self):
        self._check("aes256k", 2)

    def test_older_releases_have_only_aes(self):
        for release in ("pacific", "reef"):
            self.assertRaises(ValueError, cephlab.CephMonitor, release=release, key_type="aes256k")
        self.assertRaises(ValueError, cephlab.CephMonitor, release="quincy")


class ChrootCacheTests(unittest.TestCase):
    """The cache's rules, without building anything."""

    def setUp(self):
        import tempfile
        self.cache = tempfile.mkdtemp(prefix="msgr2tx-cache-")
        self.addCleanup(__import__("shutil").rmtree, self.cache, True)
        old = os.environ.get("MSGR2TX_CHROOT_CACHE")
        os.environ["MSGR2TX_CHROOT_CACHE"] = self.cache
        self.addCleanup(lambda: os.environ.pop("MSGR2TX_CHROOT_CACHE") if old is None
                        else os.environ.__setitem__("MSGR2TX_CHROOT_CACHE", old))

    def test_unfinished_chroot_is_not_ready(self):
        path = cephlab.chroot_path("reef")
        self.assertEqual(path, os.path.join(self.cache, "reef-trixie"))
        os.makedirs(os.path.join(path, "usr/bin"))
        self.assertIsNone(cephlab.chroot_ready("reef"))
        # finished, but built before the package list grew: not ready, those are missing
        with open(os.path.join(path, ".msgr2tx-ready"), "w") as f:
            f.write("ceph version 18.2.7\npackages: ceph-mon ceph-osd\n")
        self.assertIsNone(cephlab.chroot_ready("reef"))
        self.assertEqual(cephlab._missing_packages(path),
                         [p for p in cephlab.CHROOT_PACKAGES if p not in ("ceph-mon", "ceph-osd")])
        with open(os.path.join(path, ".msgr2tx-ready"), "w") as f:
            f.write("ceph version 18.2.7\npackages: %s\n" % " ".join(cephlab.CHROOT_PACKAGES))
        self.assertEqual(cephlab.chroot_ready("reef"), path)
        self.assertEqual(cephlab._missing_packages(path), [])
        self.assertIsNone(cephlab.chroot_ready("tentacle"))

    def test_lock_excludes_a_second_builder(self):
        lock = os.path.join(self.cache, ".reef.lock")
        with cephlab._file_lock(lock, timeout=1):
            with self.assertRaises(cephlab.CephLabError):
                with cephlab._file_lock(lock, timeout=0.6):
                    pass
        with cephlab._file_lock(lock, timeout=1):
            pass

    def test_not_root_skips_or_fails_in_ci(self):
        """Without root a chroot release is skipped with what to run; with CI set, it fails."""
        from unittest import SkipTest

        self.patch(cephlab, "_is_root", lambda: False)
        for ci, error in (("", SkipTest), ("true", RuntimeError)):
            self.patch(os, "environ", dict(os.environ, CI=ci))
            for release in ("reef", "tentacle"):
                with self.assertRaises(error) as caught:
                    cephlab.ensure_release(release)
                self.assertIn("only root can", str(caught.exception))
                self.assertIn(release, str(caught.exception))
        with self.assertRaises(RuntimeError):
            cephlab.CephMonitor(release="reef").start()

    def test_build_command_as_non_root(self):
        """``python3 -m tests.cephlab build`` as non-root: a note and exit 0, or exit 1 with CI set."""
        import contextlib
        import io

        self.patch(cephlab, "_is_root", lambda: False)
        for ci, code in (("", 0), ("true", 1)):
            self.patch(os, "environ", dict(os.environ, CI=ci))
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                self.assertEqual(cephlab.main(["build"]), code)
            self.assertIn("only root can build them", out.getvalue())
            self.assertIn("sudo python3 -m tests.cephlab build reef tentacle", out.getvalue())
        with contextlib.redirect_stderr(io.StringIO()):
            self.assertRaises(SystemExit, cephlab.main, ["build", "pacific"])

    def test_debootstrap_installed_once_by_parallel_builds(self):
        """Two builds starting at once on a bare machine: one apt-get, not two racing for dpkg's lock."""
        import threading

        installed = []
        calls = []

        def step(log, cmd, env=None, timeout=900, check=True):
            calls.append(cmd)
            time.sleep(0.2)
            if "install" in cmd:
                installed.append(True)

        self.patch(cephlab, "_build_step", step)
        self.patch(cephlab.shutil, "which", lambda name: "/usr/sbin/debootstrap" if installed else None)
        threads = [threading.Thread(target=cephlab._ensure_debootstrap, args=([],)) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual([c[0] for c in calls], ["apt-get", "apt-get"])
        self.assertEqual(calls[1][-1], "debootstrap")

    def test_mirror_is_a_debian_archive(self):
        mirror = cephlab.debian_mirror()
        self.assertRegex(mirror, r"^https?://.*/debian$")
