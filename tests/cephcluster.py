"""
A multi-monitor Ceph cluster on loopback for trial tests, built on the
helpers of L{tests.cephlab} (same scratch-directory layout, same conf
settings for a lab without a manager).

Typical use::

    from tests import cephcluster

    class T(unittest.TestCase):
        def setUp(self):
            cephlab.ensure_ceph()
            self.cluster = cephcluster.CephCluster(auth="cephx")   # mons a, b, c
            self.cluster.start()
            self.addCleanup(self.cluster.stop)

``cluster.mon_host`` is the ``mon host`` list (``[v2:...],[v2:...],...``),
``cluster.addrs[id]`` each monitor's ``v2:127.0.0.1:PORT``.  ``kill9(id)``
SIGKILLs one monitor (its data stays, ``start_mon(id)`` brings it back);
``add_mon(id)`` runs ``ceph mon add`` and starts the new monitor with the
monmap and ``mon.`` key it gets from the cluster; ``wait_quorum(ids)``
waits until exactly those monitors are in quorum.  ``ceph(...)`` and
``ceph_json(...)`` run the ceph CLI with the cluster's conf and admin key.
Each monitor logs to ``DIR/log/mon.ID.log``.  Set ``MSGR2TX_KEEP_CEPH=1``
to keep the directory.
"""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid

from tests.cephlab import (
    HOST, CephLabError, _clean_env, _popen_daemon, _run, _stop_proc, _tail_logs, free_port, mon_conf_text, port_open,
)

__all__ = ["CephCluster"]


class CephCluster:
    """Monitors C{mon_ids} (default a, b, c) on C{v2:127.0.0.1:PORT} each; C{auth} "none" or "cephx"."""

    start_timeout = 60.0

    def __init__(self, auth="cephx", mon_ids=("a", "b", "c"), extra_conf=()):
        if auth not in ("none", "cephx"):
            raise ValueError("auth must be 'none' or 'cephx', not %r" % (auth,))
        self.auth = auth
        self.mon_ids = list(mon_ids)
        self.extra_conf = list(extra_conf)
        self.fsid = str(uuid.uuid4())
        self.ports = {}
        self.procs = {}
        self.dir = None
        self.conf = None
        self.keyring = None

    # -- addresses ---------------------------------------------------------

    @property
    def addrs(self):
        return {i: "v2:%s:%d" % (HOST, p) for i, p in self.ports.items()}

    @property
    def mon_host(self):
        """The initial monitors as a ``mon host`` value (Ceph's syntax)."""
        return ",".join("[%s]" % self.addrs[i] for i in self.mon_ids if i in self.ports)

    def running(self, mon_id):
        proc = self.procs.get(mon_id)
        return proc is not None and proc.poll() is None

    def __repr__(self):
        return "<CephCluster %s auth=%s dir=%s>" % (
            ", ".join("%s=%s%s" % (i, a, "" if self.running(i) else " (down)") for i, a in self.addrs.items()),
            self.auth, self.dir)

    # -- setup -------------------------------------------------------------

    def _conf_text(self):
        return mon_conf_text(self.dir, self.fsid, self.mon_host, self.mon_ids, self.auth, self.keyring,
                             self.extra_conf)

    def _create(self):
        for i in self.mon_ids:
            self.ports[i] = free_port()
        self.dir = tempfile.mkdtemp(prefix="msgr2tx-cluster-", dir="/tmp")
        for sub in ("run", "crash", "log"):
            os.mkdir(os.path.join(self.dir, sub))
        self.conf = os.path.join(self.dir, "ceph.conf")
        self.keyring = os.path.join(self.dir, "keyring")
        monmap = os.path.join(self.dir, "monmap")
        with open(self.conf, "w") as f:
            f.write(self._conf_text())
        _run(["ceph-authtool", "--create-keyring", self.keyring, "--gen-key",
              "-n", "mon.", "--cap", "mon", "allow *"])
        _run(["ceph-authtool", self.keyring, "--gen-key", "-n", "client.admin",
              "--cap", "mon", "allow *", "--cap", "osd", "allow *",
              "--cap", "mds", "allow *", "--cap", "mgr", "allow *"])
        os.chmod(self.keyring, 0o600)
        cmd = ["monmaptool", "--create", "--clobber", "--fsid", self.fsid]
        for i in self.mon_ids:
            cmd += ["--addv", i, "[%s]" % self.addrs[i]]
        _run(cmd + [monmap])
        for i in self.mon_ids:
            _run(["ceph-mon", "-c", self.conf, "--mkfs", "-i", i, "--monmap", monmap,
                  "--keyring", self.keyring])

    # -- lifecycle ---------------------------------------------------------

    def start(self):
        """Create the cluster, start every monitor, wait for a full quorum.  Returns self."""
        try:
            self._create()
            for i in self.mon_ids:
                self.start_mon(i, wait=False)
            self.wait_quorum(self.mon_ids, timeout=self.start_timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def start_mon(self, mon_id, wait=True):
        """Start (or restart) one monitor; with C{wait}, until it listens."""
        if self.running(mon_id):
            return
        self.procs[mon_id] = _popen_daemon(
            ["ceph-mon", "-f", "-c", self.conf, "-i", mon_id],
            os.path.join(self.dir, "log", "mon.%s.stdout" % mon_id))
        if wait:
            deadline = time.monotonic() + 30
            while not port_open(self.ports[mon_id]):
                if self.procs[mon_id].poll() is not None:
                    raise CephLabError("ceph-mon %s exited with %s\n%s" % (
                        mon_id, self.procs[mon_id].returncode, self.tail(mon_id)))
                if time.monotonic() > deadline:
                    raise CephLabError("ceph-mon %s did not listen in time\n%s" % (mon_id, self.tail(mon_id)))
                time.sleep(0.02)

    def kill9(self, mon_id):
        """SIGKILL one monitor and reap it; returns time.monotonic() of the kill."""
        proc = self.procs.pop(mon_id, None)
        t = time.monotonic()
        _stop_proc(proc, signal.SIGKILL)
        return t

    def stop(self):
        for i in list(self.procs):
            _stop_proc(self.procs.pop(i), signal.SIGKILL)
        d, self.dir = self.dir, None
        if d and not os.environ.get("MSGR2TX_KEEP_CEPH"):
            shutil.rmtree(d, ignore_errors=True)

    def tail(self, mon_id, n=30):
        return _tail_logs(self.dir, ("mon.%s.stdout" % mon_id, "mon.%s.log" % mon_id), n)

    def add_mon(self, mon_id, start=True):
        """
        ``ceph mon add ID 127.0.0.1:PORT`` (a v2 address), then make the new monitor's
        data from the cluster's monmap and ``mon.`` key and start it.
        Returns its address.
        """
        port = free_port()
        self.ports[mon_id] = port
        addr = self.addrs[mon_id]
        # a plain ip:port that is not 6789 becomes a v2 address (the CLI
        # takes neither the v2: prefix nor brackets here)
        self.ceph_checked("mon", "add", mon_id, "%s:%d" % (HOST, port))
        monmap = os.path.join(self.dir, "monmap.%s" % mon_id)
        keyring = os.path.join(self.dir, "keyring.%s" % mon_id)
        self.ceph_checked("mon", "getmap", "-o", monmap)
        self.ceph_checked("auth", "get", "mon.", "-o", keyring)
        _run(["ceph-mon", "-c", self.conf, "--mkfs", "-i", mon_id, "--monmap", monmap, "--keyring", keyring])
        self.mon_ids.append(mon_id)
        if start:
            self.start_mon(mon_id)
        return addr

    def leader(self, timeout=10):
        """The quorum leader's name (``ceph quorum_status``)."""
        return self.ceph_json("quorum_status", timeout=timeout)["quorum_leader_name"]

    def quorum(self, timeout=10):
        """Names in quorum (``ceph quorum_status``), or None if it does not answer."""
        try:
            p = self.ceph("quorum_status", "--format", "json", timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        if p.returncode != 0:
            return None
        return sorted(json.loads(p.stdout)["quorum_names"])

    def wait_quorum(self, mon_ids, timeout=60.0):
        want = sorted(mon_ids)
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            for i in mon_ids:
                if i in self.procs and self.procs[i].poll() is not None:
                    raise CephLabError("ceph-mon %s exited\n%s" % (i, self.tail(i)))
            last = self.quorum(timeout=max(2, min(10, deadline - time.monotonic())))
            if last == want:
                return
            time.sleep(0.1)
        raise CephLabError("quorum %s, not %s, after %gs\n%s" % (
            last, want, timeout, "\n".join(self.tail(i) for i in mon_ids)))

    # -- CLI ---------------------------------------------------------------

    def ceph_argv(self, *args, timeout=30):
        return ["ceph", "-c", self.conf, "-n", "client.admin", "--keyring", self.keyring,
                "--connect-timeout", str(max(1, int(timeout))), *args]

    def ceph(self, *args, timeout=30):
        return subprocess.run(self.ceph_argv(*args, timeout=timeout), env=_clean_env(),
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=timeout + 5)

    def ceph_checked(self, *args, timeout=30):
        p = self.ceph(*args, timeout=timeout)
        if p.returncode != 0:
            raise CephLabError("ceph %s failed with exit code %d: %s" % (
                " ".join(args), p.returncode, p.stderr.decode("utf-8", "replace")))
        return p

    def ceph_json(self, *args, timeout=30):
        return json.loads(self.ceph_checked(*args, "--format", "json", timeout=timeout).stdout)

    def key(self, entity="client.admin"):
        return _run(["ceph-authtool", self.keyring, "-p", "-n", entity]).stdout.decode().strip()
