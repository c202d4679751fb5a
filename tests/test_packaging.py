"""
What `pip install .` installs: the wheel and the sdist are built from a
copy of the source tree (with a stray dropin.cache planted in it) and their
file lists checked; then the wheel is installed into a fresh virtualenv and
`twistd --help` must list msgr2.

The install test takes about 15-40 s (it creates a venv and installs the
dependencies from the package index, or pip's cache); set
MSGR2TX_SKIP_SLOW=1 to skip it.
"""

import functools
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
import tarfile

from twisted.trial.unittest import SkipTest, SynchronousTestCase

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PLUGINS = ["twisted/plugins/msgr2tx_auth.py", "twisted/plugins/msgr2tx_services.py",
           "twisted/plugins/msgr2tx_twistd.py"]
_IGNORE = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "_trial_temp*", "__pycache__",
                                 ".ruff_cache", ".mypy_cache", "_build", ".state", "bench")


def _scratch():
    path = tempfile.mkdtemp(prefix="msgr2tx-pkg-")
    import atexit
    atexit.register(shutil.rmtree, path, True)
    return path


@functools.lru_cache(maxsize=None)
def _source_copy():
    """The source tree copied to a scratch dir, with a dropin.cache to leave out."""
    src = os.path.join(_scratch(), "src")
    shutil.copytree(ROOT, src, ignore=_IGNORE)
    with open(os.path.join(src, "twisted", "plugins", "dropin.cache"), "wb") as f:
        f.write(b"stale cache that must never be shipped")
    return src


def _run(args, cwd=None, timeout=300):
    p = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise AssertionError("%s failed with %d:\n%s\n%s" % (" ".join(args), p.returncode, p.stdout[-3000:],
                                                             p.stderr[-3000:]))
    return p


def _can_build_offline():
    try:
        import setuptools  # noqa: F401
        import wheel  # noqa: F401
    except ImportError:
        return False
    return True


@functools.lru_cache(maxsize=None)
def _wheel():
    out = os.path.join(_scratch(), "wheel")
    args = [sys.executable, "-m", "pip", "wheel", _source_copy(), "--no-deps", "-q", "-w", out]
    if _can_build_offline():
        args.append("--no-build-isolation")
    _run(args)
    (path,) = glob.glob(os.path.join(out, "msgr2tx-*.whl"))
    return path


@functools.lru_cache(maxsize=None)
def _sdist():
    try:
        import setuptools  # noqa: F401
    except ImportError:
        raise SkipTest("setuptools is not installed in this environment")
    out = os.path.join(_scratch(), "sdist")
    _run([sys.executable, "-c", "import setuptools; setuptools.setup()", "-q", "sdist", "--dist-dir", out],
         cwd=_source_copy())
    (path,) = glob.glob(os.path.join(out, "msgr2tx-*.tar.gz"))
    return path


class WheelContentsTests(SynchronousTestCase):
    def setUp(self):
        with zipfile.ZipFile(_wheel()) as z:
            self.names = z.namelist()
            self.entry_points = next(z.read(n).decode() for n in self.names if n.endswith("entry_points.txt"))

    def test_plugins_shipped(self):
        for name in PLUGINS:
            self.assertIn(name, self.names)

    def test_no_twisted_init(self):
        self.assertNotIn("twisted/__init__.py", self.names)
        self.assertNotIn("twisted/plugins/__init__.py", self.names)
        self.assertEqual([n for n in self.names if n.startswith("twisted/") and n not in PLUGINS], [])

    def test_no_dropin_cache(self):
        self.assertEqual([n for n in self.names if "dropin.cache" in n], [])

    def test_py_typed(self):
        self.assertIn("msgr2tx/py.typed", self.names)

    def test_modules(self):
        for name in ("msgr2tx/service.py", "msgr2tx/cli.py", "msgr2tx/core/connection.py",
                     "msgr2tx/auth/keyring.py"):
            self.assertIn(name, self.names)
        self.assertEqual([n for n in self.names if n.endswith((".pyc", ".pyo")) or "__pycache__" in n], [])
        self.assertEqual([n for n in self.names if n.split("/")[0] in ("tests", "examples", "docs", "bench")], [])

    def test_every_subpackage(self):
        # setup.cfg lists packages by hand: a new msgr2tx/ subpackage must be added there
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        for dirpath, dirnames, filenames in os.walk(os.path.join(here, "msgr2tx")):
            dirnames[:] = [d for d in dirnames if d != "__pycache__"]
            if "__init__.py" in filenames:
                rel = os.path.relpath(os.path.join(dirpath, "__init__.py"), here).replace(os.sep, "/")
                self.assertIn(rel, self.names)

    def test_license(self):
        self.assertTrue(any(n.endswith((".dist-info/LICENSE", "licenses/LICENSE")) for n in self.names),
                        self.names)
        metadata = next(n for n in self.names if n.endswith(".dist-info/METADATA"))
        with zipfile.ZipFile(_wheel()) as z:
            self.assertIn("License: MIT", z.read(metadata).decode())

    def test_scripts(self):
        self.assertIn("msgr2tx = msgr2tx.__main__:run", self.entry_points)
        self.assertIn("msgr2tx-regen-plugins = msgr2tx.cli:regen_plugins", self.entry_points)


class SdistContentsTests(SynchronousTestCase):
    def setUp(self):
        with tarfile.open(_sdist()) as t:
            top = t.getnames()[0].split("/")[0]
            self.names = [n[len(top) + 1:] for n in t.getnames() if "/" in n]

    def test_contents(self):
        for name in PLUGINS + ["msgr2tx/py.typed", "setup.cfg", "pyproject.toml", "docs/conf.py",
                               "docs/index.md", "examples/echo_server.py", "tests/test_packaging.py",
                               "LICENSE"]:
            self.assertIn(name, self.names)

    def test_nothing_generated(self):
        self.assertEqual([n for n in self.names if "dropin.cache" in n or "__pycache__" in n
                          or n.endswith(".pyc")], [])
        self.assertNotIn("twisted/__init__.py", self.names)
        self.assertNotIn("twisted/plugins/__init__.py", self.names)


class InstallTests(SynchronousTestCase):
    """pip install the wheel into a fresh venv (dependencies from the index)."""

    def setUp(self):
        if os.environ.get("MSGR2TX_SKIP_SLOW"):
            raise SkipTest("MSGR2TX_SKIP_SLOW is set")
        self.venv = os.path.join(_scratch(), "venv")
        _run([sys.executable, "-m", "venv", self.venv])
        self.bin = os.path.join(self.venv, "bin")
        _run([os.path.join(self.bin, "python"), "-m", "pip", "install", "-q", _wheel()], timeout=600)

    def test_twistd_lists_msgr2_and_cache_regenerates(self):
        # run outside the source tree, so nothing is imported from it
        cwd = _scratch()
        p = _run([os.path.join(self.bin, "twistd"), "--help"], cwd=cwd)
        self.assertIn("msgr2", p.stdout)
        site = _run([os.path.join(self.bin, "python"), "-c",
                     "import msgr2tx, os; print(os.path.dirname(os.path.dirname(msgr2tx.__file__)))"],
                    cwd=cwd).stdout.strip()
        self.assertTrue(site.startswith(self.venv), site)
        plugins = os.path.join(site, "twisted", "plugins")
        self.assertTrue(os.path.exists(os.path.join(plugins, "msgr2tx_twistd.py")))
        self.assertTrue(os.path.exists(os.path.join(site, "msgr2tx", "py.typed")))
        # the documented post-install step (re)builds the cache
        cache = os.path.join(plugins, "dropin.cache")
        if os.path.exists(cache):
            os.unlink(cache)
        p = _run([os.path.join(self.bin, "msgr2tx-regen-plugins")], cwd=cwd)
        self.assertIn("auth plugins: cephx, none", p.stdout)
        self.assertTrue(os.path.exists(cache))
        p = _run([os.path.join(self.bin, "twistd"), "msgr2", "--help-auth"], cwd=cwd)
        self.assertIn("cephx", p.stdout)
