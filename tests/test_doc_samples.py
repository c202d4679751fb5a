"""
The Python samples in docs/ run as shown.

Every ```python block in the pages below carries a marker on the line
before it, an HTML comment that neither GitHub nor Sphinx shows:

    <!-- sample: fragment -->          part of a program: not run
    <!-- sample: NAME NEEDS -->        a whole program, saved as NAME and run

NEEDS says what the program is run against:

    none       nothing: ``python NAME``
    echo       ``python NAME ADDRESS`` with our echo server (examples/echo_server.py on tcp:0)
    mon        ``python NAME ADDRESS`` with a real auth-none monitor (cephlab.shared_monitor)
    mon-cephx  ``python NAME ADDRESS KEYRING`` with a real cephx monitor and its admin keyring
    tac        ``twistd -ny NAME``, then ``msgr2tx ping`` to each address it listens on
    trial      ``python -m twisted.trial`` on the module NAME
    proxy      ``python NAME PORT`` with ``twistd msgr2 --policy stateful`` on PORT, then
               ``msgr2tx echo-test --via`` the address it prints
    module     a file of a plugin package (NAME is its path in the package): the page's
               modules are written out together and the plugin is tried as the page shows

A program's output is compared with the ```console block that follows it
where that block shows ``$ python NAME``: line by line, with numbers,
hex strings and cookies free to differ.  An unmarked block fails the test,
so a new sample is either run or declared a fragment.
"""

import os
import re
import socket
import subprocess
import sys
import time

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests.test_examples import EXAMPLES, _env, _free_port, _readline

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = ("embedding", "auth-plugins", "service-plugins", "testing", "quickstart", "twistd")
MARKER = re.compile(r"^<!-- sample: (.*?) -->$")
NEEDS = ("none", "echo", "mon", "mon-cephx", "tac", "trial", "proxy", "module")
TIMEOUT = 120


def samples():
    """(page, line, name, needs, code, expected_output or None) for every python block."""
    found = []
    for page in PAGES:
        with open(os.path.join(ROOT, "docs", page + ".md"), encoding="utf-8") as f:
            lines = f.read().split("\n")
        i = 0
        while i < len(lines):
            if lines[i].startswith("```python"):
                marker = MARKER.match(lines[i - 1]) if i else None
                j = i + 1
                while not lines[j].startswith("```"):
                    j += 1
                code = "\n".join(lines[i + 1:j]) + "\n"
                words = marker.group(1).split() if marker else []
                name, needs = (words + [None, None])[:2] if words != ["fragment"] else ("fragment", None)
                found.append((page, i + 1, name, needs, code, _expected(lines, j + 1, name)))
                i = j
            i += 1
    return found


def _expected(lines, start, name):
    """The output under ``$ python NAME ...`` in the console block after line start, or None."""
    i = start
    while i < len(lines) and not lines[i].strip():
        i += 1
    if i >= len(lines) or lines[i] != "```console":
        return None
    out, taking = [], False
    for line in lines[i + 1:]:
        if line.startswith("```"):
            break
        if line.startswith("$ "):
            if taking:
                break
            taking = line.startswith("$ python %s" % name)
        elif taking:
            out.append(line)
    return out if taking or out else None


_NUMBER = re.compile(r"0x[0-9a-f]+|[0-9a-f]*[0-9][0-9a-f]*|\d+(\.\d+)?")


def _shape(line):
    """A line with its numbers and hex strings (which vary from run to run) replaced by #."""
    return _NUMBER.sub("#", line.strip())


def _port_free(port):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def _have(tool):
    import shutil
    return shutil.which(tool) is not None


def _accepts(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


class DocSampleTests(SynchronousTestCase):

    def test_every_block_is_marked(self):
        bad = ["docs/%s.md:%d" % (page, line) for page, line, name, needs, code, out in samples()
               if name is None or (name != "fragment" and needs not in NEEDS)]
        self.assertEqual(bad, [], "python blocks without a valid <!-- sample: ... --> marker")

    def test_programs_compile(self):
        for page, line, name, needs, code, out in samples():
            if name != "fragment":
                compile(code, "docs/%s.md:%d" % (page, line), "exec")

    def test_no_sample_listens_on_a_ceph_port(self):
        """Fragments included: a server endpoint string never names a monitor's or an OSD's port."""
        bad = []
        for page, line, name, needs, code, out in samples():
            for port in map(int, re.findall(r"[\"'\[]tcp6?:(\d+)", code)):
                if port in (3300, 6789) or 6800 <= port <= 7300:
                    bad.append("docs/%s.md:%d: tcp:%d" % (page, line, port))
        self.assertEqual(bad, [])

    # -- running them

    def run_sample(self, name, needs=None):
        matches = [s for s in samples() if s[2] == name and (needs is None or s[3] == needs)]
        self.assertEqual(len(matches), 1, "no single sample named %s" % name)
        page, line, name, needs, code, expected = matches[0]
        where = "docs/%s.md:%d (%s)" % (page, line, name)
        workdir = os.path.abspath(self.mktemp())
        os.makedirs(workdir)
        path = os.path.join(workdir, name)
        for port in sorted(set(re.findall(r":(133\d\d)\b", code))):
            # the documented free ports, unless another program here holds one now (e.g. a second test run)
            if not _port_free(int(port)):
                code = re.sub(r":%s\b" % port, ":%d" % _free_port(), code)
        with open(path, "w", encoding="utf-8") as f:
            f.write(code)
        ceph_ports = [p for p in map(int, re.findall(r"(?:tcp6?:|127\.0\.0\.1:)(\d+)", code))
                      if p in (3300, 6789) or 6800 <= p <= 7300]
        self.assertEqual(ceph_ports, [], "%s uses a port a Ceph daemon uses" % where)
        runner = getattr(self, "needs_" + needs.replace("-", "_"))
        out = runner(path, workdir, where)
        if expected is not None and out is not None:
            self.assertEqual([_shape(x) for x in out.splitlines()], [_shape(x) for x in expected],
                             "%s printed something else than the page shows:\n%s" % (where, out))

    def python(self, args, workdir, where):
        p = subprocess.run([sys.executable] + args, capture_output=True, text=True, timeout=TIMEOUT,
                           env=_env(), cwd=workdir)
        self.assertEqual(p.returncode, 0, "%s failed:\n%s%s" % (where, p.stdout, p.stderr))
        self.assertNotIn("Traceback", p.stderr, where)
        return p.stdout

    def spawn(self, args, workdir):
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env=_env(), cwd=workdir)
        # (stdout is left to the reader thread of _readline, which closes with the pipe)
        self.addCleanup(lambda: proc.poll() is None and (proc.kill(), proc.wait()))
        return proc

    def wait_for(self, proc, text, where):
        deadline = time.monotonic() + 30
        seen = []
        while time.monotonic() < deadline:
            line = _readline(proc, 1)
            seen.append(line)
            if text in line:
                return line
        self.fail("%s: %r never appeared:\n%s" % (where, text, "".join(seen)))

    def needs_none(self, path, workdir, where):
        return self.python([path], workdir, where)

    def needs_echo(self, path, workdir, where):
        server = self.spawn([sys.executable, os.path.join(EXAMPLES, "echo_server.py"),
                             "--listen", "tcp:0:interface=127.0.0.1"], workdir)
        address = self.wait_for(server, "listening on v2:", where).split()[-1]
        return self.python([path, address], workdir, where)

    def monitor(self, auth):
        from tests import cephlab
        try:
            return cephlab.shared_monitor(auth)
        except (SkipTest, RuntimeError) as e:
            if os.environ.get("CI"):
                raise
            raise SkipTest("no Ceph here: %s" % (e,))

    def needs_mon(self, path, workdir, where):
        return self.python([path, self.monitor("none").addr], workdir, where)

    def needs_mon_cephx(self, path, workdir, where):
        mon = self.monitor("cephx")
        return self.python([path, mon.addr, mon.keyring], workdir, where)

    def needs_trial(self, path, workdir, where):
        module = os.path.splitext(os.path.basename(path))[0]
        out = self.python(["-m", "twisted.trial", module], workdir, where)
        self.assertIn("PASSED", out, where)
        return None

    def needs_tac(self, path, workdir, where):
        with open(path, encoding="utf-8") as f:
            tac = f.read()
        ports = sorted(set(re.findall(r"tcp6?:(\d+):", tac)))
        self.assertEqual(len(ports), 1, "%s: one fixed port expected" % where)
        port = int(ports[0])
        twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
        server = self.spawn([twistd, "-n", "--pidfile=", "-y", path], workdir)
        deadline = time.monotonic() + 30
        while not _accepts(port):
            self.assertIsNone(server.poll(), "%s: twistd exited" % where)
            self.assertLess(time.monotonic(), deadline, "%s: twistd never listened" % where)
            time.sleep(0.2)
        hosts = ["127.0.0.1"] + (["[::1]"] if "tcp6:" in tac else [])
        for host in hosts:
            p = subprocess.run([sys.executable, "-m", "msgr2tx", "ping", "v2:%s:%d" % (host, port), "--count", "1"],
                               capture_output=True, text=True, timeout=60, env=_env())
            self.assertEqual(p.returncode, 0, "%s: ping %s failed:\n%s" % (where, host, p.stderr))
        return None

    def needs_proxy(self, path, workdir, where):
        port = _free_port()
        twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
        self.spawn([twistd, "-n", "--pidfile=", "msgr2", "--listen", "tcp:%d:interface=127.0.0.1" % port,
                    "--policy", "stateful"], workdir)
        proxy = self.spawn([sys.executable, path, str(port)], workdir)
        via = self.wait_for(proxy, "proxy on v2:", where).split()[-1]
        p = subprocess.run([sys.executable, "-m", "msgr2tx", "echo-test", "--target", "v2:127.0.0.1:%d" % port,
                            "--via", via, "--count", "300", "--size", "1024", "--timeout", "90"],
                           capture_output=True, text=True, timeout=TIMEOUT, env=_env())
        self.assertEqual(p.returncode, 0, "%s: echo-test through the proxy failed:\n%s%s"
                         % (where, p.stdout, p.stderr))
        return None

    # -- plugin packages: the page's modules written out together, then used through twistd msgr2

    def plugin_package(self, page):
        workdir = os.path.abspath(self.mktemp())
        written = []
        for p, line, name, needs, code, out in samples():
            if p == page and needs == "module":
                path = os.path.join(workdir, name)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "w", encoding="utf-8") as f:
                    f.write(code)
                written.append(name)
                package = name.split("/")[0]
                if package != "twisted" and not os.path.exists(os.path.join(workdir, package, "__init__.py")):
                    open(os.path.join(workdir, package, "__init__.py"), "w").close()
        self.assertTrue(written, "no module samples on docs/%s.md" % page)
        env = _env()
        env["PYTHONPATH"] = os.pathsep.join([workdir, env["PYTHONPATH"]])
        return workdir, env

    def twistd_msgr2(self, workdir, env, *args):
        """twistd msgr2 on a free port with the plugin package importable; its address."""
        port = _free_port()
        twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
        proc = subprocess.Popen([twistd, "-n", "--pidfile=", "msgr2", "--listen", "tcp:%d:interface=127.0.0.1" % port]
                                + list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env=env, cwd=workdir)
        self.addCleanup(lambda: proc.poll() is None and (proc.kill(), proc.wait()))
        deadline = time.monotonic() + 30
        while not _accepts(port):
            if proc.poll() is not None:
                self.fail("twistd msgr2 exited:\n%s" % (proc.stdout.read(),))
            self.assertLess(time.monotonic(), deadline, "twistd msgr2 never listened")
            time.sleep(0.2)
        return proc, "v2:127.0.0.1:%d" % port

    def ping(self, address, env, *args):
        return subprocess.run([sys.executable, "-m", "msgr2tx", "ping", address, "--count", "1"] + list(args),
                              capture_output=True, text=True, timeout=60, env=env)

    def test_auth_plugin_allowlist(self):
        """docs/auth-plugins.md: the allowlist plugin lets client.admin in and refuses client.bob."""
        workdir, env = self.plugin_package("auth-plugins")
        twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
        listed = subprocess.run([twistd, "msgr2", "--help-auth"], capture_output=True, text=True, timeout=60,
                                env=env, cwd=workdir)
        self.assertIn("allowlist auth none restricted to the names in a file", listed.stdout, listed.stderr)
        with open(os.path.join(workdir, "names.txt"), "w") as f:
            f.write("client.admin\n")
        server, address = self.twistd_msgr2(workdir, env, "--auth", "allowlist:file=names.txt")
        p = self.ping(address, env)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("(mon.0) mode=crc", p.stdout)
        p = self.ping(address, env, "--name", "client.bob")
        self.assertEqual(p.returncode, 1, p.stdout)
        self.assertIn("msgr2tx: error: the peer at %s refused client.bob (auth none: permission denied)" % address,
                      p.stderr)
        server.kill()
        server.wait()
        self.assertIn("client.bob is not on the list", server.stdout.read())

    def test_service_plugin_count(self):
        """docs/service-plugins.md: the count service answers MPing and logs its count."""
        workdir, env = self.plugin_package("service-plugins")
        twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
        listed = subprocess.run([twistd, "msgr2", "--help-services"], capture_output=True, text=True, timeout=60,
                                env=env, cwd=workdir)
        self.assertIn("count    Answer MPing and log a running message count (count:every=N).", listed.stdout,
                      listed.stderr)
        server, address = self.twistd_msgr2(workdir, env, "--auth", "none", "--mode", "crc",
                                            "--service", "count:every=1")
        p = subprocess.run(["ceph", "-c", "/dev/null", "-m", address, "--auth_client_required", "none",
                            "ping", "mon.noname-a"], capture_output=True, text=True, timeout=60, env=env) \
            if _have("ceph") else None
        if p is not None:
            self.assertEqual(p.returncode, 0, p.stderr)
        q = self.ping(address, env)
        self.assertEqual(q.returncode, 0, q.stderr)
        server.kill()
        server.wait()
        log = server.stdout.read()
        self.assertIn("client.", log)
        self.assertIn("connected in crc mode", log)
        if p is not None:
            self.assertIn("1 messages so far", log)

    # -- one test per program, so a failure names it

    def test_embedding_client(self):
        self.run_sample("client.py")

    def test_embedding_monclient(self):
        self.run_sample("mon.py")

    def test_embedding_monclient_cephx(self):
        self.run_sample("mon_cephx.py")

    def test_embedding_tac(self):
        self.run_sample("server.tac")

    def test_embedding_script(self):
        self.run_sample("script.py")

    def test_embedding_lossless(self):
        self.run_sample("lossless.py")

    def test_embedding_peers(self):
        self.run_sample("peers.py")

    def test_embedding_flow(self):
        self.run_sample("flow.py")

    def test_testing_core_pair(self):
        self.run_sample("test_core_pair.py")

    def test_testing_echo_faults(self):
        self.run_sample("test_echo_faults.py")

    def test_testing_proxy(self):
        self.run_sample("test_proxy.py")

    def test_testing_cutting_proxy(self):
        self.run_sample("cutting_proxy.py")

    def test_quickstart_keyring(self):
        self.run_sample("keyring.py")

    def test_twistd_tac(self):
        self.run_sample("echo.tac")

    def test_every_program_has_a_test(self):
        names = {name for page, line, name, needs, code, out in samples() if name != "fragment" and needs != "module"}
        tested = set(re.findall(r'run_sample\("([^"]+)"', open(__file__, encoding="utf-8").read()))
        self.assertEqual(names - tested, set(), "doc samples no test runs")
