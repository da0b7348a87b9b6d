"""``python example_project/portcheck.py HOST:PORT``: exit 0 when runserver can listen there.

``bash example_project/run`` calls it first. When the port is taken, it says so and
prints the command with a free port to use instead (``EXAMPLE_ADDR=…``), and exits 1;
an address it cannot read exits 2. Standard library only: it runs before ``.venv`` exists.
"""

from __future__ import annotations

import errno
import socket
import sys

USAGE = "EXAMPLE_ADDR={addr!r} is not an address runserver takes: use HOST:PORT (127.0.0.1:8001)."


def split(addr: str) -> tuple[str, int]:
    """(host, port) of ``HOST:PORT``, ``[IPv6]:PORT`` or a bare ``PORT``, as runserver reads
    them; ``ValueError`` otherwise."""
    host, sep, port = addr.rpartition(":")
    if not sep:
        host, port = "127.0.0.1", addr
    host = host.strip("[]") or "127.0.0.1"
    number = int(port)
    if not 0 < number < 65536:
        raise ValueError(port)
    return host, number


def is_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as runserver binds
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def main(addr: str) -> int:
    try:
        host, port = split(addr)
    except ValueError:
        print(USAGE.format(addr=addr), file=sys.stderr)
        return 2
    try:
        if is_free(host, port):
            return 0
    except OSError as exc:  # e.g. an address this machine does not have
        print(
            f"Cannot listen on {addr}: {exc.strerror}. Pick another address with "
            "EXAMPLE_ADDR=HOST:PORT, for example EXAMPLE_ADDR=127.0.0.1:8001.",
            file=sys.stderr,
        )
        return 2
    shown = f"[{host}]" if ":" in host else host
    others = (p for p in range(port + 1, min(port + 100, 65536)) if is_free(host, p))
    other = next(others, None)
    for line in (
        f"Port {port} on {shown} is already in use (another runserver, or another program).",
        "Pick another address with EXAMPLE_ADDR, for example:",
        f"  EXAMPLE_ADDR={shown}:{other or port + 1} bash example_project/run",
    ):
        print(line, file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:8000"))
