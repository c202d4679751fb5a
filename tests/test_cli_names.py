"""
C{msgr2tx ping} finds a daemon by name through the maps, against a real
Ceph 16.2 monitor and memstore OSD: C{osd.N} in the osdmap (its public
msgr2 address, nonce included), C{mon.X} in the monmap; an OSD address
without its nonce is refused by the OSD, and the error shows the address
from the osdmap.
"""

import os
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

from tests import cephlab

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(*argv):
    env = dict(os.environ, CEPH_CONF="/nonexistent", CEPH_ARGS="",
               PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    return subprocess.run([sys.executable, "-m", "msgr2tx", *argv], capture_output=True, text=True, timeout=120,
                          env=env)


class _Names:
    auth = "none"

    def setUp(self):
        self.mon = cephlab.shared_monitor(self.auth, osds=1)
        self.osd = self.mon.osds[0]

    def test_osd_by_name(self):
        p = run("ping", "osd.0", "-c", self.mon.conf, "--count", "1")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(p.stdout.startswith("connected to %s (osd.0) " % self.osd.addr), p.stdout)

    def test_monitor_by_name(self):
        p = run("ping", "mon.a", "-c", self.mon.conf, "--count", "1")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(p.stdout.startswith("connected to %s/0 (mon.0) " % self.mon.addr), p.stdout)

    def test_no_such_osd(self):
        epoch = self.mon.osd_dump()["epoch"]
        p = run("ping", "osd.7", "-c", self.mon.conf)
        self.assertEqual((p.returncode, p.stdout), (1, ""))
        self.assertEqual(p.stderr, "msgr2tx: error: there is no osd.7 in osdmap e%d (max_osd 1)\n" % epoch)

    def test_no_such_monitor(self):
        p = run("ping", "mon.q", "-c", self.mon.conf)
        self.assertEqual((p.returncode, p.stdout), (1, ""))
        self.assertRegex(p.stderr, r"^msgr2tx: error: there is no mon\.q with a msgr2 address in monmap e\d+ "
                                   r"\(monitors: a\)\n$")


class NamesNoneTests(_Names, SynchronousTestCase):
    auth = "none"

    def test_address_without_nonce_shows_the_map_address(self):
        bare = self.osd.addr.rpartition("/")[0]
        epoch = self.mon.osd_dump()["epoch"]
        p = run("ping", bare, "-c", self.mon.conf, "--auth", "none")
        self.assertEqual((p.returncode, p.stdout), (1, ""))
        self.assertEqual(p.stderr, "msgr2tx: error: the peer at %s closed the connection during session setup: it "
                                   "is osd.0, whose address in osdmap e%d is %s, nonce included: give that address, "
                                   "or the name osd.0\n" % (bare, epoch, self.osd.addr))


class NamesCephxTests(_Names, SynchronousTestCase):
    auth = "cephx"

    def test_osd_without_a_ticket(self):
        p = run("ping", self.osd.addr, "-c", self.mon.conf)
        self.assertEqual((p.returncode, p.stdout), (1, ""))
        self.assertEqual(p.stderr, "msgr2tx: error: the peer at %s refused us: cephx: no valid osd ticket (a daemon "
                                   "other than a monitor wants a service ticket: give the monitors with -m, or the "
                                   "daemon's name, e.g. osd.0, with -c ceph.conf)\n" % self.osd.addr)
