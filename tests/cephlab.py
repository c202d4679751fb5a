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

OSDs and data.  ``mon.add_osd(osd_id=None, memstore_bytes=256 MiB)`` creates
and starts a memstore ``ceph-osd`` (msgr2 only, on 127.0.0.1, same auth as
the monitor, no systemd; data, keyring and log in the monitor's scratch dir)
and returns a ``CephOSD`` once the osdmap shows it up (about 1 s).  Its
``addr`` is the public address exactly as the osdmap has it,
``"v2:127.0.0.1:PORT/NONCE"``; the nonce changes with every start and a
client must send that exact address in CLIENT_IDENT.  The monitor's
``stop()`` kills its OSDs too.  Then::

    osd = self.mon.add_osd()
    self.mon.create_pool("data")            # pg_num 8, size 1; waits for I/O
    self.mon.rados_put("data", "obj", b"x")
    self.mon.rados_get("data", "obj")       # -> b"x"
    self.mon.rados("-p", "data", "ls")      # any rados CLI call
    self.mon.rados_bench("data", 1, "write")

``shared_monitor(auth, osds=1)`` gives a shared monitor with an OSD.

The conf has the lab-notes settings for a single OSD: ``mon allow pool size
one``, ``osd pool default (min) size = 1``, ``osd crush chooseleaf type = 0``
and, under ``[osd]``, ``osd objectstore = memstore`` and ``osd fast shutdown
= false`` (so ``CephOSD.stop()``/``start()`` keep the objects; ``kill9()``
loses them).  No mgr runs, so ``ceph pg ...`` commands do not work.

librados from Python.  python3-rados only imports in Debian's
``/usr/bin/python3``, not in the venv the tests run in.
``librados_python()`` returns that interpreter's path (or skips, or fails
in CI); run scripts with it against ``mon.conf`` and ``mon.keyring`` as
``client.admin``.

Releases.  ``RELEASES`` has ``pacific`` (16.2, the host's Ceph from
Debian bookworm, the default), ``reef`` (18.2 from Debian trixie) and
``tentacle`` (20.2 from Debian sid).  The newer two run in debootstrap
chroots (minbase plus CHROOT_PACKAGES) cached machine-wide in
``/var/cache/msgr2tx/chroots/RELEASE-SUITE`` (``MSGR2TX_CHROOT_CACHE``
overrides it); ``python3 -m tests.cephlab build`` (``make ceph-releases``)
builds both in parallel, about two minutes from scratch.  Then::

    mon = cephlab.CephMonitor(auth="cephx", release="tentacle", key_type="aes").start()
    mon.add_osd()
    mon.ceph("version")                    # chroot ROOT ceph -c ... version
    subprocess.run(mon.librados_argv() + ["-c", SCRIPT, mon.conf, mon.keyring])
    cephlab.shared_monitor("cephx", osds=1, release="reef")

A missing chroot is built on first use as root; as non-root the test is
skipped with a message saying how to build it, and in CI it fails.
``release_tmpdir(release)`` gives a directory whose path is the same on
the host and in the chroot, for files the release's tools must read.
"""

import atexit
import contextlib
import errno
import fcntl
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid

# the same class as twisted.trial.unittest.SkipTest; the stdlib import keeps
# this module usable without Twisted (``python3 -m tests.cephlab build``)
from unittest import SkipTest

__all__ = [
    "CEPH_PACKAGES",
    "CEPH_TOOLS",
    "CephLabError",
    "CephMonitor",
    "CephOSD",
    "LIBRADOS_PYTHON",
    "CHROOT_RELEASES",
    "DEFAULT_RELEASE",
    "RELEASES",
    "build_chroot",
    "build_chroots",
    "chroot_path",
    "chroot_ready",
    "debian_mirror",
    "ensure_ceph",
    "ensure_release",
    "ceph_argv",
    "librados_argv",
    "release_argv",
    "release_copy",
    "release_info",
    "release_tmpdir",
    "release_variants",
    "remove_release_tmpdir",
    "librados_python",
    "missing_tools",
    "shared_monitor",
]

#: The executables the harness needs.
CEPH_TOOLS = ("ceph-mon", "ceph-osd", "ceph", "rados", "monmaptool", "ceph-authtool")
#: The Debian packages that provide them (ceph-mon pulls in ceph-base,
#: which has monmaptool; ceph-common has ceph, rados and python3-rados).
CEPH_PACKAGES = ("ceph-mon", "ceph-osd", "ceph-common", "python3-rados")
#: The interpreter that can ``import rados`` (Debian's python3-rados is
#: built for it only; a venv or pyenv python cannot import it).
LIBRADOS_PYTHON = "/usr/bin/python3"

HOST = "127.0.0.1"
#: Default size of a memstore OSD's "device".  memstore keeps every object
#: in RAM (about 1-2x the bytes written), so keep test data well below it.
DEFAULT_MEMSTORE_BYTES = 256 * 1024 * 1024


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
    _unavailable(msg)


def _unavailable(msg):
    """Raise RuntimeError in CI, SkipTest otherwise."""
    if _in_ci():
        raise RuntimeError(msg + "\n(CI is set, so a missing Ceph is a failure)")
    raise SkipTest(msg)


def _python_imports_rados(python):
    try:
        p = subprocess.run(
            [python, "-c", "import rados"],
            env=_clean_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, str(e)
    err = p.stderr.decode("utf-8", "replace").strip()
    return p.returncode == 0, err or "exit code %d" % p.returncode


def librados_python():
    """The path of an interpreter that can ``import rados``.

    That is Debian's ``/usr/bin/python3`` with python3-rados, never the venv
    the tests run in.  Like ensure_ceph(), installs the packages if we are
    root and they are missing, then raises RuntimeError in CI or SkipTest
    otherwise if it still cannot import rados.
    """
    ok, err = _python_imports_rados(LIBRADOS_PYTHON)
    if ok:
        return LIBRADOS_PYTHON
    detail = ""
    if _is_root():
        detail = _apt_install()
        ok, err = _python_imports_rados(LIBRADOS_PYTHON)
        if ok:
            return LIBRADOS_PYTHON
    msg = "%s cannot import rados (%s); it comes with 'apt-get install -y python3-rados'" % (
        LIBRADOS_PYTHON,
        err.splitlines()[-1],
    )
    if detail:
        msg += "\n" + detail
    _unavailable(msg)


# --------------------------------------------------------------------------
# Releases: the host's Ceph, and newer ones in debootstrap chroots


class Release:
    """One Ceph release the tests can run.

    ``name`` is Ceph's release name, ``version`` the "major.minor" prefix
    of its ``ceph version`` output.  ``suite`` is the Debian suite whose
    packages provide it in a debootstrap chroot, or None for the Ceph
    installed on the host (``apt-get install`` of CEPH_PACKAGES).
    """

    def __init__(self, name, version, suite=None, apt_options=(), cipher_policy=False):
        self.name = name
        self.version = version
        self.suite = suite
        #: ``-o`` options for apt inside the chroot
        self.apt_options = tuple(apt_options)
        #: the monmap carries auth_allowed_ciphers/auth_service_cipher and
        #: keys have a type (Tentacle: aes256k by default)
        self.cipher_policy = cipher_policy

    @property
    def in_chroot(self):
        return self.suite is not None

    def __repr__(self):
        return "<Release %s %s %s>" % (self.name, self.version, self.suite or "host")


#: Every release the interop tests run.  Debian has no 19.x (Squid).
RELEASES = {
    "pacific": Release("pacific", "16.2"),
    "reef": Release("reef", "18.2", "trixie"),
    # sid's Release file may look expired (its Valid-Until passed) on a
    # machine whose clock or mirror lags behind.
    "tentacle": Release("tentacle", "20.2", "sid",
                        apt_options=("Acquire::Check-Valid-Until=false",), cipher_policy=True),
}
#: the release of the Ceph on the host
DEFAULT_RELEASE = "pacific"
#: releases that run in a chroot
CHROOT_RELEASES = tuple(r for r, rel in RELEASES.items() if rel.in_chroot)
#: what is installed in a release's chroot (python3-rados for librados from Python)
# libqatzip3: Debian's libceph_zlib.so (in ceph-common) links libqatzip.so.3
# without depending on it; without it a Tentacle OSD cannot load zlib, yet
# agrees to zlib on-wire compression and then aborts on the first compressed frame
CHROOT_PACKAGES = ("ceph-mon", "ceph-osd", "ceph-common", "ceph-base", "python3-rados", "libqatzip3")
#: the machine-wide cache of built chroots (MSGR2TX_CHROOT_CACHE overrides it)
DEFAULT_CHROOT_CACHE = "/var/cache/msgr2tx/chroots"
#: the marker a finished chroot carries (its ``ceph-mon --version``)
_READY_MARKER = ".msgr2tx-ready"
_FALLBACK_MIRROR = "http://deb.debian.org/debian"


def release_info(release):
    """The Release for a name (``"pacific"``, ``"reef"``, ``"tentacle"``);
    ValueError for any other."""
    try:
        return RELEASES[release]
    except KeyError:
        raise ValueError("unknown Ceph release %r; known: %s" % (release, ", ".join(RELEASES))) from None


def chroot_cache():
    return os.environ.get("MSGR2TX_CHROOT_CACHE") or DEFAULT_CHROOT_CACHE


def chroot_path(release):
    """Where the chroot of *release* lives once built (it may not exist)."""
    rel = release_info(release)
    return os.path.join(chroot_cache(), "%s-%s" % (rel.name, rel.suite))


def _marker(path):
    """(ceph version line, set of packages) from a chroot's ready marker, or None."""
    try:
        with open(os.path.join(path, _READY_MARKER)) as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    packages = set()
    for line in lines[1:]:
        if line.startswith("packages:"):
            packages = set(line[len("packages:"):].split())
    return (lines[0] if lines else ""), packages


def _missing_packages(path):
    """CHROOT_PACKAGES a finished chroot was not built with (a chroot from
    before a package was added to the list has them missing)."""
    marker = _marker(path)
    return [] if marker is None else [p for p in CHROOT_PACKAGES if p not in marker[1]]


def chroot_ready(release):
    """The chroot's path if it is built, finished and has every package of
    CHROOT_PACKAGES, else None."""
    path = chroot_path(release)
    marker = _marker(path)
    if marker is None or _missing_packages(path):
        return None
    return path


def _top_up(release, path, missing, log):
    """Install *missing* packages into a finished chroot, in place (under
    the build lock), and rewrite its marker once they are in."""
    env = dict(_clean_env(), DEBIAN_FRONTEND="noninteractive", LC_ALL="C")
    _build_step(log, ["chroot", path, "apt-get", "update"], env)
    _build_step(log, ["chroot", path, "apt-get", "install", "-y", *missing], env)
    _build_step(log, ["chroot", path, "apt-get", "clean"], env)
    version = _marker(path)[0]
    _write(os.path.join(path, _READY_MARKER), "%s\npackages: %s\n" % (version, " ".join(CHROOT_PACKAGES)))


def debian_mirror():
    """The Debian mirror apt uses on this machine (the first ``deb`` source
    for a Debian suite that is not debian-security), from
    /etc/apt/sources.list and /etc/apt/sources.list.d/ (one-line and deb822
    formats).  MSGR2TX_DEBIAN_MIRROR overrides it; deb.debian.org if none."""
    if os.environ.get("MSGR2TX_DEBIAN_MIRROR"):
        return os.environ["MSGR2TX_DEBIAN_MIRROR"]
    files = ["/etc/apt/sources.list"]
    files += sorted(glob.glob("/etc/apt/sources.list.d/*.list"))
    files += sorted(glob.glob("/etc/apt/sources.list.d/*.sources"))
    uris = []
    for path in files:
        try:
            with open(path) as f:
                text = f.read()
        except OSError:
            continue
        if path.endswith(".sources"):
            for stanza in re.split(r"\n\s*\n", text):
                fields = {}
                for line in stanza.splitlines():
                    if line.startswith("#") or ":" not in line:
                        continue
                    key, _, value = line.partition(":")
                    fields[key.strip().lower()] = value.split()
                if "deb" in fields.get("types", ()) and fields.get("enabled", ["yes"])[0] != "no":
                    uris.extend((u, fields.get("components", [])) for u in fields.get("uris", ()))
        else:
            for line in text.splitlines():
                words = re.sub(r"\[[^\]]*\]", "", line.split("#", 1)[0]).split()
                if len(words) >= 3 and words[0] == "deb":
                    uris.append((words[1], words[3:]))
    for uri, components in uris:
        if "main" in components and uri.rstrip("/").endswith("/debian"):
            return uri.rstrip("/")
    return _FALLBACK_MIRROR


@contextlib.contextmanager
def _file_lock(path, timeout):
    """An exclusive flock on *path*, held for the with-block; CephLabError
    if another process holds it longer than *timeout* seconds."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        waiting = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
            if not waiting:
                sys.stderr.write("cephlab: waiting for %s (another process builds)\n" % path)
                waiting = True
            if time.monotonic() > deadline:
                raise CephLabError("%s was held for more than %d s" % (path, timeout))
            time.sleep(0.5)
        yield
    finally:
        os.close(fd)


def _mounts_under(path):
    path = os.path.realpath(path)
    found = []
    try:
        with open("/proc/mounts") as f:
            for line in f:
                target = line.split()[1].replace("\\040", " ")
                if target == path or target.startswith(path + "/"):
                    found.append(target)
    except OSError:
        pass
    return sorted(found, reverse=True)


def _remove_tree(path):
    """rm -rf *path*, unmounting anything mounted below it first (an
    interrupted build may have left its /proc mounted)."""
    for target in _mounts_under(path):
        subprocess.run(["umount", "-l", target], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if _mounts_under(path):
        raise CephLabError("cannot remove %s: something is still mounted below it" % path)
    shutil.rmtree(path, ignore_errors=True)


def _build_step(log, cmd, env=None, timeout=900, check=True):
    started = time.monotonic()
    try:
        p = subprocess.run(cmd, env=env or _clean_env(), stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise CephLabError("%s: %s\n%s" % (" ".join(cmd), e, "\n".join(log))) from None
    out = p.stdout.decode("utf-8", "replace").strip().splitlines()
    log.append("$ %s -> exit %d in %.0f s\n%s" % (
        " ".join(cmd), p.returncode, time.monotonic() - started, "\n".join(out[-12:])))
    if check and p.returncode != 0:
        raise CephLabError("building a chroot failed:\n%s" % "\n".join(log))
    return p


_debootstrap_lock = threading.Lock()


def _ensure_debootstrap(log):
    """Install debootstrap on the host if missing; the builds of two
    releases run in parallel threads, and only one may run apt-get."""
    with _debootstrap_lock:
        if shutil.which("debootstrap"):
            return
        env = dict(_clean_env(), DEBIAN_FRONTEND="noninteractive")
        _build_step(log, ["apt-get", "update"], env)
        # wait for a dpkg lock another apt-get holds, rather than fail
        _build_step(log, ["apt-get", "-o", "DPkg::Lock::Timeout=300", "install", "-y", "debootstrap"], env)


def _write(path, text, mode=0o644):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def _build_chroot(release, target, log):
    """debootstrap *release*'s suite into *target* and install Ceph there."""
    rel = release_info(release)
    _ensure_debootstrap(log)
    mirror = debian_mirror()
    _build_step(log, ["debootstrap", "--variant=minbase", rel.suite, target, mirror], timeout=1200)
    conf = "".join('%s "%s";\n' % tuple(o.split("=", 1)) for o in rel.apt_options)
    conf += 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n'
    _write(os.path.join(target, "etc/apt/apt.conf.d/99msgr2tx"), conf)
    # no package may start a daemon in the chroot
    _write(os.path.join(target, "usr/sbin/policy-rc.d"), "#!/bin/sh\nexit 101\n", 0o755)
    env = dict(_clean_env(), DEBIAN_FRONTEND="noninteractive", LC_ALL="C")
    _build_step(log, ["chroot", target, "apt-get", "update"], env)
    # Without /proc first: ceph-mon's postinst fails with it mounted; then
    # with /proc for whatever wants it (sid's cryptsetup-bin).
    _build_step(log, ["chroot", target, "apt-get", "install", "-y", *CHROOT_PACKAGES],
                env, timeout=1200, check=False)
    proc = os.path.join(target, "proc")
    _build_step(log, ["mount", "-t", "proc", "proc", proc], env)
    try:
        _build_step(log, ["chroot", target, "dpkg", "--configure", "-a"], env)
    finally:
        _build_step(log, ["umount", proc], env, check=False)
    _build_step(log, ["chroot", target, "apt-get", "install", "-y", *CHROOT_PACKAGES], env)
    _build_step(log, ["chroot", target, "apt-get", "clean"], env)
    version = _build_step(log, ["chroot", target, "ceph-mon", "--version"], env).stdout.decode().strip()
    if "ceph version %s." % rel.version not in version:
        raise CephLabError("%s: the chroot has %r, not Ceph %s" % (release, version, rel.version))
    _write(os.path.join(target, _READY_MARKER), "%s\npackages: %s\n" % (version, " ".join(CHROOT_PACKAGES)))
    return version


def build_chroot(release, timeout=1800):
    """Build *release*'s chroot in the cache unless it is there already, and
    return its path.  Needs root.

    Atomic: it is built in a temporary directory next to its final place and
    renamed when finished, so an interrupted build is never taken for a
    finished one (it is removed by the next build).  Its ready marker
    lists the packages it was built with; a chroot built before a package
    joined CHROOT_PACKAGES gets the newcomers installed in place.  A lock file per release
    in the cache dir keeps two processes from building it at once; the
    second waits (up to *timeout* seconds) and then finds it built.
    Raises CephLabError if the build fails.
    """
    rel = release_info(release)
    if not rel.in_chroot:
        raise ValueError("%s is the host's Ceph; it has no chroot" % release)
    done = chroot_ready(release)
    if done:
        return done
    cache = chroot_cache()
    os.makedirs(cache, exist_ok=True)
    final = chroot_path(release)
    with _file_lock(os.path.join(cache, ".%s.lock" % release), timeout):
        done = chroot_ready(release)
        if done:
            return done
        missing = _missing_packages(final)
        if missing:
            # finished, but from before a package joined CHROOT_PACKAGES
            sys.stderr.write("cephlab: adding %s to the %s chroot\n" % (" ".join(missing), release))
            log = []
            _top_up(release, final, missing, log)
            return final
        # leftovers of interrupted builds (we hold the lock: nobody builds)
        for stale in glob.glob(os.path.join(cache, ".building-%s-*" % release)):
            _remove_tree(stale)
        if os.path.lexists(final):
            _remove_tree(final)
        tmp = tempfile.mkdtemp(prefix=".building-%s-" % release, dir=cache)
        os.chmod(tmp, 0o755)
        started = time.monotonic()
        sys.stderr.write("cephlab: building the %s chroot (Debian %s) in %s\n" % (release, rel.suite, final))
        log = []
        try:
            version = _build_chroot(release, tmp, log)
            os.rename(tmp, final)
        except BaseException:
            _remove_tree(tmp)
            raise
        sys.stderr.write("cephlab: built the %s chroot in %.0f s: %s\n"
                         % (release, time.monotonic() - started, version))
    return final


def build_chroots(releases=CHROOT_RELEASES):
    """Build the chroots of *releases* in parallel (see build_chroot);
    returns {release: path or the exception it raised}."""
    results = {}

    def one(release):
        try:
            results[release] = build_chroot(release)
        except Exception as e:  # reported by the caller
            results[release] = e

    threads = [threading.Thread(target=one, args=(r,)) for r in releases]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def ensure_release(release=DEFAULT_RELEASE):
    """Make *release* runnable and return its chroot's path (None for the
    host's Ceph, after ensure_ceph()).

    A chroot that is not built yet is built as root (a few minutes; see
    build_chroot).  If it cannot be, or we are not root (chroot needs
    root), this raises RuntimeError in CI (the CI variable is set) and
    SkipTest otherwise, with a message saying why and what to run.
    """
    rel = release_info(release)
    if not rel.in_chroot:
        ensure_ceph()
        return None
    done = chroot_ready(release)
    if not _is_root():
        if done:
            _unavailable("Ceph %s (%s) runs in its chroot %s, and only root can chroot: run the tests as root"
                         % (rel.version, release, done))
        _unavailable(
            "Ceph %s (%s, Debian %s) runs in a chroot that is not built in %s, and only root can "
            "build it: run 'make ceph-releases' (or 'python3 -m tests.cephlab build %s') as root"
            % (rel.version, release, rel.suite, chroot_cache(), release))
    if done:
        return done
    try:
        return build_chroot(release)
    except CephLabError as e:
        _unavailable("building the %s chroot failed: %s" % (release, e))


def release_argv(release=DEFAULT_RELEASE):
    """The prefix that runs a command of *release*: ``[]`` for the host's
    Ceph, ``["chroot", ROOT]`` for a chroot (built on demand, see
    ensure_release()).  E.g. ``release_argv("reef") + ["ceph", "-v"]``."""
    root = ensure_release(release)
    return [] if root is None else ["chroot", root]


_release_dirs = []


def release_tmpdir(release=DEFAULT_RELEASE, prefix="msgr2tx-"):
    """A new scratch directory whose path works on the host and inside
    *release*'s chroot: a real directory in ROOT/tmp with a symlink of the
    same name in /tmp (a plain /tmp directory for the host's Ceph).  Files
    written there (keyrings, confs) are seen by both.  remove_release_tmpdir()
    (or process exit) removes it."""
    root = ensure_release(release)
    if root is None:
        path = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    else:
        while True:
            inside = tempfile.mkdtemp(prefix=prefix, dir=os.path.join(root, "tmp"))
            path = os.path.join("/tmp", os.path.basename(inside))
            try:
                os.symlink(inside, path)
                break
            except FileExistsError:
                os.rmdir(inside)
    _release_dirs.append(path)
    return path


def remove_release_tmpdir(path):
    """Remove a directory from release_tmpdir() (and its symlink)."""
    real = os.path.realpath(path)
    if os.path.islink(path):
        os.unlink(path)
    shutil.rmtree(real, ignore_errors=True)
    if path in _release_dirs:
        _release_dirs.remove(path)


def _remove_release_tmpdirs():
    for path in list(_release_dirs):
        remove_release_tmpdir(path)


atexit.register(_remove_release_tmpdirs)


_release_copies = {}


def release_copy(release, path):
    """*path* as *release*'s tools can read it: unchanged for the host's
    Ceph, else a copy in a release_tmpdir() (made once per release and
    source path; copy again after changing the file)."""
    if not release_info(release).in_chroot:
        return path
    key = (release, os.path.abspath(path))
    d = _release_copies.get(key)
    if d is None or not os.path.isdir(d):
        d = _release_copies[key] = release_tmpdir(release, prefix="msgr2tx-copy-")
    target = os.path.join(d, os.path.basename(path))
    shutil.copy2(path, target)
    return target


def ceph_argv(release, *args):
    """argv of the ``ceph`` CLI of *release* (no conf or name of its own)."""
    return release_argv(release) + ["ceph", *args]


def librados_argv(release=DEFAULT_RELEASE):
    """The argv prefix of a Python that can ``import rados`` for *release*:
    ``[librados_python()]`` for the host's Ceph, ``["chroot", ROOT,
    "/usr/bin/python3"]`` for a chroot.  Paths handed to the script must be
    visible in the chroot (release_tmpdir())."""
    if not release_info(release).in_chroot:
        return [librados_python()]
    return release_argv(release) + ["/usr/bin/python3"]


def release_variants(namespace, base, releases=CHROOT_RELEASES):
    """Parametrize a test class over releases: for each of *releases*, put
    into *namespace* (a module's ``globals()``) a subclass of *base* with
    ``release`` set, named after it (``FooTests`` -> ``FooReefTests``).
    *base* itself keeps its own ``release`` (normally ``"pacific"``)."""
    stem = base.__name__[:-5] if base.__name__.endswith("Tests") else base.__name__
    for release in releases:
        name = "%s%sTests" % (stem, release.capitalize())
        doc = "%s\n\n    On Ceph %s (%s)." % ((base.__doc__ or name).rstrip(), release_info(release).version, release)
        namespace[name] = type(name, (base,), {"release": release, "__doc__": doc,
                                               "__module__": namespace.get("__name__", base.__module__)})


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
    """
    In the child: die with SIGKILL if the parent dies (Linux only).  Not
    SIGTERM: an OSD's orderly shutdown waits for its monitor, which died
    with the same parent, and a test daemon has nothing to save.
    """
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except Exception:
        pass


def _popen_daemon(cmd, stdout_path):
    """Start a Ceph daemon in the foreground, stdout+stderr to a file."""
    out = open(stdout_path, "ab")
    try:
        kwargs = {}
        if sys.platform.startswith("linux") and (
            threading.current_thread() is threading.main_thread()
        ):
            # PDEATHSIG fires when the *thread* that forked exits, so
            # only use it from the main thread.
            kwargs["preexec_fn"] = _preexec_pdeathsig
        return subprocess.Popen(
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


def _tail_logs(d, names, n=30):
    lines = []
    for name in names:
        p = os.path.join(d or "", "log", name)
        try:
            with open(p, "rb") as f:
                data = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            continue
        lines.append("--- %s ---" % p)
        lines.extend(data[-n:])
    return "\n".join(lines)


def _stop_proc(proc, sig=signal.SIGTERM, wait=10.0):
    """Signal *proc*, wait up to *wait* seconds, then SIGKILL; reap it."""
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


# --------------------------------------------------------------------------
# The monitor



def mon_conf_text(d, fsid, mon_host, mon_ids, auth, keyring, extra_global=()):
    """
    The [global] and [mon] sections of a loopback test cluster's ceph.conf:
    msgr2 only on 127.0.0.1, C{auth} everywhere, every path under the
    scratch directory C{d}, fast paxos; C{extra_global} lines go at the end
    of [global].  Ends with an empty line, so more sections can follow.
    """
    return "\n".join([
        "[global]",
        "fsid = %s" % fsid,
        "mon host = %s" % mon_host,
        "mon initial members = %s" % ",".join(mon_ids),
        "public addr = %s" % HOST,
        "ms bind msgr1 = false",
        "ms bind msgr2 = true",
        "ms bind ipv6 = false",
        "auth cluster required = %s" % auth,
        "auth service required = %s" % auth,
        "auth client required = %s" % auth,
        "auth allow insecure global id reclaim = false",
        "keyring = %s" % keyring,
        "run dir = %s/run" % d,
        "crash dir = %s/crash" % d,
        "log file = %s/log/$name.log" % d,
        "log to stderr = false",
        "err to stderr = true",
        "log to syslog = false",
        "mon cluster log file = %s/log/cluster.log" % d,
        "mon cluster log to syslog = false",
        # No mgr runs; don't warn about it.
        "mon mgr mkfs grace = 31536000",
        # A nearly full /tmp must not make the monitor shut down.
        "mon data avail crit = 0",
        "mon data avail warn = 0",
        "mon warn on pool no redundancy = false",
        *extra_global,
        "",
        "[mon]",
        "mon data = %s/mon.$id" % d,
        "admin socket = %s/run/$name.asok" % d,
        "pid file = %s/run/$name.pid" % d,
        "paxos propose interval = 0.05",
        "",
        "",
    ])


class CephMonitor:
    """One ceph-mon (id ``a``) listening on ``v2:127.0.0.1:PORT`` only.

    ``auth`` is ``"none"`` or ``"cephx"``.  ``port`` is picked at
    ``start()`` if not given.

    ``release`` is a name from RELEASES: ``"pacific"`` (the host's Ceph,
    the default), ``"reef"`` or ``"tentacle"`` (run in their chroots with
    ``chroot ROOT ceph-mon ...``, built on first use; see ensure_release()).
    The daemons share the host's loopback, and the scratch directory has the
    same path on the host and in the chroot (release_tmpdir()), so ``conf``,
    ``keyring`` and ``addr`` mean the same thing to host and chroot tools.
    ``ceph()``, ``rados()``, ``add_osd()`` and ``librados_argv()`` use the
    release's own binaries.

    ``key_type`` is the cephx key type of the keys made with ceph-authtool
    (``mon.``, ``client.admin``) and of the rotating service secrets
    (``auth_service_cipher``): ``"aes"`` (the default, type 1) or, from
    Tentacle on, ``"aes256k"`` (type 2).  On Tentacle the monmap allows both
    (``auth_allowed_ciphers aes,aes256k``).
    """

    mon_id = "a"
    start_timeout = 30.0

    def __init__(self, auth="none", port=None, release=DEFAULT_RELEASE, key_type=None):
        if auth not in ("none", "cephx"):
            raise ValueError("auth must be 'none' or 'cephx', not %r" % (auth,))
        rel = release_info(release)
        key_type = key_type or "aes"
        if key_type not in ("aes", "aes256k"):
            raise ValueError("key_type must be 'aes' or 'aes256k', not %r" % (key_type,))
        if key_type != "aes" and not rel.cipher_policy:
            raise ValueError("Ceph %s (%s) has only aes keys" % (rel.version, release))
        self.release = release
        self.version = rel.version
        self.key_type = key_type
        self.auth = auth
        self.port = port
        #: the argv prefix of this release's tools (set at the first start())
        self.argv_prefix = None
        self.fsid = str(uuid.uuid4())
        self.dir = None
        self.conf = None
        self.keyring = None
        self.monmap = None
        self.log_file = None
        self.proc = None
        self.start_time = None  # seconds the last start took
        self.osds = {}  # osd id -> CephOSD, from add_osd()
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
        return "<CephMonitor %s %s auth=%s dir=%s %s>" % (
            self.addr if self.port else "?",
            self.release,
            self.auth,
            self.dir,
            "running" if self.running else "stopped",
        )

    # -- setup -------------------------------------------------------------

    def _conf_text(self):
        d = self.dir
        return mon_conf_text(d, self.fsid, self.addr, [self.mon_id], self.auth, self.keyring, [
            "mon allow pool delete = true",
            "mon allow pool size one = true",
            "osd pool default size = 1",
            "osd pool default min size = 1",
            "osd crush chooseleaf type = 0",
        ]) + "\n".join([
            # Only used by OSDs from add_osd().
            "[osd]",
            "osd data = %s/osd.$id" % d,
            "keyring = %s/osd.$id/keyring" % d,
            "admin socket = %s/run/$name.asok" % d,
            "pid file = %s/run/$name.pid" % d,
            "osd objectstore = memstore",
            "memstore device bytes = %d" % DEFAULT_MEMSTORE_BYTES,
            # Without this a memstore OSD restarted after SIGTERM loses
            # its PGs and I/O hangs.
            "osd fast shutdown = false",
            "osd crush update on start = true",
            "",
        ])

    def _create(self):
        """Scratch dir, conf, keyring, monmap and mkfs.  Done once."""
        if self.argv_prefix is None:
            self.argv_prefix = release_argv(self.release)
        if self.port is None:
            self.port = free_port()
        self.dir = release_tmpdir(self.release, prefix="msgr2tx-ceph-")
        for sub in ("run", "crash", "log"):
            os.mkdir(os.path.join(self.dir, sub))
        self.conf = os.path.join(self.dir, "ceph.conf")
        self.keyring = os.path.join(self.dir, "keyring")
        self.monmap = os.path.join(self.dir, "monmap")
        self.log_file = os.path.join(self.dir, "log", "mon.%s.log" % self.mon_id)
        with open(self.conf, "w") as f:
            f.write(self._conf_text())

        key_type = ["--key-type", self.key_type] if release_info(self.release).cipher_policy else []
        self._tool("ceph-authtool", "--create-keyring", self.keyring, "--gen-key", *key_type,
                   "-n", "mon.", "--cap", "mon", "allow *")
        self._tool("ceph-authtool", self.keyring, "--gen-key", *key_type, "-n", "client.admin",
                   "--cap", "mon", "allow *", "--cap", "osd", "allow *",
                   "--cap", "mds", "allow *", "--cap", "mgr", "allow *")
        os.chmod(self.keyring, 0o600)
        ciphers = []
        if release_info(self.release).cipher_policy:
            # keys the monitor makes (auth get-or-create, osd new) follow
            # the preferred cipher, rotating secrets the service cipher
            ciphers = ["--auth-allowed-ciphers", "aes,aes256k", "--auth-service-cipher", self.key_type,
                       "--auth-preferred-cipher", self.key_type]
        self._tool("monmaptool", "--create", "--clobber",
                   "--addv", self.mon_id, "[%s]" % self.addr,
                   "--fsid", self.fsid, *ciphers, self.monmap)
        self._tool("ceph-mon", "-c", self.conf, "--mkfs", "-i", self.mon_id,
                   "--monmap", self.monmap, "--keyring", self.keyring)
        self._created = True

    def _tool(self, *argv, timeout=60, check=True):
        """Run a tool of this monitor's release (see _run)."""
        return _run(self.argv_prefix + list(argv), timeout=timeout, check=check)

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
        self.proc = _popen_daemon(
            self.argv_prefix + ["ceph-mon", "-f", "-c", self.conf, "-i", self.mon_id],
            os.path.join(self.dir, "log", "mon.%s.stdout" % self.mon_id),
        )

    def _tail(self, n=30):
        return _tail_logs(
            self.dir, ("mon.%s.stdout" % self.mon_id, "mon.%s.log" % self.mon_id), n
        )

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
        _stop_proc(proc, sig, wait)

    def kill9(self):
        """SIGKILL the monitor and reap it; data and scratch dir stay."""
        self._terminate(signal.SIGKILL)

    def restart(self):
        """kill -9, then start again on the same port and mon data."""
        self.kill9()
        return self.start()

    def stop(self):
        """Stop the OSDs and the monitor and remove the scratch directory.
        Safe to call more than once."""
        # The OSDs' data goes away with the scratch dir, so there is nothing
        # for a clean shutdown to save; SIGKILL is fast and does not depend
        # on the monitor still answering.
        for osd in list(self.osds.values()):
            osd.kill9()
        self.osds.clear()
        self._terminate(signal.SIGTERM)
        d, self.dir = self.dir, None
        self._created = False
        if d and not os.environ.get("MSGR2TX_KEEP_CEPH"):
            remove_release_tmpdir(d)

    # -- CLI ---------------------------------------------------------------

    def ceph_argv(self, *args, timeout=30):
        """argv of this release's ceph CLI as client.admin of this cluster."""
        return self._prefix() + [
            "ceph", "-c", self.conf, "-n", "client.admin", "--keyring", self.keyring,
            "--connect-timeout", str(max(1, int(timeout))), *args,
        ]

    def _prefix(self):
        if self.argv_prefix is None:
            self.argv_prefix = release_argv(self.release)
        return self.argv_prefix

    def librados_argv(self):
        """The argv prefix of a Python that imports this release's librados
        (see the module function librados_argv())."""
        return librados_argv(self.release)

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

    def ceph_checked(self, *args, timeout=30, input=None):
        """Run the ceph CLI, raise CephLabError unless it exits 0, and
        return the CompletedProcess."""
        p = self.ceph(*args, timeout=timeout, input=input)
        if p.returncode != 0:
            raise CephLabError(
                "ceph %s failed with exit code %d: %s"
                % (" ".join(args), p.returncode, p.stderr.decode("utf-8", "replace"))
            )
        return p

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

    def rados_argv(self, *args, timeout=30):
        t = str(max(1, int(timeout)))
        return self._prefix() + [
            "rados", "-c", self.conf, "-n", "client.admin", "--keyring", self.keyring,
            # rados has no --connect-timeout.
            "--client_mount_timeout", t, "--rados_osd_op_timeout", t, *args,
        ]

    def rados(self, *args, timeout=30, input=None):
        """Run the rados CLI against this cluster.  stdout and stderr are
        captured as bytes; the exit code is not checked."""
        return subprocess.run(
            self.rados_argv(*args, timeout=timeout),
            env=_clean_env(),
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            timeout=timeout + 5,
        )

    def _rados_checked(self, *args, timeout=30, input=None):
        p = self.rados(*args, timeout=timeout, input=input)
        if p.returncode != 0:
            raise CephLabError(
                "rados %s failed with exit code %d: %s"
                % (" ".join(args), p.returncode, p.stderr.decode("utf-8", "replace"))
            )
        return p

    def rados_put(self, pool, name, data, timeout=30):
        """Write *data* (bytes) as object *name* in *pool*."""
        self._rados_checked("-p", pool, "put", name, "-", timeout=timeout, input=data)

    def rados_get(self, pool, name, timeout=30):
        """Read object *name* from *pool* and return its bytes."""
        return self._rados_checked("-p", pool, "get", name, "-", timeout=timeout).stdout

    def rados_bench(self, pool, seconds=1, mode="write", *extra, timeout=60):
        """``rados -p POOL bench SECONDS MODE [EXTRA...]``; returns stdout
        as text.  For a later ``seq``/``rand`` run, pass ``--no-cleanup``
        to the ``write`` run."""
        p = self._rados_checked(
            "-p", pool, "bench", str(seconds), mode, *extra, timeout=timeout
        )
        return p.stdout.decode("utf-8", "replace")

    # -- OSDs and pools ----------------------------------------------------

    def add_osd(self, osd_id=None, memstore_bytes=DEFAULT_MEMSTORE_BYTES):
        """Create and start a memstore OSD (see CephOSD); wait until the
        osdmap shows it up.  Returns the CephOSD, also kept in ``osds``."""
        if not self.running:
            raise CephLabError("start the monitor before adding OSDs")
        if osd_id is None:
            osd_id = 0
            while osd_id in self.osds:
                osd_id += 1
        if osd_id in self.osds:
            raise ValueError("osd.%d exists already" % osd_id)
        osd = CephOSD(self, osd_id, memstore_bytes=memstore_bytes)
        self.osds[osd_id] = osd
        try:
            osd.start()
        except BaseException:
            osd.kill9()
            del self.osds[osd_id]
            raise
        return osd

    def create_pool(self, name, pg_num=8, wait=True, timeout=30):
        """``ceph osd pool create NAME PG_NUM`` (replicated, size 1), tag it
        for the rados application, and (with *wait*) wait until all its PGs
        serve I/O.  Needs at least one OSD up.  Returns *name*."""
        self.ceph_checked("osd", "pool", "create", name, str(pg_num), timeout=timeout)
        self.ceph_checked(
            "osd", "pool", "application", "enable", name, "rados", timeout=timeout
        )
        if wait:
            # No mgr runs, so PG states cannot be queried; listing the pool
            # touches every PG and returns once they are all active.
            self._rados_checked("-p", name, "ls", timeout=timeout)
        return name

    def osd_dump(self, timeout=30):
        """``ceph osd dump --format json``, decoded."""
        return self.ceph_json("osd", "dump", timeout=timeout)

    def key(self, entity="client.admin"):
        """The base64 secret of *entity* from the keyring."""
        p = _run(self._prefix() + ["ceph-authtool", self.keyring, "-p", "-n", entity])
        return p.stdout.decode().strip()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


# --------------------------------------------------------------------------
# A memstore OSD


def _v2_addr(addrvec_entry):
    """'v2:IP:PORT/NONCE' from one osdmap addrvec entry."""
    return "%s:%s/%d" % (addrvec_entry["type"], addrvec_entry["addr"], addrvec_entry["nonce"])


class CephOSD:
    """One memstore ceph-osd of a CephMonitor; make it with
    ``CephMonitor.add_osd()``.

    Its data dir is ``<mon dir>/osd.N`` (keyring included), its log
    ``<mon dir>/log/osd.N.log``.  It binds msgr2 only on 127.0.0.1.  After
    ``start()``:

    * ``addr`` is its public msgr2 address as the osdmap reports it,
      ``"v2:127.0.0.1:PORT/NONCE"``.  The nonce changes on every start; a
      client must name this exact address (nonce included) in its
      CLIENT_IDENT.
    * ``addrs`` has all four addrvecs from the osdmap entry
      (``public_addrs``, ``cluster_addrs``, ``heartbeat_back_addrs``,
      ``heartbeat_front_addrs``) as lists of such strings.
    * ``port``/``nonce`` are those of ``addr``.

    ``stop()`` is SIGTERM (with ``osd fast shutdown = false`` the memstore
    is saved and the OSD can be started again with its PGs), ``kill9()`` is
    SIGKILL (memstore contents are lost).  The monitor's ``stop()`` kills
    its OSDs and removes everything.
    """

    start_timeout = 30.0

    def __init__(self, mon, osd_id, memstore_bytes=DEFAULT_MEMSTORE_BYTES):
        self.mon = mon
        self.osd_id = int(osd_id)
        self.memstore_bytes = int(memstore_bytes)
        self.uuid = str(uuid.uuid4())
        self.dir = os.path.join(mon.dir, "osd.%d" % self.osd_id)
        self.keyring = os.path.join(self.dir, "keyring")
        self.log_file = os.path.join(mon.dir, "log", "osd.%d.log" % self.osd_id)
        self.proc = None
        self.addr = None
        self.addrs = {}
        self.up_from = None
        self.start_time = None  # seconds the last start() took
        self._created = False

    @property
    def name(self):
        return "osd.%d" % self.osd_id

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def host(self):
        return self.addr.split(":")[1] if self.addr else None

    @property
    def port(self):
        return int(self.addr.rsplit(":", 1)[1].split("/")[0]) if self.addr else None

    @property
    def nonce(self):
        return int(self.addr.rsplit("/", 1)[1]) if self.addr else None

    def __repr__(self):
        return "<CephOSD %s %s %s>" % (
            self.name,
            self.addr or "?",
            "running" if self.running else "stopped",
        )

    def key(self):
        """The base64 secret of this OSD."""
        p = _run(self.mon.argv_prefix + ["ceph-authtool", self.keyring, "-p", "-n", self.name])
        return p.stdout.decode().strip()

    def _args(self):
        return [
            "-c", self.mon.conf, "-i", str(self.osd_id),
            "--memstore_device_bytes", str(self.memstore_bytes),
        ]

    def _create(self):
        os.mkdir(self.dir)
        got = self.mon.ceph("osd", "new", self.uuid, str(self.osd_id))
        if got.returncode != 0 or got.stdout.decode().strip() != str(self.osd_id):
            raise CephLabError(
                "ceph osd new %s %d -> exit %d: %r %r"
                % (self.uuid, self.osd_id, got.returncode, got.stdout, got.stderr)
            )
        p = self.mon.ceph(
            "auth", "get-or-create", self.name,
            "mon", "allow profile osd", "osd", "allow *", "mgr", "allow profile osd",
            "-o", self.keyring,
        )
        if p.returncode != 0:
            raise CephLabError(
                "ceph auth get-or-create %s -> exit %d: %s"
                % (self.name, p.returncode, p.stderr.decode("utf-8", "replace"))
            )
        os.chmod(self.keyring, 0o600)
        _run(self.mon.argv_prefix + ["ceph-osd", *self._args(), "--mkfs", "--osd-uuid", self.uuid])
        self._created = True

    def _tail(self, n=30):
        return _tail_logs(
            self.mon.dir, ("osd.%d.stdout" % self.osd_id, "osd.%d.log" % self.osd_id), n
        )

    def _entry(self, dump):
        for o in dump.get("osds", ()):
            if o.get("osd") == self.osd_id:
                return o
        return None

    def start(self):
        """Create (first time only) and start the OSD; wait until the
        osdmap shows this incarnation up.  Returns self."""
        if self.running:
            return self
        t0 = time.monotonic()
        deadline = t0 + self.start_timeout
        try:
            if not self._created:
                self._create()
            prev_up_from = self.up_from or 0
            self.proc = _popen_daemon(
                self.mon.argv_prefix + ["ceph-osd", "-f", *self._args()],
                os.path.join(self.mon.dir, "log", "osd.%d.stdout" % self.osd_id),
            )
            self._wait_up(prev_up_from, deadline)
        except BaseException:
            self.kill9()
            raise
        self.start_time = time.monotonic() - t0
        return self

    def _wait_up(self, prev_up_from, deadline):
        last = None
        while True:
            if self.proc.poll() is not None:
                raise CephLabError(
                    "ceph-osd %s exited with code %s during startup\n%s"
                    % (self.name, self.proc.returncode, self._tail())
                )
            left = deadline - time.monotonic()
            if left <= 0:
                raise CephLabError(
                    "%s did not come up in time (last osdmap entry: %r)\n%s"
                    % (self.name, last, self._tail())
                )
            try:
                entry = self._entry(self.mon.osd_dump(timeout=max(3, min(left, 10))))
            except (CephLabError, subprocess.TimeoutExpired, ValueError) as e:
                entry = "error: %s" % (e,)
            last = entry
            if isinstance(entry, dict) and entry.get("up") and (
                entry.get("up_from", 0) > prev_up_from
            ):
                self._record(entry)
                return
            time.sleep(0.05)

    def _record(self, entry):
        self.up_from = entry["up_from"]
        self.addrs = {
            k: [_v2_addr(a) for a in entry[k]["addrvec"]]
            for k in (
                "public_addrs",
                "cluster_addrs",
                "heartbeat_back_addrs",
                "heartbeat_front_addrs",
            )
            if k in entry
        }
        v2 = [a for a in self.addrs.get("public_addrs", ()) if a.startswith("v2:")]
        if len(v2) != 1:
            raise CephLabError(
                "%s: expected one v2 public address, the osdmap has %r" % (self.name, entry)
            )
        self.addr = v2[0]

    def stop(self, wait=15.0):
        """SIGTERM the OSD and reap it.  It tells the monitor it is going
        down and saves its memstore; start() brings it back."""
        proc, self.proc = self.proc, None
        _stop_proc(proc, signal.SIGTERM, wait)

    def kill9(self):
        """SIGKILL the OSD and reap it (its memstore contents are lost)."""
        proc, self.proc = self.proc, None
        _stop_proc(proc, signal.SIGKILL)

    def restart(self):
        """stop() then start(); returns self with the new ``addr``."""
        self.stop()
        return self.start()


# --------------------------------------------------------------------------
# One monitor per process

_shared = {}
_shared_lock = threading.Lock()


def _stop_shared():
    for mon in list(_shared.values()):
        mon.stop()
    _shared.clear()


atexit.register(_stop_shared)


def shared_monitor(auth="none", osds=0, release=DEFAULT_RELEASE, key_type=None):
    """A monitor with the given auth (of *release*, with *key_type*; see
    CephMonitor), started on first use and stopped at process exit.  Calls
    ensure_release() first.  If it has died (e.g. a test used kill9()), it
    is started again.

    With *osds*, make sure at least that many OSDs (osd.0 ...) run, adding
    or restarting them as needed.  A restarted OSD has a new ``addr``; a
    kill9()ed one has also lost its objects."""
    ensure_release(release)
    key = (auth, release, key_type or "aes")
    with _shared_lock:
        mon = _shared.get(key)
        if mon is None:
            mon = _shared[key] = CephMonitor(auth=auth, release=release, key_type=key_type)
        if not mon.running:
            mon.start()
        for i in range(osds):
            osd = mon.osds.get(i)
            if osd is None:
                mon.add_osd(i)
            elif not osd.running:
                osd.start()
        return mon


# --------------------------------------------------------------------------
# python3 -m tests.cephlab build [RELEASE ...]


def main(argv=None):
    """``build [RELEASE ...]``: build the chroots (all by default) in
    parallel, as root; as non-root print how to and exit 0, unless CI is
    set (then exit 1)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python3 -m tests.cephlab",
                                     description="Build the Ceph release chroots the interop tests use.")
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build (or find cached) chroots, in parallel")
    build.add_argument("releases", nargs="*", default=list(CHROOT_RELEASES),
                       help="default: %s" % " ".join(CHROOT_RELEASES))
    args = parser.parse_args(argv)
    for release in args.releases:
        if not release_info(release).in_chroot:
            parser.error("%s is the host's Ceph (make ceph-deps installs it)" % release)
    if not _is_root():
        missing = [r for r in args.releases if not chroot_ready(r)]
        if not missing:
            print("cephlab: chroots present: %s (running them needs root)"
                  % " ".join(chroot_path(r) for r in args.releases))
            return 0
        print("cephlab: NOTE: the chroots of %s are not built in %s and only root can build them;"
              % (" ".join(missing), chroot_cache()))
        print("cephlab: tests on those releases will be SKIPPED (or FAIL when CI is set). To build them:")
        print("cephlab:     sudo python3 -m tests.cephlab build %s" % " ".join(missing))
        return 1 if _in_ci() else 0
    started = time.monotonic()
    results = build_chroots(args.releases)
    failed = False
    for release in args.releases:
        result = results[release]
        if isinstance(result, Exception):
            failed = True
            print("cephlab: %s: FAILED: %s" % (release, result), file=sys.stderr)
        else:
            print("cephlab: %s: %s" % (release, result))
    print("cephlab: chroots ready in %.0f s" % (time.monotonic() - started))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
