"""SessionMiddleware: unsign the cookie into ``request.session``; on the way out,
save, touch or destroy as express-session decides, and set the cookie.

It replaces ``django.contrib.sessions.middleware.SessionMiddleware`` and keeps
Django's rules: no save on a 5xx response, the cookie deleted when the session
is emptied, ``SessionInterrupted`` when the session was deleted meanwhile,
``Vary: Cookie`` whenever the session was accessed or its cookie set.
One class serves WSGI and ASGI; under ASGI it awaits the store's async API.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.contrib.sessions.backends.base import UpdateError
from django.contrib.sessions.exceptions import SessionInterrupted
from django.contrib.sessions.middleware import SessionMiddleware as DjangoSessionMiddleware
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.utils.cache import patch_vary_headers

from django_sessionkit import audit, cookies, limits
from django_sessionkit.conf import sessionkit_settings as conf
from django_sessionkit.engine import IMPORTED_KEY, SessionStore
from django_sessionkit.stores.base import StoreUnavailable, utcnow

logger = logging.getLogger("django_sessionkit")

#: Seconds a client is asked to wait when the store is down.
RETRY_AFTER = 5
#: At most one "store unavailable" log line per this many seconds.
OUTAGE_LOG_INTERVAL = 10.0

_INTERRUPTED = (
    "The request's session was deleted before the request completed. "
    "The user may have logged out in a concurrent request, for example."
)


class _RequestState:
    """What the request came with; the cookie is verified only when this is asked for."""

    __slots__ = ("raw", "request", "session")

    def __init__(self, request: HttpRequest, raw: str | None, session: SessionStore) -> None:
        self.request, self.raw, self.session = request, raw, session

    @property
    def cookie_present(self) -> bool:
        return self.raw is not None or conf.NAME in self.request.COOKIES

    @property
    def cookie_id(self) -> str | None:
        return self.session.cookie_id

    @property
    def legacy(self) -> bool:  # cookie_id is an unsigned key of Django's own engines
        return self.session.legacy_cookie


@dataclasses.dataclass
class _Plan:
    """What to do at the end of a request, decided before any I/O."""

    action: str  # "none", "load", "create", "save", "touch", "delete-cookie", "destroy"
    set_cookie: bool = False


class _OutageLog:
    """Logs a store outage once per interval instead of once per request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = 0.0
        self._suppressed = 0

    def report(self, exc: StoreUnavailable) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last < OUTAGE_LOG_INTERVAL:
                self._suppressed += 1
                return
            suppressed, self._suppressed, self._last = self._suppressed, 0, now
        logger.error(
            "Session store unavailable, answering 503: %s (%d more since the last report)",
            exc,
            suppressed,
        )


_outage_log = _OutageLog()


def unavailable_response(exc: StoreUnavailable) -> HttpResponse:
    _outage_log.report(exc)
    response = HttpResponse(
        "The session store is unavailable; please try again shortly.\n",
        status=503,
        content_type="text/plain; charset=utf-8",
    )
    response["Retry-After"] = str(RETRY_AFTER)
    return response


def _touched_lately(session: SessionStore) -> bool:
    """Whether the session was saved or touched less than TOUCH_AFTER seconds ago."""
    touch_after, record = conf.TOUCH_AFTER, session.record
    if not touch_after or record is None:
        return False
    return record.last_seen > utcnow() - timedelta(seconds=touch_after)


def _admitted_in_vain(session: SessionStore, response: HttpResponseBase) -> bool:
    """A login saved its session at once (MAX_SESSIONS_POLICY = "refuse"), but the response
    is a 5xx, which sends no cookie: the session would hold one of the user's places
    until it expired. It is deleted."""
    return session.admitted and response.status_code >= 500


class SessionMiddleware(DjangoSessionMiddleware):
    """Subclasses Django's (so checks such as admin.E410 accept it) but shares none of its code."""

    sync_capable = True
    async_capable = True

    def __init__(
        self,
        get_response: Callable[[HttpRequest], HttpResponseBase | Awaitable[HttpResponseBase]],
    ) -> None:
        from django_sessionkit.checks import configuration_errors

        if get_response is None:  # as Django's MiddlewareMixin says
            raise ValueError("get_response must be provided.")
        if errors := configuration_errors():
            raise ImproperlyConfigured(
                "SESSIONKIT is misconfigured:\n" + "\n".join(f"- {e}" for e in errors)
            )
        self.get_response = get_response
        self.SessionStore = SessionStore
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.async_mode:
            return self.__acall__(request)
        self._start(request)
        response = self.get_response(request)
        assert isinstance(response, HttpResponseBase)
        try:
            return self._finish(request, response)
        except StoreUnavailable as exc:
            return unavailable_response(exc)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        self._start(request)
        response = await self.get_response(request)  # type: ignore[misc]
        try:
            return await self._afinish(request, response)
        except StoreUnavailable as exc:
            return unavailable_response(exc)

    # Django's hooks, for code that drives a middleware by hand (tests with RequestFactory:
    # ``middleware.process_request(request)``); a real request goes through __call__.
    def process_request(self, request: HttpRequest) -> None:
        self._start(request)

    def process_response(  # type: ignore[override]
        self, request: HttpRequest, response: HttpResponseBase
    ) -> HttpResponseBase:
        if not hasattr(request, "_sessionkit"):
            return response
        try:
            return self._finish(request, response)
        except StoreUnavailable as exc:
            return unavailable_response(exc)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        """A view that hit an unreachable store gets a 503, not a 500 traceback; a login
        refused past MAX_SESSIONS_PER_USER that the view did not catch, the 403 page."""
        if isinstance(exception, StoreUnavailable):
            return unavailable_response(exception)
        if isinstance(exception, limits.SessionLimitReached):
            return limits.refused_response(request, exception)
        return None

    # --- request ------------------------------------------------------------

    def _start(self, request: HttpRequest) -> None:
        # Nothing is verified yet: a request that never uses its session costs no HMAC.
        raw = cookies.read_cookie(request, conf.NAME)
        session = SessionStore.from_cookie(request, raw)
        request.session = session
        request._sessionkit = _RequestState(request, raw, session)  # type: ignore[attr-defined]

    # --- response -----------------------------------------------------------

    def _plan(self, request: HttpRequest, response: HttpResponseBase) -> _Plan:
        state: _RequestState = request._sessionkit  # type: ignore[attr-defined]
        session = getattr(request, "session", None)
        if session is None:  # the view set request.session = None
            if conf.UNSET == "destroy" and not state.session.is_new:
                return _Plan("destroy")
            return _Plan("none")
        if not isinstance(session, SessionStore) or response.status_code >= 500:
            return _Plan("none")
        if session.refused and not session.has_changes():
            return _Plan("none")  # a refused login writes nothing, not even a touch
        if not session.accessed:
            wants_load = conf.SAVE_UNINITIALIZED or (
                (conf.ROLLING or conf.RESAVE) and state.cookie_id is not None
            )
            return _Plan("load" if wants_load else "none")
        if session.is_empty() and not conf.SAVE_UNINITIALIZED:
            return _Plan("delete-cookie" if state.cookie_present else "none")
        if session.is_new:
            if not (session.has_changes() or conf.SAVE_UNINITIALIZED):
                return _Plan("none")
            if cookies.cookie_would_be_dropped(request):
                logger.warning(
                    "Not saving a new session: its cookie is Secure but this request is not "
                    "(check SESSIONKIT['PROXY'] or SECURE_PROXY_SSL_HEADER behind a TLS proxy)."
                )
                return _Plan("none")
            return _Plan("create", set_cookie=True)
        if session.has_changes():
            keeps_expiry = not session.get_expire_at_browser_close()
            return _Plan("save", set_cookie=conf.ROLLING or keeps_expiry or session.admitted)
        if session.admitted:  # saved at login (MAX_SESSIONS_POLICY = "refuse"): its cookie
            return _Plan("none", set_cookie=True)
        if conf.RESAVE:
            return _Plan("save", set_cookie=conf.ROLLING)
        if conf.ROLLING or conf.IDLE_TIMEOUT is not None:
            if _touched_lately(session):  # TOUCH_AFTER: the stored expiry stays a while
                return _Plan("none", set_cookie=conf.ROLLING)
            return _Plan("touch", set_cookie=True)
        return _Plan("none")

    @staticmethod
    def _must_rotate_legacy(request: HttpRequest, response: HttpResponseBase) -> bool:
        state: _RequestState = request._sessionkit  # type: ignore[attr-defined]
        return state.legacy and request.session is state.session and response.status_code < 500

    def _finish(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        session: SessionStore = request._sessionkit.session  # type: ignore[attr-defined]
        if self._must_rotate_legacy(request, response):
            session._get_session()
            if session.record is not None:  # an imported Django session: give it one of our ids
                session.pop(IMPORTED_KEY, None)
                audit.mark_imported(session)
                session.cycle_key()
        plan = self._plan(request, response)
        if plan.action == "load":
            session._get_session()
            plan = self._plan(request, response)
        session.end_timed_out()
        if _admitted_in_vain(session, response):
            session.delete()
        if plan.action == "destroy":
            session.delete()
            cookies.delete_session_cookie(response)
            session.send_events()
            return response
        if plan.action in ("create", "save"):
            try:
                session.save()
            except UpdateError as exc:
                raise SessionInterrupted(_INTERRUPTED) from exc
        elif plan.action == "touch":
            plan.set_cookie = session.touch()
        responded = self._respond(request, response, plan)
        session.send_events()  # after every store call of the request
        return responded

    async def _afinish(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        session: SessionStore = request._sessionkit.session  # type: ignore[attr-defined]
        if self._must_rotate_legacy(request, response):
            await session._aget_session()
            if session.record is not None:
                await session.apop(IMPORTED_KEY, None)
                audit.mark_imported(session)
                await session.acycle_key()
        plan = self._plan(request, response)
        if plan.action == "load":
            await session._aget_session()
            plan = self._plan(request, response)
        await session.aend_timed_out()
        if _admitted_in_vain(session, response):
            await session.adelete()
        if plan.action == "destroy":
            await session.adelete()
            cookies.delete_session_cookie(response)
            await session.asend_events()
            return response
        if plan.action in ("create", "save"):
            try:
                await session.asave()
            except UpdateError as exc:
                raise SessionInterrupted(_INTERRUPTED) from exc
        elif plan.action == "touch":
            plan.set_cookie = await session.atouch()
        responded = self._respond(request, response, plan)
        await session.asend_events()  # after every store call of the request
        return responded

    def _respond(
        self, request: HttpRequest, response: HttpResponseBase, plan: _Plan
    ) -> HttpResponseBase:
        session = request.session
        vary = getattr(session, "accessed", False)
        if plan.action == "delete-cookie":
            cookies.delete_session_cookie(response)
            vary = True
        elif plan.set_cookie and not cookies.cookie_would_be_dropped(request):
            assert isinstance(session, SessionStore) and session.cookie_value is not None
            record = session.record
            expires_at = (
                None
                if record is None or session.get_expire_at_browser_close()
                else record.expires_at
            )
            cookies.set_session_cookie(response, request, session.cookie_value, expires_at)
            vary = True
        if vary:
            patch_vary_headers(response, ("Cookie",))
        return response
