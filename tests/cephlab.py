"""
Real Ceph monitors on loopback, for trial tests.

The harness is plain ``subprocess``; it needs no reactor.  Typical use::

    from tests import cephlab

    class T(unittest.TestCase):
        def setUp(self):
            cephlab.ensure_ceph()
            self.mon = cephlab.CephMonitor(auth="cephx")
            self.mon.start()
            self.addCleanup(self.mon.stop)

or ``cephlab.shared_monitor()`` for one monitor per test process.

Everything a monitor writes (conf, keyring, monmap, mon data, sockets, logs,
pid file, crash dir) lives in one scratch directory under /tmp, which
``stop()`` removes.  Set ``MSGR2TX_KEEP_CEPH=1`` to keep it for inspection.
"""

import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid

from twisted.trial.unittest import SkipTest

__all__ = [
    "CEPH_TOOLS",
    "CephLabError",
    "CephMonitor",
    "ensure_ceph",
    "missing_tools",
    "shared_monitor",
]

#: The executables the harness needs.
CEPH_TOOLS = ("ceph-mon", "ceph", "monmaptool", "ceph-authtool")
#: The Debian packages that provide them (ceph-mon pulls in ceph-base,
#: which has monmaptool).
CEPH_PACKAGES = ("ceph-mon", "ceph-common")

HOST = "127.0.0.1"


class CephLabError(RuntimeError):
    """A Ceph command or daemon of the harness failed."""


# --------------------------------------------------------------------------
# Availability


def missing_tools():
    """Return the names from CEPH_TOOLS that are not on PATH."""
    return [t for t in CEPH_TOOLS if shutil.which(t) is None]


def _in_ci():
    value = os.environ.get("CI", "").strip().lower()
    return value not in ("", "0", "false", "no")


def _is_root():
    return hasattr(os, "geteuid") and os.geteuid() == 0


_install_lock = threading.Lock()
_install_attempted = False
_install_log = ""


def _apt_install():
    """Install CEPH_PACKAGES with apt-get, once per process.  Returns a
    short log of what happened (for error messages)."""
    global _install_attempted, _install_log
    with _install_lock:
        if _install_attempted:
            return _install_log
        _install_attempted = True
        if shutil.which("apt-get") is None:
            _install_log = "apt-get is not available"
            return _install_log
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        log = []
        for cmd in (
            ["apt-get", "update"],
            ["apt-get", "install", "-y", *CEPH_PACKAGES],
        ):
            sys.stderr.write("cephlab: running %s\n" % " ".join(cmd))
            try:
                p = subprocess.run(
                    cmd,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    timeout=900,
                )
            except (OSError, subprocess.TimeoutExpired) as e:
                log.append("%s: %s" % (" ".join(cmd), e))
                break
            out = p.stdout.decode("utf-8", "replace").strip().splitlines()
            log.append(
                "%s -> exit %d\n%s" % (" ".join(cmd), p.returncode, "\n".join(out[-15:]))
            )
            if p.returncode != 0:
                break
        _install_log = "\n".join(log)
        return _install_log


def ensure_ceph():
    """Make sure the Ceph tools are available.

    Returns None if they are.  If they are missing and we are root, they
    are installed with apt-get first.  If they are still missing, a
    RuntimeError is raised when running in CI (the CI variable is set), and
    ``SkipTest`` otherwise.
    """
    missing = missing_tools()
    if not missing:
        return None
    detail = ""
    if _is_root():
        detail = _apt_install()
        missing = missing_tools()
        if not missing:
            return None
        why = "installing %s with apt-get did not provide them" % " ".join(CEPH_PACKAGES)
    else:
        why = (
            "not root, so they cannot be installed automatically; run "
            "'apt-get install -y %s' as root" % " ".join(CEPH_PACKAGES)
        )
    msg = "Ceph tools missing (%s): %s" % (", ".join(missing), why)
    if detail:
        msg += "\n" + detail
    if _in_ci():
        raise RuntimeError(msg + "\n(CI is set, so a missing Ceph is a failure)")
    raise SkipTest(msg)


# --------------------------------------------------------------------------
# Helpers


def free_port(host=HOST):
    """A TCP port on *host* that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_open(port, host=HOST, timeout=0.2):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _clean_env():
    env = dict(os.environ)
    # Anything here would leak into every ceph command we run.
    for k in ("CEPH_ARGS", "CEPH_CONF", "CEPH_KEYRING"):
        env.pop(k, None)
    return env


def _run(cmd, timeout=60, check=True):
    p = subprocess.run(
        cmd,
        env=_clean_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        timeout=timeout,
    )
    if check and p.returncode != 0:
        raise CephLabError(
            "%s failed with exit code %d:\n%s%s"
            % (
                " ".join(cmd),
                p.returncode,
                p.stdout.decode("utf-8", "replace"),
                p.stderr.decode("utf-8", "replace"),
            )
        )
    return p


def _preexec_pdeathsig():
    """In the child: die with SIGTERM if the parent dies (Linux only)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except Exception:
        pass


# --------------------------------------------------------------------------
# The monitor


class CephMonitor:
    """One ceph-mon (id ``a``) listening on ``v2:127.0.0.1:PORT`` only.

    ``auth`` is ``"none"`` or ``"cephx"``.  ``port`` is picked at
    ``start()`` if not given.
    """

    mon_id = "a"
    start_timeout = 30.0

    def __init__(self, auth="none", port=None):
        if auth not in ("none", "cephx"):
            raise ValueError("auth must be 'none' or 'cephx', not %r" % (auth,))
        self.auth = auth
        self.port = port
        self.fsid = str(uuid.uuid4())
        self.dir = None
        self.conf = None
        self.keyring = None
        self.monmap = None
        self.log_file = None
        self.proc = None
        self.start_time = None  # seconds the last start took
        self._created = False

    # -- properties --------------------------------------------------------

    @property
    def addr(self):
        return "v2:%s:%d" % (HOST, self.port)

    @property
    def host(self):
        return HOST

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def name(self):
        return "mon." + self.mon_id

    def __repr__(self):
        return "<CephMonitor %s auth=%s dir=%s %s>" % (
            self.addr if self.port else "?",
            self.auth,
            self.dir,
            "running" if self.running else "stopped",
        )

    # -- setup -------------------------------------------------------------

    def _conf_text(self):
        d = self.dir
        return "\n".join(
            [
                "[global]",
                "fsid = %s" % self.fsid,
                "mon host = %s" % self.addr,
                "mon initial members = %s" % self.mon_id,
                "public addr = %s" % HOST,
                "ms bind msgr1 = false",
                "ms bind msgr2 = true",
                "ms bind ipv6 = false",
                "auth cluster required = %s" % self.auth,
                "auth service required = %s" % self.auth,
                "auth client required = %s" % self.auth,
                "auth allow insecure global id reclaim = false",
                "keyring = %s" % self.keyring,
                "run dir = %s/run" % d,
                "crash dir = %s/crash" % d,
                "log file = %s/log/$name.log" % d,
                "log to stderr = false",
                "err to stderr = true",
                "log to syslog = false",
                "mon cluster log file = %s/log/cluster.log" % d,
                "mon cluster log to syslog = false",
                "mon allow pool delete = true",
                "mon allow pool size one = true",
                "osd pool default size = 1",
                "osd pool default min size = 1",
                "osd crush chooseleaf type = 0",
                # No mgr runs; don't warn about it.
                "mon mgr mkfs grace = 31536000",
                # A nearly full /tmp must not make the monitor shut down.
                "mon data avail crit = 0",
                "mon data avail warn = 0",
                "mon warn on pool no redundancy = false",
                "",
                "[mon]",
                "mon data = %s/mon.$id" % d,
                "admin socket = %s/run/$name.asok" % d,
                "pid file = %s/run/$name.pid" % d,
                "paxos propose interval = 0.05",
                "",
            ]
        )

    def _create(self):
        """Scratch dir, conf, keyring, monmap and mkfs.  Done once."""
        if self.port is None:
            self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="msgr2tx-ceph-", dir="/tmp")
        for sub in ("run", "crash", "log"):
            os.mkdir(os.path.join(self.dir, sub))
        self.conf = os.path.join(self.dir, "ceph.conf")
        self.keyring = os.path.join(self.dir, "keyring")
        self.monmap = os.path.join(self.dir, "monmap")
        self.log_file = os.path.join(self.dir, "log", "mon.%s.log" % self.mon_id)
        with open(self.conf, "w") as f:
            f.write(self._conf_text())

        _run(["ceph-authtool", "--create-keyring", self.keyring, "--gen-key",
              "-n", "mon.", "--cap", "mon", "allow *"])
        _run(["ceph-authtool", self.keyring, "--gen-key", "-n", "client.admin",
              "--cap", "mon", "allow *", "--cap", "osd", "allow *",
              "--cap", "mds", "allow *", "--cap", "mgr", "allow *"])
        os.chmod(self.keyring, 0o600)
        _run(["monmaptool", "--create", "--clobber",
              "--addv", self.mon_id, "[%s]" % self.addr,
              "--fsid", self.fsid, self.monmap])
        _run(["ceph-mon", "-c", self.conf, "--mkfs", "-i", self.mon_id,
              "--monmap", self.monmap, "--keyring", self.keyring])
        self._created = True

    # -- lifecycle ---------------------------------------------------------

    def start(self):
        """Create (first time only) and start the monitor; wait until it
        answers ``ceph status``.  Returns self."""
        if self.running:
            return self
        t0 = time.monotonic()
        try:
            if not self._created:
                self._create()
            self._launch()
            self._wait_ready(t0 + self.start_timeout)
        except BaseException:
            self._terminate(signal.SIGKILL)
            raise
        self.start_time = time.monotonic() - t0
        return self

    def _launch(self):
        # -f: stay in the foreground (we own the process and its lifetime),
        # logging to the log file, not stderr.
        cmd = ["ceph-mon", "-f", "-c", self.conf, "-i", self.mon_id]
        out = open(os.path.join(self.dir, "log", "mon.%s.stdout" % self.mon_id), "ab")
        try:
            kwargs = {}
            if sys.platform.startswith("linux") and (
                threading.current_thread() is threading.main_thread()
            ):
                # PDEATHSIG fires when the *thread* that forked exits, so
                # only use it from the main thread.
                kwargs["preexec_fn"] = _preexec_pdeathsig
            self.proc = subprocess.Popen(
                cmd,
                env=_clean_env(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                close_fds=True,
                **kwargs
            )
        finally:
            out.close()

    def _tail(self, n=30):
        lines = []
        for name in ("mon.%s.stdout" % self.mon_id, "mon.%s.log" % self.mon_id):
            p = os.path.join(self.dir or "", "log", name)
            try:
                with open(p, "rb") as f:
                    data = f.read().decode("utf-8", "replace").splitlines()
            except OSError:
                continue
            lines.append("--- %s ---" % p)
            lines.extend(data[-n:])
        return "\n".join(lines)

    def _check_alive(self):
        if self.proc.poll() is not None:
            raise CephLabError(
                "ceph-mon exited with code %s during startup\n%s"
                % (self.proc.returncode, self._tail())
            )

    def _wait_ready(self, deadline):
        while not port_open(self.port):
            self._check_alive()
            if time.monotonic() > deadline:
                raise CephLabError(
                    "ceph-mon did not listen on %s in time\n%s" % (self.addr, self._tail())
                )
            time.sleep(0.02)
        last = None
        while True:
            self._check_alive()
            left = deadline - time.monotonic()
            if left <= 0:
                raise CephLabError(
                    "ceph status against %s did not succeed in time: %s\n%s"
                    % (self.addr, last, self._tail())
                )
            try:
                p = self.ceph("status", "--format", "json", timeout=max(3, min(left, 10)))
            except subprocess.TimeoutExpired as e:
                last = "timeout: %s" % e
                continue
            if p.returncode == 0:
                return
            last = "exit %d: %s" % (p.returncode, p.stderr.decode("utf-8", "replace").strip())
            time.sleep(0.1)

    def _terminate(self, sig=signal.SIGTERM, wait=10.0):
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            try:
                proc.send_signal(sig)
            except ProcessLookupError:
                pass
            try:
                proc.wait(wait)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def kill9(self):
        """SIGKILL the monitor and reap it; data and scratch dir stay."""
        self._terminate(signal.SIGKILL)

    def restart(self):
        """kill -9, then start again on the same port and mon data."""
        self.kill9()
        return self.start()

    def stop(self):
        """Stop the monitor and remove the scratch directory.  Safe to call
        more than once."""
        self._terminate(signal.SIGTERM)
        d, self.dir = self.dir, None
        self._created = False
        if d and not os.environ.get("MSGR2TX_KEEP_CEPH"):
            shutil.rmtree(d, ignore_errors=True)

    # -- CLI ---------------------------------------------------------------

    def ceph_argv(self, *args, timeout=30):
        return [
            "ceph", "-c", self.conf, "-n", "client.admin", "--keyring", self.keyring,
            "--connect-timeout", str(max(1, int(timeout))), *args,
        ]

    def ceph(self, *args, timeout=30, input=None):
        """Run the ceph CLI against this monitor.  stdout and stderr are
        captured as bytes; the exit code is not checked."""
        return subprocess.run(
            self.ceph_argv(*args, timeout=timeout),
            env=_clean_env(),
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            timeout=timeout + 5,
        )

    def ceph_json(self, *args, timeout=30):
        """Run ``ceph ARGS --format json``, check the exit code and return
        the decoded JSON."""
        p = self.ceph(*args, "--format", "json", timeout=timeout)
        if p.returncode != 0:
            raise CephLabError(
                "ceph %s failed with exit code %d: %s"
                % (" ".join(args), p.returncode, p.stderr.decode("utf-8", "replace"))
            )
        return json.loads(p.stdout)

    def key(self, entity="client.admin"):
        """The base64 secret of *entity* from the keyring."""
        p = _run(["ceph-authtool", self.keyring, "-p", "-n", entity])
        return p.stdout.decode().strip()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


# --------------------------------------------------------------------------
# One monitor per process

_shared = {}
_shared_lock = threading.Lock()


def _stop_shared():
    for mon in list(_shared.values()):
        mon.stop()
    _shared.clear()


atexit.register(_stop_shared)


def shared_monitor(auth="none"):
    """A monitor with the given auth, started on first use and stopped at
    process exit.  Calls ensure_ceph() first.  If it has died (e.g. a test
    used kill9()), it is started again."""
    ensure_ceph()
    with _shared_lock:
        mon = _shared.get(auth)
        if mon is None:
            mon = _shared[auth] = CephMonitor(auth=auth)
        if not mon.running:
            mon.start()
        return mon
