"""
Shared helpers for the msgr2tx benchmarks.

Every benchmark script in this directory can run on its own with the
project's Python (``.venv/bin/python bench/bulk.py``); ``bench/run.py``
(``make bench``) runs them all in one go.  Progress goes to stderr; each
script prints one ``RESULT {json}`` line per figure on stdout and a
human-readable summary as its very last line.
"""

import dataclasses
import json
import os
import resource
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)  # msgr2tx (when not installed) and tests.cephlab

HOST = "127.0.0.1"
#: transport.bufferSize for every TCP transport of every benchmark, msgr2tx
#: and plain Twisted alike: the size of each recv() and the amount of
#: buffered output above which a streaming producer is paused.  TCP_NODELAY
#: is on everywhere (msgr2tx sets it itself).  Socket buffers are left to
#: the kernel's autotuning on both sides.
BUFFER_SIZE = 1 << 20
MiB = 1 << 20

# message types private to the benchmarks (any unregistered type is a GenericMessage)
T_BULK = 0x7F10
T_END = 0x7F11
T_END_ACK = 0x7F12
T_SMALL = 0x7F13


def log(fmt, *args):
    sys.stderr.write("[bench %s] %s\n" % (time.strftime("%H:%M:%S"), fmt % args if args else fmt))
    sys.stderr.flush()


#: --reactor choices: Twisted's default for the platform (epoll on Linux),
#: asyncioreactor on the standard asyncio loop, asyncioreactor on uvloop.
REACTORS = ("default", "asyncio", "uvloop")


def add_reactor_option(parser):
    parser.add_argument("--reactor", choices=REACTORS, default="default",
                        help="event loop of the benchmark processes (default: Twisted's default reactor)")


def install_reactor(name):
    """Install the reactor chosen by --reactor; call before anything imports twisted.internet.reactor."""
    if name in (None, "default"):
        return
    import asyncio
    if name == "uvloop":
        import uvloop
        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    from twisted.internet import asyncioreactor
    asyncioreactor.install(loop)


def reactor_name():
    """The reactor in use, with the asyncio loop's class for asyncioreactor."""
    from twisted.internet import reactor
    name = type(reactor).__name__
    loop = getattr(reactor, "_asyncioEventloop", None)
    if loop is not None:
        name += "(%s.%s)" % (type(loop).__module__, type(loop).__name__)
    return name


def tune(transport):
    """The same transport settings for msgr2tx and the plain Twisted floors."""
    transport.bufferSize = BUFFER_SIZE
    try:
        transport.setTcpNoDelay(True)  # msgr2tx sets it on every connection anyway
    except Exception:
        pass


def tuned_protocol_class():
    """A Msgr2Protocol that applies L{tune} to its transport first."""
    from msgr2tx.protocol import Msgr2Protocol

    class TunedMsgr2Protocol(Msgr2Protocol):
        def connectionMade(self):
            tune(self.transport)
            super().connectionMade()

    return TunedMsgr2Protocol


def raise_nofile(want):
    """Raise RLIMIT_NOFILE of this process (never of the machine) to want (or the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def rss_bytes(pid="self"):
    with open("/proc/%s/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS for %s" % pid)


def cpu_seconds(pid="self"):
    """user+system CPU seconds of a process (from /proc)."""
    with open("/proc/%s/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


# ---- keys and configs ----------------------------------------------------------

def make_keyring(path):
    """A keyring with a fresh client.admin key, for in-process cephx servers."""
    from msgr2tx.auth.cephx_proto import CryptoKey
    from msgr2tx.auth.keyring import Keyring
    from msgr2tx.core.encoding import EntityName

    ring = Keyring()
    ring.add(EntityName.parse("client.admin"), CryptoKey.generate(),
             {"mon": "allow *", "osd": "allow *"})
    ring.save(path)
    return path


def mode_value(name):
    from msgr2tx.core.constants import ConnectionMode
    return ConnectionMode.parse(name)


def client_config(mode, rev=1, **kw):
    from msgr2tx.core.config import ConnectionConfig
    return ConnectionConfig(modes=(mode_value(mode),), revision1=(int(rev) == 1), **kw)


def server_config(modes=("secure", "crc"), **kw):
    from msgr2tx.core.config import ConnectionConfig
    from msgr2tx.core.encoding import EntityType
    return ConnectionConfig(entity_type=EntityType.MON, entity_num=0, lossy=True,
                            modes=tuple(mode_value(m) for m in modes), **kw)


def client_auth(auth, keyring):
    """A fresh client auth handler list: ``cephx`` (with keyring) or ``none``."""
    if auth == "cephx":
        from msgr2tx.auth.cephx import CephxAuthProvider
        return [CephxAuthProvider().clientHandler("keyring=%s" % keyring)]
    from msgr2tx.auth.none import NoneClientHandler
    return [NoneClientHandler()]


def server_auth(auth, keyring):
    if auth == "cephx":
        from msgr2tx.auth.cephx import CephxAuthProvider
        return [CephxAuthProvider().serverHandler("keyring=%s" % keyring)]
    from msgr2tx.auth.none import NoneServerHandler
    return [NoneServerHandler()]


# ---- child processes -------------------------------------------------------------

def python():
    return sys.executable


def spawn(args, **kw):
    """Start `python bench/<script> args...`; stdout is a pipe of text lines."""
    return subprocess.Popen([python()] + list(args), stdout=subprocess.PIPE, stdin=subprocess.PIPE,
                            text=True, bufsize=1, cwd=ROOT, **kw)


def read_line(proc, prefix, timeout=60.0):
    """Read stdout lines of proc until one starts with prefix; return the rest of it."""
    import select
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise RuntimeError("timed out waiting for %r from %s" % (prefix, proc.args))
        r, _, _ = select.select([proc.stdout], [], [], left)
        if not r:
            continue
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError("%s exited (%s) before printing %r" % (proc.args, proc.poll(), prefix))
        line = line.rstrip("\n")
        if line.startswith(prefix):
            return line[len(prefix):].strip()


def stop(proc, timeout=10.0):
    if proc.poll() is None:
        try:
            proc.stdin.close()
        except Exception:
            pass
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def exit_on_stdin_eof(reactor):
    """In a child: stop the reactor when the parent closes our stdin."""
    from twisted.internet import stdio
    from twisted.internet.protocol import Protocol

    class Watch(Protocol):
        def dataReceived(self, data):
            pass

        def connectionLost(self, reason):
            if reactor.running:
                reactor.stop()

    stdio.StandardIO(Watch(), stdout=os.open(os.devnull, os.O_WRONLY))


def emit(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def result(name, value, unit, ratio=None, baseline=None, baseline_name=None, target=None, **extra):
    """Print a machine-readable RESULT line; return the record."""
    rec = {"name": name, "value": value, "unit": unit, "ratio": ratio, "baseline": baseline,
           "baseline_name": baseline_name, "target": target}
    rec.update(extra)
    emit("RESULT " + json.dumps(rec))
    return rec


def fmt_record(rec):
    v = rec["value"]
    s = "%s: %s %s" % (rec["name"], _num(v), rec["unit"])
    if rec.get("ratio") is not None:
        s += ", %.2fx %s (%s %s)" % (rec["ratio"], rec.get("baseline_name") or "baseline",
                                     _num(rec["baseline"]), rec.get("baseline_unit", rec["unit"]))
    if rec.get("target"):
        s += "  [target %s]" % rec["target"]
    return s


def _num(v):
    if v is None:
        return "-"
    if isinstance(v, float):
        return "%.4g" % v if abs(v) < 10 else "{:,.1f}".format(v)
    return "{:,}".format(v)


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def asdict(obj):
    return dataclasses.asdict(obj)
