"""
Checks that the real-Ceph harness in tests/cephlab.py works: a monitor
starts on loopback and the ceph CLI can talk to it.
"""

import json
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
