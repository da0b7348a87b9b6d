"""A loopback TCP proxy for fault tests: it forwards bytes both ways and, when asked,
swallows the next reply from the server and cuts the connection.

That is the one fault a client cannot tell from a lost request: the server has run the
command, the client never hears so, and a client that retries sends it again.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator


class Proxy:
    """Listens on 127.0.0.1:<port> and forwards every connection to ``upstream``."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._marker: bytes | None = None
        self.dropped = 0
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def drop_reply_to(self, marker: bytes) -> None:
        """The reply to the next request that contains ``marker`` (e.g. ``b"EVALSHA"``) is
        thrown away, and that connection cut, after the server ran the request."""
        self._marker = marker

    def _accept(self) -> None:
        while not self._closed:
            try:
                downstream, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.upstream)
            with self._lock:
                self._sockets += [downstream, upstream]
            doomed = threading.Event()  # this connection's next reply is to be lost
            for source, target, replies in (
                (downstream, upstream, False),
                (upstream, downstream, True),
            ):
                threading.Thread(
                    target=self._pump, args=(source, target, replies, doomed), daemon=True
                ).start()

    def _pump(
        self, source: socket.socket, target: socket.socket, replies: bool, doomed: threading.Event
    ) -> None:
        try:
            while chunk := source.recv(65536):
                if replies and doomed.is_set():
                    self.dropped += 1
                    break  # the command ran; its reply is lost with the connection
                if not replies and self._marker is not None and self._marker in chunk:
                    self._marker = None
                    doomed.set()
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


@contextlib.contextmanager
def proxy_to(port: int) -> Iterator[Proxy]:
    proxy = Proxy(port)
    try:
        yield proxy
    finally:
        proxy.close()
