"""The benchmark's views: the same tiny responses on every engine.

With no session middleware (the ceiling) every view answers ``ok`` without a session.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model, login
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse

BACKEND = "django.contrib.auth.backends.ModelBackend"
BENCH_USER = "bench"
_user: list[Any] = []


def _ok() -> HttpResponse:
    return HttpResponse(b"ok", content_type="text/plain")


def _has_session(request: HttpRequest) -> bool:
    return hasattr(request, "session")


def untouched(request: HttpRequest) -> HttpResponse:
    return _ok()


def first(request: HttpRequest) -> HttpResponse:
    if _has_session(request):
        request.session["views"] = 1
    return _ok()


def read(request: HttpRequest) -> HttpResponse:
    if _has_session(request):
        request.session.get("views")
    return _ok()


def write(request: HttpRequest) -> HttpResponse:
    if _has_session(request):
        request.session["views"] = request.session.get("views", 0) + 1
    return _ok()


def incr(request: HttpRequest) -> HttpResponse:
    request.session.incr("views")  # type: ignore[attr-defined]
    return _ok()


def set_key(request: HttpRequest, key: str) -> HttpResponse:
    request.session[key] = 1
    return _ok()


def bench_login(request: HttpRequest) -> HttpResponse:
    if _has_session(request):
        if not _user:  # fetched once per process: the login measures the session only
            _user.append(get_user_model().objects.get(username=BENCH_USER))
        login(request, _user[0], backend=BACKEND)
    return _ok()


def show(request: HttpRequest) -> JsonResponse:
    data = dict(request.session.items())
    return JsonResponse({"views": data.get("views"), "keys": sum(k[:1] == "k" for k in data)})


def prime(request: HttpRequest) -> HttpResponse:
    """``n`` new anonymous sessions holding ``views=1``; one Cookie header value a line."""
    n = max(1, min(int(request.GET.get("n", "1")), 100_000))
    engine = import_module(settings.SESSION_ENGINE)
    name = settings.SESSION_COOKIE_NAME
    lines = []
    with transaction.atomic():  # one commit for the lot on the database engines
        for _ in range(n):
            session = engine.SessionStore()
            session["views"] = 1
            session.save()
            lines.append(f"{name}={session.session_key}")
    return HttpResponse("\n".join(lines) + "\n", content_type="text/plain")
