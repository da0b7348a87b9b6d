"""Pytest fixtures for the MongoDB stores: one server per test session, a collection per store.

No MongoDB server is packaged for these machines. The tests start ``nx-27017`` (a server
that speaks MongoDB's wire protocol, backed by SQLite; it needs Python >= 3.12, so
``tests/run`` installs it in a virtualenv of its own, ``.venv-mongo``) on a spare port, and
stop it by the PID they started. Set ``SESSIONKIT_TEST_MONGO_URL`` to run the same tests on
a MongoDB server of your own instead (each test uses a collection of its own and drops it).

Enable with ``pytest_plugins = ["tests.mongo_fixtures"]`` in ``tests/conftest.py``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings

from django_sessionkit.stores import get_store
from tests.redis_servers import ServerError, pick_ports
from tests.services import service_missing

REPO = Path(__file__).resolve().parent.parent
NX_VERSION = "0.8.1"
#: Where tests/run installs nx-27017; SESSIONKIT_NX_27017 names another executable.
NX_BINARY = Path(os.environ.get("SESSIONKIT_NX_27017", REPO / ".venv-mongo" / "bin" / "nx-27017"))
EXTERNAL_URL = os.environ.get("SESSIONKIT_TEST_MONGO_URL", "")
PREFERRED_PORTS = (27217,)
START_TIMEOUT = 20.0
DATABASE = "sessionkit_tests"
HOW = (
    "Run `bash tests/run` (it makes .venv-mongo with Python 3.12 and installs nx-27017 "
    f"{NX_VERSION} there), or by hand: python3.12 -m venv .venv-mongo && "
    f".venv-mongo/bin/pip install nx-27017=={NX_VERSION}. "
    "Or set SESSIONKIT_TEST_MONGO_URL to a MongoDB server of your own."
)

#: Short timeouts, as for Redis: a stopped server fails a test in well under a second.
FAST_FAILURE = {"TIMEOUT": 2.0, "SERVER_SELECTION_TIMEOUT": 1.0, "RETRY_ATTEMPTS": 1}


def _pymongo() -> Any:
    try:
        import pymongo
    except ImportError:
        service_missing(
            "pymongo (needed by the MongoDB store tests)",
            "Install the extra: pip install -e '.[mongo]' (bash tests/run does it).",
        )
    return pymongo


@dataclass
class MongoServer:
    """A server the tests reach: our own nx-27017 process, or SESSIONKIT_TEST_MONGO_URL."""

    port: int | None
    directory: Path | None
    external_url: str = ""
    process: subprocess.Popen[bytes] | None = None
    name: str = field(default=f"nx-27017 {NX_VERSION}")

    @property
    def url(self) -> str:
        return self.external_url or f"mongodb://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path | None:
        return None if self.directory is None else self.directory / "server.log"

    def start(self) -> None:
        if self.external_url or (self.process is not None and self.process.poll() is None):
            return
        assert self.directory is not None and self.port is not None
        log = open(self.directory / "server.log", "ab")  # noqa: SIM115 - the process keeps it
        self.process = subprocess.Popen(
            [
                *(str(NX_BINARY), "--db", str(self.directory / "sessions.db")),
                *("--pid-file", str(self.directory / "nx-27017.pid")),
                *("--host", "127.0.0.1", "-p", str(self.port)),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while not self.answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = (self.directory / "server.log").read_text(errors="replace")[-2000:]
                raise ServerError(f"nx-27017 did not start on port {self.port}:\n{tail}")
            time.sleep(0.05)

    def answers(self) -> bool:
        pymongo = _pymongo()
        client = pymongo.MongoClient(self.url, serverSelectionTimeoutMS=300)
        try:
            client.admin.command("ping")
        except pymongo.errors.PyMongoError:
            return False
        finally:
            client.close()
        return True

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGCONT)  # a test may have left it stopped
            process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    @contextlib.contextmanager
    def client(self) -> Iterator[Any]:
        pymongo = _pymongo()
        client = pymongo.MongoClient(self.url, serverSelectionTimeoutMS=2000, tz_aware=True)
        try:
            yield client
        finally:
            client.close()


@pytest.fixture(scope="session")
def mongo_server() -> Iterator[MongoServer]:
    """nx-27017 on a spare port for the whole run (or SESSIONKIT_TEST_MONGO_URL)."""
    _pymongo()
    if EXTERNAL_URL:
        server = MongoServer(None, None, EXTERNAL_URL, name="SESSIONKIT_TEST_MONGO_URL")
        if not server.answers():
            service_missing(f"the MongoDB server at {EXTERNAL_URL}", "Is it running?")
        yield server
        return
    if not NX_BINARY.exists():
        service_missing(f"nx-27017 (expected at {NX_BINARY})", HOW)
    directory = Path(tempfile.mkdtemp(prefix="sessionkit-nx-"))
    server = MongoServer(pick_ports(1, PREFERRED_PORTS)[0], directory)
    try:
        server.start()
    except (ServerError, OSError) as exc:
        shutil.rmtree(directory, ignore_errors=True)
        service_missing("nx-27017", f"It failed to start: {exc}")
    yield server
    server.stop()
    shutil.rmtree(directory, ignore_errors=True)


def new_collection() -> str:
    return f"sk_test_{uuid.uuid4().hex[:12]}"


def drop_collection(server: MongoServer, collection: str, database: str = DATABASE) -> None:
    if server.external_url == "" and (server.process is None or server.process.poll() is not None):
        server.start()  # a test stopped it: bring it back for the next one
    with server.client() as client:
        client[database].drop_collection(collection)


def store_options(**options: Any) -> dict[str, Any]:
    return {"DATABASE": DATABASE, "COLLECTION": new_collection(), **options}


def make_store(server: MongoServer, **options: Any) -> Any:
    from django_sessionkit.stores.mongo import MongoStore

    return MongoStore(server.url, store_options(**options))


@pytest.fixture
def mongo_store(mongo_server: MongoServer) -> Iterator[Any]:
    store = make_store(mongo_server)
    yield store
    store.close()
    drop_collection(mongo_server, store.config.collection)


@contextlib.contextmanager
def mongo_sessionkit(
    server: MongoServer,
    backend: str = "django_sessionkit.stores.mongo.MongoStore",
    sessionkit: dict[str, Any] | None = None,
    **options: Any,
) -> Iterator[Any]:
    """SESSIONKIT on a MongoDB store over ``server``, in a collection of its own, dropped
    afterwards."""
    config = {"BACKEND": backend, "LOCATION": server.url, "OPTIONS": store_options(**options)}
    try:
        with override_settings(SESSIONKIT={**(sessionkit or {}), "STORE": config}):
            built = get_store()
            yield built
            built.close()
    finally:
        drop_collection(server, config["OPTIONS"]["COLLECTION"])


@pytest.fixture
def mongo_settings(mongo_server: MongoServer) -> Iterator[Any]:
    """SESSIONKIT on a MongoStore over our own server, failing fast."""
    with mongo_sessionkit(mongo_server, **FAST_FAILURE) as store:
        yield store


def command_counter() -> Any:
    """A pymongo command listener: the names of the commands sent while ``counting()``.

    Pass it as ``OPTIONS["CLIENT_KWARGS"] = {"event_listeners": [counter]}``.
    """
    from pymongo import monitoring

    class CommandCounter(monitoring.CommandListener):
        def __init__(self) -> None:
            self.seen: list[str] | None = None

        @contextlib.contextmanager
        def counting(self) -> Iterator[list[str]]:
            self.seen = []
            try:
                yield self.seen
            finally:
                self.seen = None

        def started(self, event: Any) -> None:
            if self.seen is not None:
                self.seen.append(event.command_name)

        def succeeded(self, event: Any) -> None:
            pass

        def failed(self, event: Any) -> None:
            pass

    return CommandCounter()
