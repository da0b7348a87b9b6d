"""The Express app of ``tests/express_app`` as a test peer: ``npm ci`` once, then one Node
process per configuration, on a port the OS picks, stopped by the PID we started.

Node and npm missing: the tests skip locally with a how-to and fail under ``CI=true``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path

from tests.services import service_missing

APP_DIR = Path(__file__).parent / "express_app"
START_TIMEOUT = 20.0
HOW = (
    "Install Node.js >= 20.19 with npm (e.g. apt-get install -y nodejs npm); the tests run "
    "`npm ci --prefix tests/express_app` themselves."
)


def require_node() -> None:
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            service_missing(f"{tool} (needed by the Express interop tests)", HOW)


def npm_ci() -> None:
    """Install the pinned packages unless node_modules already matches package-lock.json."""
    lock = APP_DIR / "package-lock.json"
    installed = APP_DIR / "node_modules" / ".package-lock.json"
    if installed.exists() and installed.stat().st_mtime >= lock.stat().st_mtime:
        return
    result = subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund", "--prefix", str(APP_DIR)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        service_missing(
            "the Express app's npm packages",
            f"`npm ci --prefix tests/express_app` failed:\n{result.stderr[-2000:]}",
        )


@dataclass
class ExpressApp:
    process: subprocess.Popen[str]
    port: int
    output: list[str] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def start_app(env: dict[str, str]) -> ExpressApp:
    """Start ``node app.js`` with ``env`` (PORT is chosen by the OS) and wait until it listens."""
    process = subprocess.Popen(
        ["node", str(APP_DIR / "app.js")],
        cwd=APP_DIR,
        env={**os.environ, "NODE_ENV": "test", **env, "PORT": "0"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    port: list[int] = []
    ready = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line.rstrip())
            if line.startswith("listening on ") and not port:
                port.append(int(line.split()[-1]))
                ready.set()
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + START_TIMEOUT
    while not ready.wait(0.05):
        if time.monotonic() > deadline:
            break
    if not port:
        process.kill()
        process.wait(timeout=5)
        raise RuntimeError("the Express app did not start:\n" + "\n".join(output[-20:]))
    return ExpressApp(process, port[0], output)


@dataclass
class Reply:
    status: int
    body: str
    set_cookie: str | None  # the session cookie's Set-Cookie header, if one was sent

    def json(self) -> object:
        import json

        return json.loads(self.body)


def express_get(app: ExpressApp, path: str, cookie_header: str | None, name: str) -> Reply:
    request = urllib.request.Request(app.base + path)
    if cookie_header:
        request.add_header("Cookie", cookie_header)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, headers, body = response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        status, headers, body = error.code, error.headers, error.read()
    cookies = [h for h in headers.get_all("Set-Cookie") or [] if h.startswith(f"{name}=")]
    return Reply(status, body.decode(), cookies[-1] if cookies else None)


def cookie_value(set_cookie: str, name: str) -> str | None:
    """The value a browser keeps after this Set-Cookie (``None``: the cookie was removed)."""
    jar: SimpleCookie = SimpleCookie()
    jar.load(set_cookie)
    morsel = jar[name]
    if not morsel.value or morsel["max-age"] in ("0", 0):
        return None
    expires = morsel["expires"]
    if expires and "1970" in expires:
        return None
    return morsel.coded_value
