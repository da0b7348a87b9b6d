"""Session lifecycle events, as Django signals.

Every signal is sent by the engine's ``SessionStore`` class (the ``sender``) with
``key_hash`` (the session's store key, safe to log), ``user_id`` (``None`` for an anonymous
session) and ``request`` (``None`` outside a request):

* ``session_created`` — a new session was saved for the first time;
* ``session_rotated`` — ``cycle_key()`` (a login, a password change) gave the session a new
  id; also ``old_key_hash``;
* ``session_ended`` — also ``reason``: ``"logout"`` (``flush()``, Django's ``logout()``),
  ``"revoked"`` (with ``by``: ``"admin"``, ``"user"`` for the "where you're signed in"
  page, ``"command"``, ``"limit"``), ``"expired"`` (found by the purge), ``"idle_timeout"``,
  ``"absolute_timeout"``, ``"password_changed"``; and ``record``, the
  :class:`~django_sessionkit.stores.base.SessionRecord` as it was last stored when the
  code that ended it had it in hand (``None`` otherwise: a purge of a store that drops
  expired records by itself knows only the key and the user);
* ``session_client_changed`` — the session came back from another IP address or user agent
  than it recorded; also ``before`` and ``after``, each an ``(ip, user_agent)`` pair.

Signals are sent after the store has answered, never inside a store transaction or a Lua
script: by the middleware at the end of the request (awaiting ``asend_robust`` under ASGI),
or at once outside a request. A receiver that raises is logged (``django_sessionkit``),
never turned into a 500, and does not stop the other receivers.

Ending many sessions (the admin's "end every session of this user", the user page's "sign
out everywhere else", ``revokesessions``, a password change) sends one ``session_ended``
per session when a receiver is connected: the sessions are then listed and ended one by
one. With no receiver it is one store call, as before.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from django.dispatch import Signal

logger = logging.getLogger("django_sessionkit")

session_created = Signal()
session_rotated = Signal()
session_ended = Signal()
session_client_changed = Signal()

#: A queued event: the signal and its keyword arguments (``sender`` among them).
Event = tuple[Signal, dict[str, Any]]


def _log(signal: Signal, results: Iterable[tuple[Any, Any]]) -> None:
    for receiver, result in results:
        if isinstance(result, BaseException):
            logger.error(
                "A receiver of %s raised (the session is not affected): %s: %r",
                _name(signal),
                getattr(receiver, "__qualname__", receiver),
                result,
                exc_info=(type(result), result, result.__traceback__),
            )


def _name(signal: Signal) -> str:
    for name, value in globals().items():
        if value is signal:
            return name
    return repr(signal)


def send(events: Iterable[Event]) -> None:
    """Send queued events; a receiver that raises is logged."""
    for signal, kwargs in events:
        if signal.has_listeners():
            _log(signal, signal.send_robust(**kwargs))


async def asend(events: Iterable[Event]) -> None:
    for signal, kwargs in events:
        if signal.has_listeners():
            _log(signal, await signal.asend_robust(**kwargs))
