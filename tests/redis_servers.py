"""Our own redis-server / valkey-server processes for the tests, on spare local ports.

Nothing here touches the machine's Redis on 6379: every server is started by
us, in a temporary directory, on a port checked to be free, and stopped by the
PID of the process we started. Each wait has a time limit.
"""

from __future__ import annotations

import atexit
import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

#: Ports SERVICES.md found free; others are searched upward from 7300 when taken.
STANDALONE_PORTS = (7210, 7211, 7212)
CLUSTER_PORTS = (7000, 7001, 7002)
SENTINEL_DATA_PORTS = (7100, 7101)
SENTINEL_PORT = 26380
VALKEY_PORTS = (7200,)
SEARCH_FROM = 7300
SEARCH_TO = 7999
NEVER = {6379, 26379}

START_TIMEOUT = 10.0
CLUSTER_TIMEOUT = 30.0
FAILOVER_TIMEOUT = 20.0

_running: list[ServerProcess] = []
_taken: set[int] = set()


class ServerError(RuntimeError):
    """A server did not start, or did not become ready in time."""


def binary(name: str) -> str | None:
    """The path of ``name`` (``redis-server``, ``valkey-cli``…), or ``None``."""
    return shutil.which(name)


def port_is_free(port: int) -> bool:
    if port in NEVER or port in _taken:
        return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pick_ports(count: int, preferred: Sequence[int] = (), *, bus: bool = False) -> list[int]:
    """``count`` free ports (and free ``port + 10000`` cluster-bus ports when ``bus``)."""

    def usable(port: int) -> bool:
        return port_is_free(port) and (not bus or port_is_free(port + 10000))

    if len(preferred) >= count and all(usable(p) for p in preferred[:count]):
        chosen = list(preferred[:count])
    else:
        chosen = []
        for port in range(SEARCH_FROM, SEARCH_TO):
            if usable(port):
                chosen.append(port)
                if len(chosen) == count:
                    break
        else:
            raise ServerError(f"no {count} free ports between {SEARCH_FROM} and {SEARCH_TO}")
    _taken.update(chosen)
    return chosen


def wait_until(what: str, condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except (redis.RedisError, OSError):
            pass
        if time.monotonic() > deadline:
            raise ServerError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)


def client(port: int, **kwargs: Any) -> redis.Redis:
    return redis.Redis(
        host="127.0.0.1", port=port, socket_timeout=2, socket_connect_timeout=2, **kwargs
    )


@dataclass
class ServerProcess:
    """One redis-server / valkey-server process that we started (never daemonized)."""

    executable: str
    port: int
    directory: Path
    args: list[str] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None
    client_kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log(self) -> Path:
        return self.directory / "server.log"

    def start(self, *, ready: bool = True) -> ServerProcess:
        self.directory.mkdir(parents=True, exist_ok=True)
        port_flag = "--tls-port" if self.client_kwargs.get("ssl") else "--port"
        command = [self.executable, *self.args, port_flag, str(self.port)]
        command += ["--bind", "127.0.0.1", "--dir", str(self.directory)]
        command += ["--daemonize", "no", "--logfile", str(self.log)]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        if self not in _running:
            _running.append(self)
        if ready:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        def pong() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise ServerError(f"{self.executable} on {self.port} exited:\n{self.tail()}")
            with client(self.port, **self.client_kwargs) as conn:
                return bool(conn.ping())

        wait_until(f"{self.executable} on port {self.port}", pong, timeout)

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the process we started, by its PID (SIGTERM, then SIGKILL)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)

    def restart(self) -> None:
        self.stop()
        self.start()

    def client(self) -> redis.Redis:
        return client(self.port, **self.client_kwargs)


@dataclass
class Standalone:
    server: ServerProcess
    flavour: str  # "redis" or "valkey"

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def unix_url(self) -> str:
        return f"unix://{self.server.directory / 'server.sock'}?db=0"

    def clients(self) -> list[redis.Redis]:
        return [self.server.client()]

    def stop(self) -> None:
        self.server.stop()


@dataclass
class Cluster:
    servers: list[ServerProcess]
    flavour: str

    @property
    def nodes(self) -> list[str]:
        return [f"127.0.0.1:{s.port}" for s in self.servers]

    @property
    def url(self) -> str:
        return self.servers[0].url

    def clients(self) -> list[redis.Redis]:
        return [s.client() for s in self.servers]

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


@dataclass
class SentinelSetup:
    data: list[ServerProcess]
    sentinel: ServerProcess
    service_name: str
    flavour: str

    @property
    def sentinels(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", self.sentinel.port)]

    def master_port(self) -> int:
        with self.sentinel.client() as conn:
            _host, port = conn.sentinel_get_master_addr_by_name(self.service_name)
        return int(port)

    def clients(self) -> list[redis.Redis]:
        return [s.client() for s in self.data]

    def failover(self) -> int:
        """``SENTINEL FAILOVER``; wait until the old replica is the master. Returns its port."""
        old = self.master_port()
        self.wait_replicas_in_sync()

        def requested() -> bool:
            # Right after start-up the sentinel may not trust its replica yet (NOGOODSLAVE).
            with self.sentinel.client() as conn:
                try:
                    conn.execute_command("SENTINEL", "FAILOVER", self.service_name)
                except redis.ResponseError as exc:
                    if "NOGOODSLAVE" in str(exc) or "INPROG" in str(exc):
                        return False
                    raise
            return True

        wait_until("sentinel to accept FAILOVER", requested, FAILOVER_TIMEOUT)

        def promoted() -> bool:
            port = self.master_port()
            if port == old:
                return False
            with client(port) as conn:
                return bool(conn.info("replication")["role"] == "master")

        wait_until("sentinel failover", promoted, FAILOVER_TIMEOUT)

        def demoted() -> bool:
            # Until Sentinel turns the old master into a replica it still accepts writes,
            # and whatever a client's older connection writes there in that window is lost.
            with client(old) as conn:
                return bool(conn.info("replication")["role"] == "slave")

        wait_until("old master demoted", demoted, FAILOVER_TIMEOUT)
        return self.master_port()

    def wait_replicas_in_sync(self, timeout: float = FAILOVER_TIMEOUT) -> None:
        """Wait until every data node but the master is a replica with its link up."""
        master = self.master_port()

        def synced() -> bool:
            for server in self.data:
                if server.port == master:
                    continue
                with server.client() as conn:
                    info = conn.info("replication")
                if info.get("role") != "slave" or info.get("master_link_status") != "up":
                    return False
            return True

        wait_until("replicas in sync", synced, timeout)

    def stop(self) -> None:
        self.sentinel.stop()
        for server in self.data:
            server.stop()


class Servers:
    """Starts servers under one temporary directory; ``stop_all`` stops every one we started."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="sessionkit-redis-"))
        self._started: list[Standalone | Cluster | SentinelSetup] = []
        atexit.register(self.stop_all)

    def _dir(self, name: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.root))

    def standalone(
        self,
        flavour: str = "redis",
        *,
        preferred: Sequence[int] = STANDALONE_PORTS,
        persistent: bool = False,
    ) -> Standalone:
        executable = _server_binary(flavour)
        (port,) = pick_ports(1, preferred)
        args = ["--save", ""]
        if persistent:
            args += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            args += ["--appendonly", "no"]
        directory = self._dir(f"{flavour}-{port}")
        args += ["--unixsocket", str(directory / "server.sock"), "--unixsocketperm", "700"]
        server = ServerProcess(executable, port, directory, args).start()
        setup = Standalone(server, flavour)
        self._started.append(setup)
        return setup

    def tls_standalone(self, *, preferred: Sequence[int] = (7215, 7216)) -> Standalone:
        """A redis-server speaking only TLS, with a throwaway CA; ``ca`` is its certificate."""
        executable = _server_binary("redis")
        openssl = binary("openssl")
        if openssl is None:
            raise FileNotFoundError("openssl")
        (port,) = pick_ports(1, preferred)
        directory = self._dir(f"tls-{port}")
        make_certificates(openssl, directory)
        args = ["--port", "0", "--save", "", "--appendonly", "no"]
        args += ["--tls-cert-file", str(directory / "server.pem")]
        args += ["--tls-key-file", str(directory / "server.key")]
        args += ["--tls-ca-cert-file", str(directory / "ca.pem"), "--tls-auth-clients", "no"]
        tls = {"ssl": True, "ssl_ca_certs": str(directory / "ca.pem")}
        server = ServerProcess(executable, port, directory, args, client_kwargs=tls).start()
        setup = Standalone(server, "redis")
        self._started.append(setup)
        return setup

    def cluster(
        self,
        flavour: str = "redis",
        *,
        preferred: Sequence[int] = CLUSTER_PORTS,
        masters: int = 3,
    ) -> Cluster:
        executable = _server_binary(flavour)
        cli = _cli_binary(flavour)
        ports = pick_ports(masters, preferred, bus=True)
        servers = []
        for port in ports:
            args = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
            args += ["--save", "", "--appendonly", "no"]
            servers.append(ServerProcess(executable, port, self._dir(f"cluster-{port}"), args))
        setup = Cluster(servers, flavour)
        self._started.append(setup)
        for server in servers:
            server.start(ready=False)
        for server in servers:
            server.wait_ready()
        subprocess.run(
            [cli, "--cluster", "create", *setup.nodes, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=CLUSTER_TIMEOUT,
        )

        def cluster_ok() -> bool:
            for server in servers:
                with server.client() as conn:
                    if conn.execute_command("CLUSTER", "INFO").find(b"cluster_state:ok") < 0:
                        return False
            return True

        wait_until("cluster_state:ok on every node", cluster_ok, CLUSTER_TIMEOUT)
        return setup

    def sentinel(
        self,
        flavour: str = "redis",
        *,
        preferred: Sequence[int] = SENTINEL_DATA_PORTS,
        sentinel_port: Sequence[int] = (SENTINEL_PORT,),
        service_name: str = "sessionkit",
    ) -> SentinelSetup:
        executable = _server_binary(flavour)
        master_port, replica_port = pick_ports(2, preferred)
        (s_port,) = pick_ports(1, sentinel_port)
        common = ["--repl-diskless-sync-delay", "0", "--save", "", "--appendonly", "no"]
        master = ServerProcess(executable, master_port, self._dir(f"master-{master_port}"), common)
        replica = ServerProcess(
            executable,
            replica_port,
            self._dir(f"replica-{replica_port}"),
            [*common, "--replicaof", "127.0.0.1", str(master_port)],
        )
        s_dir = self._dir(f"sentinel-{s_port}")
        conf = s_dir / "sentinel.conf"
        conf.write_text(
            "\n".join(
                [
                    f"sentinel monitor {service_name} 127.0.0.1 {master_port} 1",
                    f"sentinel down-after-milliseconds {service_name} 1000",
                    f"sentinel failover-timeout {service_name} 3000",
                    "",
                ]
            )
        )
        sentinel = ServerProcess(executable, s_port, s_dir, [str(conf), "--sentinel"])
        setup = SentinelSetup([master, replica], sentinel, service_name, flavour)
        self._started.append(setup)
        master.start()
        replica.start()
        sentinel.start()

        def replica_known() -> bool:
            with replica.client() as conn:
                if conn.info("replication").get("master_link_status") != "up":
                    return False
            with sentinel.client() as conn:
                replicas = conn.execute_command("SENTINEL", "REPLICAS", service_name)
            return any(_field(entry, "port") == str(replica_port) for entry in replicas)

        wait_until("replica in sync and known to the sentinel", replica_known, START_TIMEOUT)
        return setup

    def stop_all(self) -> None:
        while self._started:
            self._started.pop().stop()
        shutil.rmtree(self.root, ignore_errors=True)


def make_certificates(openssl: str, directory: Path) -> None:
    """A CA and a server certificate for 127.0.0.1, valid for two days."""

    def run(*args: str) -> None:
        subprocess.run(
            [openssl, *args],
            cwd=directory,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
        )

    (directory / "san.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=sessionkit-test-ca",
    )
    run(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    )
    run(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "san.cnf",
    )


def _field(entry: object, name: str) -> str | None:
    """A field of a ``SENTINEL REPLICAS`` entry (a flat list, or a dict under RESP3)."""
    if isinstance(entry, dict):
        value = entry.get(name, entry.get(name.encode()))
        return None if value is None else _text(value)
    if isinstance(entry, Iterable):
        items = [_text(x) for x in entry]
        for key, value in zip(items[::2], items[1::2], strict=False):
            if key == name:
                return value
    return None


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _server_binary(flavour: str) -> str:
    path = binary(f"{flavour}-server")
    if path is None:
        raise FileNotFoundError(f"{flavour}-server")
    return path


def _cli_binary(flavour: str) -> str:
    path = binary(f"{flavour}-cli")
    if path is None:
        raise FileNotFoundError(f"{flavour}-cli")
    return path


@atexit.register
def _stop_leftovers() -> None:
    for server in _running:
        with contextlib.suppress(Exception):
            server.stop()
