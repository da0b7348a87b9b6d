"""A loopback TCP proxy for fault tests and the soak (bench/faultlib.py): it forwards bytes
both ways and, when asked, loses the next reply from the server, cutting the connection or
holding it silent.

That is the one fault a client cannot tell from a lost request: the server has run the
command, the client never hears so, and a client that retries sends it again.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections import Counter
from collections.abc import Iterator


class Proxy:
    """Forwards 127.0.0.1:<port> to Redis; when armed, the reply to the next request that
    contains the marker is thrown away after Redis ran it: with ``cut`` the connection is
    closed at once (the client sees a dropped connection and retries), with ``stall`` it
    is held silent until the client gives up (a timeout: the client does not retry).
    """

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

    def drop_reply_to(self, marker: bytes) -> None:
        """The reply to the next request containing ``marker`` is lost and the connection
        cut, after the server ran the request (``arm(marker, "cut")``)."""
        self.arm(marker, "cut")

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


@contextlib.contextmanager
def proxy_to(port: int) -> Iterator[Proxy]:
    proxy = Proxy(port)
    try:
        yield proxy
    finally:
        proxy.close()
