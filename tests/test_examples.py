"""
The programs in examples/ run as a user would run them: as subprocesses,
against our own server and against a real monitor (tests/cephlab.py).
"""

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time

from twisted.trial.unittest import SynchronousTestCase

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, env.get("PYTHONPATH")]))
    return env


_readers = {}


def _readline(proc, timeout):
    """
    One line of the child's stdout, or '' at EOF or after timeout seconds.
    (A thread reads the pipe: select() on a buffered text pipe misses lines
    that are already in Python's buffer.)
    """
    lines = _readers.get(proc)
    if lines is None:
        lines = _readers[proc] = queue.Queue()

        def pump():
            for line in proc.stdout:
                lines.put(line)
            lines.put("")
        threading.Thread(target=pump, daemon=True).start()
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        return ""


def _rest(proc, timeout=5):
    """Everything left on the child's stdout (through the reader thread)."""
    out = ""
    while True:
        line = _readline(proc, timeout)
        if not line:
            return out
        out += line


def _msgr2tx(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "msgr2tx"] + list(args), capture_output=True, text=True,
                          timeout=timeout, env=_env())


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _established(port):
    """Whether a TCP connection to 127.0.0.1:port is ESTABLISHED (Linux /proc/net/tcp)."""
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            if fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                return True
    return False


class EchoServerExampleTests(SynchronousTestCase):
    def start(self, *args):
        proc = subprocess.Popen([sys.executable, os.path.join(EXAMPLES, "echo_server.py")] + list(args),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
        # cleanups run last-in first-out: kill first, so that closing a pipe
        # never waits on a reader thread blocked on a live child
        self.addCleanup(proc.stdout.close)
        self.addCleanup(proc.stderr.close)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        return proc

    def test_echo_server(self):
        proc = self.start("--listen", "tcp:0:interface=127.0.0.1", "--lossless")
        line = _readline(proc, 30)
        self.assertTrue(line.startswith("listening on v2:127.0.0.1:"), (line, proc.stderr.read()
                                                                         if proc.poll() is not None else ""))
        address = line.split()[-1]

        p = _msgr2tx("ping", address, "--count", "2", "--json")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(len(json.loads(p.stdout)["rtt_ms"]), 2)

        p = _msgr2tx("echo-test", "--target", address, "--count", "300", "--size", "512")
        self.assertEqual(p.returncode, 0, p.stderr)
        summary = json.loads(p.stdout)
        self.assertEqual((summary["received"], summary["duplicates"], summary["out_of_order"]), (300, 0, 0))

        # a client still connected when the server stops is closed cleanly
        client = subprocess.Popen([sys.executable, "-m", "msgr2tx", "ping", address, "--count", "1000000",
                                   "--timeout", "60"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, env=_env())
        self.addCleanup(lambda: client.poll() is None and client.kill())
        # wait until its connection is up (a loaded machine may take more
        # than a second to start the CLI)
        port = int(address.rsplit(":", 1)[1])
        deadline = time.monotonic() + 30
        while not _established(port) and client.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertTrue(_established(port), "the ping client did not connect within 30 s")
        time.sleep(0.5)  # the kernel completes the TCP handshake before the server accepts
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        err = proc.stderr.read()
        out = _rest(proc)
        self.assertEqual(proc.returncode, 0, err)
        self.assertIn("stopped after closing 1 connection(s)", out)
        _, cerr = client.communicate(timeout=30)
        self.assertEqual(client.returncode, 1)
        self.assertIn("closed the connection while we waited for KEEPALIVE2_ACK from %s" % address, cerr)

    def test_port_in_use(self):
        blocker = socket.socket()
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        self.addCleanup(blocker.close)
        proc = self.start("--listen", "tcp:%d:interface=127.0.0.1" % blocker.getsockname()[1])
        out, err = proc.communicate(timeout=30)
        self.assertEqual(proc.returncode, 1)
        self.assertIn("echo_server: error:", err)

    def test_tac_file(self):
        """The .tac variant runs under twistd (on a free port, from a patched copy)."""
        port = _free_port()
        with open(os.path.join(EXAMPLES, "echo_server.tac"), encoding="utf-8") as f:
            tac = f.read().replace("tcp:13300:", "tcp:%d:" % port)
        path = os.path.abspath(self.mktemp() + ".tac")
        with open(path, "w", encoding="utf-8") as f:
            f.write(tac)
        twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
        proc = subprocess.Popen([twistd, "-n", "--pidfile=", "-y", path], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, env=_env())
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        self.addCleanup(proc.stdout.close)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = _readline(proc, 1)
            if "msgr2 server listening" in line:
                break
        else:
            self.fail("twistd did not start listening")
        p = _msgr2tx("ping", "v2:127.0.0.1:%d" % port, "--count", "1")
        self.assertEqual(p.returncode, 0, p.stderr)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        out = _rest(proc)
        # newer twistd re-raises the signal once it has shut down cleanly
        self.assertIn(proc.returncode, (0, -signal.SIGTERM), out)
        self.assertIn("msgr2 server stopped", out)


class MonitorStatusRefusedTests(SynchronousTestCase):
    def test_auth_none_refused_in_words_at_once(self):
        from tests import cephlab
        mon = cephlab.shared_monitor(auth="cephx")
        started = time.monotonic()
        p = subprocess.run([sys.executable, os.path.join(EXAMPLES, "monitor_status.py"), "--mon", mon.addr,
                            "--count", "1"], capture_output=True, text=True, timeout=120, env=_env())
        self.assertLess(time.monotonic() - started, 20.0)   # not the 30 s timeout
        self.assertEqual(p.returncode, 1)
        self.assertIn("refused our login: the server refused auth none", p.stderr)
        self.assertIn("give --auth cephx --keyring PATH", p.stderr)
        self.assertNotIn("in time", p.stderr)


class MonitorStatusExampleTests(SynchronousTestCase):
    def setUp(self):
        from tests import cephlab
        self.mon = cephlab.shared_monitor(auth="none")

    def run_example(self, *args):
        return subprocess.run([sys.executable, os.path.join(EXAMPLES, "monitor_status.py"), "--mon", self.mon.addr]
                              + list(args), capture_output=True, text=True, timeout=120, env=_env())

    def test_status_every_second(self):
        started = time.monotonic()
        p = self.run_example("--count", "3")
        elapsed = time.monotonic() - started
        self.assertEqual(p.returncode, 0, p.stderr)
        lines = [json.loads(line) for line in p.stdout.splitlines()]
        self.assertEqual([line["iteration"] for line in lines], [1, 2, 3])
        for line in lines:
            self.assertEqual(line["result"], 0)
            self.assertEqual(line["output"]["fsid"], self.mon.fsid)
        self.assertGreaterEqual(elapsed, 2.0)  # one command a second

    def test_failed_command_exit_1(self):
        p = self.run_example("--count", "1", "--command", '{"prefix": "no such command"}')
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertEqual(json.loads(p.stdout)["result"], -22)

    def test_bad_usage_exit_2(self):
        p = self.run_example("--command", "not json")
        self.assertEqual(p.returncode, 2)
