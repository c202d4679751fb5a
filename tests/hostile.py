"""
Helpers for tests and benchmarks that play a hostile or slow peer against a
real msgr2tx server: the server runs in its own process (so its memory can
be measured), and the peer is a core client driven over a blocking socket,
which lets a test send exactly the bytes it wants and read nothing.

    server = ServerProcess(send_queue_bytes=8 << 20)
    client = SyncClient(server.port)
    client.handshake()
    ...
    server.rss()          # bytes
    server.stop()
"""

import json
import os
import select
import socket
import subprocess
import sys
import time
from typing import List, Optional

from msgr2tx.auth.none import NoneClientHandler
from msgr2tx.core import events as E
from msgr2tx.core.config import ConnectionConfig
from msgr2tx.core.connection import Msgr2Connection, Role, State
from msgr2tx.core.encoding import EntityName, entity_addr_t

ADMIN = EntityName.parse("client.admin")

_SERVER = r"""
import json, sys
from twisted.internet import reactor
from twisted.logger import globalLogBeginner, textFileLogObserver
from msgr2tx.auth.none import NoneServerHandler
from msgr2tx.core.config import ConnectionConfig
from msgr2tx.core.encoding import EntityType
from msgr2tx.service import Msgr2ServerService
from msgr2tx.services import EchoReceiver

args = json.loads(sys.argv[1])
globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stderr)], redirectStandardIO=False)
config = ConnectionConfig(entity_type=EntityType.MON, entity_num=0, **args["config"])
service = Msgr2ServerService("tcp:0:interface=127.0.0.1", [NoneServerHandler()], EchoReceiver(), config,
                             handshake_timeout=args["handshake_timeout"], **args["service"])
service.startService()

def listening(ports):
    sys.stdout.write("PORT %d\n" % ports[0].getHost().port)
    sys.stdout.flush()

service.whenListening().addCallback(listening)
reactor.run()
"""


def rss_of(pid: int) -> int:
    """Resident set size of a process, in bytes (Linux /proc)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS for pid %d" % pid)


class ServerProcess:
    """
    A msgr2tx echo server (auth none, crc, lossy) in a child process.
    Keyword arguments not listed go to its L{ConnectionConfig}; C{service}
    to L{Msgr2ServerService}.  Its log goes to C{log_path}.
    """

    def __init__(self, handshake_timeout: Optional[float] = 10.0, service: Optional[dict] = None,
                 log_path: Optional[str] = None, **config) -> None:
        args = json.dumps({"config": config, "handshake_timeout": handshake_timeout, "service": service or {}})
        self.log_path = log_path or "/dev/null"
        self._log = open(self.log_path, "wb")
        env = dict(os.environ)
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
        self.proc = subprocess.Popen([sys.executable, "-c", _SERVER, args], stdout=subprocess.PIPE,
                                     stderr=self._log, env=env)
        line = self.proc.stdout.readline().decode()
        if not line.startswith("PORT "):
            self.stop()
            raise RuntimeError("server did not start: %r" % line)
        self.port = int(line.split()[1])

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss(self) -> int:
        return rss_of(self.proc.pid)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self._log.close()

    def log_text(self) -> str:
        with open(self.log_path, errors="replace") as f:
            return f.read()


class SyncClient:
    """
    A msgr2 client core (auth none, crc) over a blocking socket to
    127.0.0.1:C{port}.  L{handshake} runs to READY; after that the test sends
    what it likes with L{send_parts} and reads only when it calls L{read}.
    """

    def __init__(self, port: int, config: Optional[ConnectionConfig] = None, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        local = self.sock.getsockname()
        self.conn = Msgr2Connection(config or ConnectionConfig(), Role.CLIENT,
                                    entity_addr_t.parse("v2:%s:%d" % local),
                                    entity_addr_t.parse("v2:127.0.0.1:%d" % port), nonce=4242, cookie=7)
        self.auth = NoneClientHandler(ADMIN)
        self.messages: List = []
        self.timeout = timeout

    def handshake(self) -> None:
        self.conn.initiate()
        self.flush()
        deadline = time.monotonic() + self.timeout
        while self.conn.state is not State.READY:
            if time.monotonic() > deadline:
                raise AssertionError("no READY within %gs" % self.timeout)
            data = self.sock.recv(1 << 16)
            if not data:
                raise ConnectionError("server closed during the handshake")
            self.feed(data)

    def feed(self, data: bytes, flush: bool = True) -> None:
        """
        Feed received bytes to the core.  With C{flush} false, what the core
        answers (ACKs) stays queued in it, for a caller that is in the middle
        of writing a frame itself.
        """
        events = self.conn.receive_data(data)
        while events:
            for event in events:
                self._answer(event)
            events = self.conn.receive_data()
        if flush:
            self.flush()

    def _answer(self, event) -> None:
        conn = self.conn
        if isinstance(event, E.AuthRequestNeeded):
            conn.send_auth_request(self.auth.method, self.auth.build_request(conn.peer_entity_type),
                                   list(self.auth.allowed_modes))
        elif isinstance(event, E.AuthDoneReceived):
            conn.auth_finish(*self.auth.handle_done(event.global_id, event.con_mode, event.payload))
        elif isinstance(event, E.MessageReceived):
            self.messages.append(event.message)

    def flush(self) -> None:
        out = b"".join(self.conn.data_to_send())
        if out:
            self.sock.sendall(out)

    def wait_closed(self, timeout: float) -> float:
        """Read (and drop) until the server closes; returns the seconds it took, or raises."""
        start = time.monotonic()
        self.sock.settimeout(0.2)
        while time.monotonic() - start < timeout:
            try:
                data = self.sock.recv(1 << 16)
            except socket.timeout:
                continue
            except (ConnectionResetError, BrokenPipeError):
                return time.monotonic() - start
            if not data:
                return time.monotonic() - start
        raise AssertionError("the server kept the connection open for %gs" % timeout)

    def close(self) -> None:
        self.sock.close()


def closed_within(sock: socket.socket, timeout: float) -> Optional[float]:
    """Seconds until the peer closed C{sock} (EOF or reset), reading and dropping data; None if it did not."""
    start = time.monotonic()
    sock.setblocking(False)
    while True:
        left = timeout - (time.monotonic() - start)
        if left <= 0:
            return None
        r, _, _ = select.select([sock], [], [], left)
        if not r:
            continue
        try:
            data = sock.recv(1 << 16)
        except BlockingIOError:
            continue
        except OSError:
            return time.monotonic() - start
        if not data:
            return time.monotonic() - start
