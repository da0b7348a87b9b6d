"""What the fault runs share (``bash bench/soak``): our own redis-server, gunicorn, a TCP
proxy that loses replies, a PostgreSQL table lock, and the virtual clients that keep
their own expected state and compare it with the server's.

Everything listens on 127.0.0.1 only. Every process here is one we started, stopped by
its PID; every wait and every loop has a limit in count and in time.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv" / "bin"
COOKIE = "sessionid"
PASSWORD = "soak-password"  # bench/soak_views.py's
#: A request that takes longer than this counts as hung (gunicorn's own limit is 30 s).
REQUEST_TIMEOUT = 10.0
#: Ports we never use: the machine's Redis and Sentinel.
NEVER = {6379, 26379}


def log(text: str) -> None:
    print(text, flush=True)


def port_is_free(port: int) -> bool:
    if port in NEVER:
        return False
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def spare_port(start: int = 7400, stop: int = 7999) -> int:
    """A free port below the ephemeral range (a restarted server takes it again), checked
    right before use; the search starts at a random place so parallel runs spread out."""
    ports = list(range(start, stop))
    offset = random.randrange(len(ports))
    for port in ports[offset:] + ports[:offset]:
        if port_is_free(port):
            return port
    raise RuntimeError(f"no free port between {start} and {stop}")


def wait_for(what: str, condition: Callable[[], bool], timeout: float) -> None:
    import redis

    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError, ValueError, redis.RedisError):
            if condition():
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.02)


# --- redis-server -------------------------------------------------------------------------


class RedisServer:
    """A redis-server of ours on a spare port, AOF on (fsync every second), run in the
    foreground so that its PID is ours; stopped, paused and restarted by that PID."""

    def __init__(self, work: Path) -> None:
        self.port = spare_port()
        self.dir = work / f"redis-{self.port}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        if not port_is_free(self.port):
            raise RuntimeError(f"port {self.port} was taken while redis-server was down")
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--dir", str(self.dir), "--appendonly", "yes", "--appendfsync", "everysec"]
        args += ["--save", "", "--logfile", str(self.dir / "redis.log")]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # For bench/soak's clean-up, should this process die without stopping it.
        (self.dir / "pid").write_text(f"{self.proc.pid}\n")
        try:
            wait_for(f"redis-server on {self.port}", lambda: self.command("PING") is True, 15)
        except BaseException:
            self.stop()
            raise

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def pause(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def stop(self) -> None:
        """Graceful: SIGTERM, which flushes the AOF, then wait for the process to end."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.pid, signal.SIGCONT)  # a paused server cannot handle SIGTERM
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def restart(self, down: float) -> None:
        self.stop()
        time.sleep(down)
        self.start()

    def command(self, *args: str, timeout: float = 2.0) -> Any:
        """One command over a fresh connection (an admin's, not the site's)."""
        import redis

        client = redis.Redis(port=self.port, socket_timeout=timeout, socket_connect_timeout=timeout)
        try:
            reply = client.execute_command(*args)
        finally:
            client.close()
        return reply.decode() if isinstance(reply, bytes) else reply


# --- a TCP proxy that loses replies -------------------------------------------------------


class Proxy:
    """Forwards 127.0.0.1:<port> to Redis; when armed, the reply to the next request that
    contains the marker is thrown away after Redis ran it: with ``cut`` the connection is
    closed at once (the client sees a dropped connection and retries), with ``stall`` it
    is held silent until the client gives up (a timeout: the client does not retry).
    The idea of tests/tcp_proxy.py, with both ways of losing a reply."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._armed: tuple[bytes, str] | None = None
        self.dropped: Counter[str] = Counter()
        self._sockets: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def arm(self, marker: bytes, mode: str) -> None:
        with self._lock:
            self._armed = (marker, mode)

    def _take(self, chunk: bytes) -> str | None:
        with self._lock:
            if self._armed is not None and self._armed[0] in chunk:
                mode = self._armed[1]
                self._armed = None
                return mode
        return None

    def _accept(self) -> None:
        while not self._closed:
            try:
                downstream, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.upstream, timeout=2)
                upstream.settimeout(None)
            except OSError:
                downstream.close()
                continue
            with self._lock:
                self._sockets += [downstream, upstream]
            doomed: list[str] = []  # this connection's next reply is lost, and how
            for source, target, replies in (
                (downstream, upstream, False),
                (upstream, downstream, True),
            ):
                threading.Thread(
                    target=self._pump, args=(source, target, replies, doomed), daemon=True
                ).start()

    def _pump(
        self, source: socket.socket, target: socket.socket, replies: bool, doomed: list[str]
    ) -> None:
        try:
            while chunk := source.recv(65536):
                if replies and doomed:
                    self.dropped[doomed[0]] += 1
                    if doomed[0] == "cut":
                        break
                    continue  # stall: swallow everything until the client hangs up
                if not replies and (mode := self._take(chunk)) is not None:
                    doomed.append(mode)
                target.sendall(chunk)
        except OSError:
            pass
        for sock in (source, target):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.close()


# --- PostgreSQL -------------------------------------------------------------------------------


@contextlib.contextmanager
def table_locked(db: str, table: str = "django_sessionkit_session") -> Iterator[None]:
    """Another connection holds ``LOCK TABLE … ACCESS EXCLUSIVE`` on the session table."""
    import psycopg

    holder = psycopg.connect(host="127.0.0.1", port=5432, user="postgres", dbname=db)
    try:
        holder.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        yield
    finally:
        holder.rollback()
        holder.close()


# --- gunicorn ---------------------------------------------------------------------------------


class Gunicorn:
    """``gunicorn -w N`` (sync workers) serving the bench app with ``BENCH_SOAK=1``."""

    def __init__(self, engine: str, work: Path, name: str, workers: int = 4, **env: str) -> None:
        self.engine, self.workers = engine, workers
        with socket.socket() as sock:  # the OS's free port, checked right before use
            sock.bind(("127.0.0.1", 0))
            self.port: int = sock.getsockname()[1]
        environment = dict(os.environ)
        environment.update(
            BENCH_ENGINE=engine,
            BENCH_SOAK="1",
            BENCH_DEFAULT_DB="pg",  # users and the database store on PostgreSQL
            DJANGO_SETTINGS_MODULE="bench.settings",
            PYTHONPATH=str(ROOT),
            **env,
        )
        self.log_path = work / f"gunicorn-{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115
        args = [str(VENV / "gunicorn"), "-w", str(workers), "-b", f"127.0.0.1:{self.port}"]
        args += ["--log-level", "info", "--pid", str(work / f"gunicorn-{name}.pid")]
        args += ["bench.wsgi:application"]
        self.proc = subprocess.Popen(
            args, cwd=ROOT, env=environment, stdout=self._log, stderr=subprocess.STDOUT
        )
        try:
            wait_for(f"gunicorn ({name})", self._ready, 60)
        except RuntimeError:
            self.stop()
            raise
        # Warm every worker up (imports, connections, scripts): concurrent requests.
        threads = [
            threading.Thread(target=send, args=(self.port, "GET", "/soak/whoami/"))
            for _ in range(4 * workers)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(REQUEST_TIMEOUT + 5)

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited; see {self.log_path}")
        return send(self.port, "GET", "/untouched/", timeout=2).status == 200

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()

    def log_counts(self) -> dict[str, int]:
        """Worker timeouts (a hung worker killed by gunicorn), worker boots beyond the
        first ones, and tracebacks, from gunicorn's log."""
        text = self.log_path.read_text(errors="replace")
        return {
            "worker_timeouts": text.count("WORKER TIMEOUT"),
            "extra_boots": max(0, text.count("Booting worker") - self.workers),
            "tracebacks": text.count("Traceback (most recent call last)"),
        }

    def __enter__(self) -> Gunicorn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- HTTP -------------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int  # 0: no answer (refused, reset, or REQUEST_TIMEOUT)
    sent: float  # time.monotonic() when sent
    seconds: float
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    cookies: list[str] = field(default_factory=list)  # Set-Cookie header values
    error: str = ""

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return {}


def send(
    port: int,
    method: str,
    path: str,
    *,
    cookie: str | None = None,
    form: dict[str, str] | None = None,
    timeout: float = REQUEST_TIMEOUT,
) -> Reply:
    headers = {"Cookie": f"{COOKIE}={cookie}"} if cookie else {}
    body = None
    if form is not None:
        body = urlencode(form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    sent = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        return Reply(
            response.status,
            sent,
            time.monotonic() - sent,
            data,
            {k.lower(): v for k, v in response.getheaders()},
            response.headers.get_all("Set-Cookie") or [],
        )
    except (OSError, http.client.HTTPException) as exc:
        return Reply(0, sent, time.monotonic() - sent, error=f"{type(exc).__name__}: {exc}")
    finally:
        conn.close()


def session_cookie(reply: Reply, current: str | None) -> str | None:
    """The session cookie after ``reply``: set, deleted, or unchanged."""
    for header in reply.cookies:
        jar: SimpleCookie = SimpleCookie()
        jar.load(header)
        if COOKIE in jar:
            morsel = jar[COOKIE]
            gone = morsel["max-age"] == "0" or "1970" in morsel["expires"] or not morsel.value
            current = None if gone else morsel.value
    return current


# --- the virtual clients ----------------------------------------------------------------------


class Tally:
    """What one run saw: statuses, latencies, and each kind of wrong answer."""

    KINDS = (
        "lost",
        "signed_out",
        "wrong_user",
        "counter_off",
        "revived",
        "unresolved",
        "revoke_0",
    )

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.statuses: Counter[int] = Counter()
        self.latencies: list[float] = []
        self.by_op: dict[str, list[float]] = {}
        self.held: dict[str, float] = {}  # op -> longest a worker spent on one request
        self.held_how: dict[str, tuple[int, float]] = {}  # op -> its status, when it was sent
        self.started = time.monotonic()
        self.problems: Counter[str] = Counter()
        self.notes: list[str] = []  # the first few wrong answers, spelled out
        self.replies: list[tuple[str, Reply]] = []  # every reply, when kept (timings)
        self.keep_replies = False

    def record(self, op: str, reply: Reply) -> None:
        with self.lock:
            self.statuses[reply.status] += 1
            self.latencies.append(reply.seconds)
            self.by_op.setdefault(op, []).append(reply.seconds)
            held = reply.headers.get("x-handled-ms")
            if held is not None:  # the worker's own clock (bench/soak_views.report)
                seconds = float(held) / 1000
                if seconds > self.held.get(op, 0.0):
                    self.held[op] = seconds
                    self.held_how[op] = (reply.status, reply.sent - self.started)
            if self.keep_replies:
                self.replies.append((op, reply))
            if reply.status not in (200, 503) and len(self.notes) < 12:
                detail = reply.error or reply.body[:300].decode(errors="replace")
                self.notes.append(
                    f"{op}: HTTP {reply.status} after {reply.seconds:.2f} s: {detail}"
                )

    def problem(self, kind: str, text: str) -> None:
        with self.lock:
            self.problems[kind] += 1
            if len(self.notes) < 12:
                self.notes.append(f"{kind}: {text}")

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    def count(self, *statuses: int) -> int:
        return sum(self.statuses[s] for s in statuses)

    def other_5xx(self) -> int:
        return sum(n for s, n in self.statuses.items() if s >= 500 and s != 503)

    def other(self) -> int:
        """Answers that are neither 200, 503 nor another 5xx: 4xx, and no answer at all."""
        return sum(n for s, n in self.statuses.items() if s < 500 and s != 200)

    def percentile(self, q: float, values: list[float] | None = None) -> float:
        values = sorted(self.latencies if values is None else values)
        if not values:
            return 0.0
        return values[min(len(values) - 1, int(q * len(values)))]


class Client:
    """One browser of one user, doing one request at a time.

    Expected state: signed in or not; the counter as acknowledged by 200 responses
    (``acked``) and the increments answered 503 since login (``maybe``: applied or not,
    at most once each), so the stored counter must be in ``[acked, acked + maybe]``;
    ``dead``: the cookie of a session a 200 logout or revoke ended, which must stay ended.
    """

    def __init__(
        self, port: int, name: str, user_id: str, tally: Tally, rng: random.Random
    ) -> None:
        self.port, self.name, self.user_id = port, name, user_id
        self.tally, self.rng = tally, rng
        self.cookie: str | None = None
        self.signed_in = False
        self.acked = 0
        self.maybe = 0
        self.dead: str | None = None
        self.retried = False

    # --- requests

    def call(self, op: str, method: str, path: str, *, own: bool = True, **kw: Any) -> Reply:
        reply = send(self.port, method, path, cookie=self.cookie if own else None, **kw)
        self.tally.record(op, reply)
        if own and reply.status == 200:
            self.cookie = session_cookie(reply, self.cookie)
        return reply

    def until_answered(
        self, op: str, method: str, path: str, deadline: float, **kw: Any
    ) -> Reply | None:
        """Repeat while the answer is 503 (the store is down); None when out of time.
        ``self.retried``: whether an earlier attempt was answered 503 (and so may have
        been applied)."""
        self.retried = False
        for _attempt in range(2000):
            reply = self.call(op, method, path, **kw)
            if reply.status != 503:
                return reply
            self.retried = True
            if time.monotonic() > deadline:
                return None
            time.sleep(0.05)
        return None

    def resync(self) -> None:
        """Start again from a known state: a fresh browser that signs in."""
        self.signed_in, self.cookie, self.acked, self.maybe = False, None, 0, 0

    # --- operations

    def login(self, deadline: float) -> None:
        self.cookie = None  # a fresh browser at the login form
        form = {"username": self.name, "password": PASSWORD}
        reply = self.until_answered("login", "POST", "/soak/login/", deadline, form=form)
        if reply is None:
            self.tally.problem("unresolved", f"{self.name}: login got only 503s")
            self.resync()
        elif reply.status == 200:
            user = reply.json().get("user")
            if user != self.user_id:
                self.tally.problem("wrong_user", f"{self.name}: login answered user {user!r}")
                self.resync()
            elif not self.cookie:
                self.tally.problem("signed_out", f"{self.name}: a 200 login set no cookie")
                self.resync()
            else:
                self.signed_in, self.acked, self.maybe, self.dead = True, 0, 0, None
        else:
            self.resync()  # an unexpected answer: recorded by the tally; start again

    def incr(self) -> None:
        reply = self.call("incr", "GET", "/soak/incr/")
        if reply.status == 503:
            self.maybe += 1  # the save may have been applied (once) before the error
        elif reply.status == 200:
            self.acked += 1
            self.check(reply, reply.json(), after_incr=True)
        else:
            self.resync()

    def whoami(self) -> None:
        reply = self.call("whoami", "GET", "/soak/whoami/")
        if reply.status == 200:
            self.check(reply, reply.json(), after_incr=False)
        elif reply.status != 503:
            self.resync()

    def logout(self, deadline: float) -> None:
        before = self.cookie
        reply = self.until_answered("logout", "POST", "/soak/logout/", deadline, form={})
        if reply is None:
            self.tally.problem("unresolved", f"{self.name}: logout got only 503s")
            self.resync()
        elif reply.status == 200:
            self.resync()
            self.dead = before
        else:
            self.resync()

    def revoke(self, deadline: float) -> None:
        """An admin ends this user's sessions (a request of its own, without the cookie)."""
        form = {"user": self.user_id}
        reply = self.until_answered(
            "revoke", "POST", "/soak/revoke/", deadline, own=False, form=form
        )
        if reply is None:
            self.tally.problem("unresolved", f"{self.name}: revoke got only 503s")
            self.resync()
        elif reply.status == 200:
            ended = reply.json().get("ended", 0)
            if ended < 1 and self.signed_in and not self.retried:
                # The signed-in session should have been there to end. Not counted as lost:
                # a call retried inside the store after a dropped connection (its first copy
                # ran) reports 0 too; check_dead() tells whether the session is really gone.
                self.tally.problem("revoke_0", f"{self.name}: the revoke reported 0 ended")
            self.dead, self.signed_in, self.acked, self.maybe = self.cookie, False, 0, 0
        else:
            self.resync()

    def check_dead(self, deadline: float) -> None:
        """The cookie of an ended session must reach nothing."""
        if self.dead is None:
            return
        cookie, self.cookie = self.cookie, self.dead
        reply = self.until_answered("whoami", "GET", "/soak/whoami/", deadline)
        self.cookie = cookie
        if reply is not None and reply.status == 200 and reply.json().get("found"):
            self.tally.problem("revived", f"{self.name}: an ended session answers again")
        self.dead = None

    # --- checking

    def check(self, reply: Reply, data: dict[str, Any], *, after_incr: bool) -> None:
        if not self.signed_in:
            return
        if not data.get("found"):
            self.tally.problem("lost", f"{self.name}: no stored session (acked {self.acked})")
            self.tally.problem("signed_out", f"{self.name}: signed out with the lost session")
            self.resync()
            return
        user = data.get("user")
        if user != self.user_id:
            kind = "signed_out" if user is None else "wrong_user"
            self.tally.problem(kind, f"{self.name}: session's user is {user!r}")
            self.resync()
            return
        stored = reply.headers.get("x-views") if after_incr else data.get("views")
        value = int(stored) if stored is not None else 0
        if not self.acked <= value <= self.acked + self.maybe:
            self.tally.problem(
                "counter_off",
                f"{self.name}: counter {value}, expected {self.acked}..{self.acked + self.maybe}",
            )
            self.acked, self.maybe = value, 0  # counted once; go on from what is stored

    def final_check(self, deadline: float) -> None:
        self.check_dead(deadline)
        if not self.signed_in:
            return
        reply = self.until_answered("final", "GET", "/soak/whoami/", deadline)
        if reply is None:
            self.tally.problem("unresolved", f"{self.name}: final check got only 503s")
        elif reply.status == 200:
            self.check(reply, reply.json(), after_incr=False)

    def step(self, deadline: float) -> None:
        """One operation of the mixed stream."""
        if not self.signed_in:
            self.check_dead(deadline)
            self.login(deadline)
            return
        roll = self.rng.random()
        if roll < 0.78:
            self.incr()
        elif roll < 0.90:
            self.whoami()
        elif roll < 0.95:
            self.logout(deadline)
        else:
            self.revoke(deadline)


def run_clients(
    clients: list[Client],
    seconds: float,
    on_tick: Callable[[float], None] | None = None,
    step: Callable[[Client, float], None] | None = None,
) -> None:
    """Each client in its own thread, stepping until ``seconds`` have passed; ``on_tick``
    runs in the calling thread (the fault injector) with the seconds elapsed."""
    stop = threading.Event()
    started = time.monotonic()
    end = started + seconds
    hard = end + 15  # an operation still retrying 503s gives up here

    def loop(client: Client) -> None:
        for _ in range(1_000_000):
            if stop.is_set() or time.monotonic() >= end:
                return
            (step or Client.step)(client, hard)

    threads = [threading.Thread(target=loop, args=(c,), daemon=True) for c in clients]
    for thread in threads:
        thread.start()
    try:
        while time.monotonic() < end:
            if on_tick is not None:
                on_tick(time.monotonic() - started)
            time.sleep(0.01)
    finally:
        stop.set()
        for thread in threads:
            thread.join(hard - time.monotonic() + REQUEST_TIMEOUT)


def users(engine: str, work: Path) -> dict[str, str]:
    """Migrate the bench database and create the soak users: username -> id."""
    env = dict(os.environ, BENCH_ENGINE=engine, BENCH_DEFAULT_DB="pg", PYTHONPATH=str(ROOT))
    env["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    proc = subprocess.run(
        [str(VENV / "python"), "-m", "bench.soak_views", "setup"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"bench.soak_views setup failed:\n{proc.stderr[-3000:]}")
    line = [x for x in proc.stdout.splitlines() if x.startswith("USERS ")][-1]
    result: dict[str, str] = json.loads(line[len("USERS ") :])
    return result


def machine() -> str:
    import django
    import redis

    version = subprocess.run(
        ["redis-server", "--version"], capture_output=True, text=True, timeout=10
    ).stdout.split()
    redis_version = next((v.split("=")[1] for v in version if v.startswith("v=")), "?")
    return (
        f"{os.cpu_count()} cores; Python {sys.version.split()[0]}; Django {django.__version__};"
        f" redis-py {redis.__version__}; redis-server {redis_version};"
        f" {time.strftime('%Y-%m-%d %H:%M %Z')}"
    )


def ms(seconds: float) -> str:
    if seconds < 0.01:
        return f"{seconds * 1000:.1f} ms"
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0
