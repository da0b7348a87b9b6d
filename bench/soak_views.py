"""Views and middleware of the fault runs (``bash bench/soak``: bench/faults.py, bench/soak.py).

Each virtual client of a run is one user (``soak0``, ``soak1``…, password
:data:`PASSWORD`) and keeps its own idea of what the server holds for it; these views
tell it what the server really holds:

* ``POST soak/login/`` (username, password): a password login, as a site's login form.
* ``GET soak/incr/``: ``request.session.incr("views")``; answers whether a stored
  session was found and whose it is.
* ``GET soak/whoami/``: the session's user (through ``django.contrib.auth.get_user``,
  which checks the session's auth hash), whether a stored session was found, ``views``.
* ``POST soak/logout/``: ``django.contrib.auth.logout``.
* ``POST soak/revoke/`` (user): an admin ending one user's sessions through the store API
  (``get_store().delete_for_user``), as the admin's "sign out everywhere" does.

:func:`report`, outside the session middleware (``BENCH_SOAK=1``), adds to every response
the worker's pid, the time the worker spent on it, and ``X-Views``: the counter as the
session holds it after its save (a save merged onto a newer copy shows the merged value).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

from django.contrib.auth import authenticate, get_user, login, logout
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.views.decorators.http import require_GET, require_POST

from django_sessionkit.stores import get_store

PASSWORD = "soak-password"  # a throwaway bench user's
USERS = 64


def report(get_response: Callable[[HttpRequest], HttpResponseBase]) -> Callable[..., object]:
    def middleware(request: HttpRequest) -> HttpResponseBase:
        started = time.perf_counter()
        response = get_response(request)
        cache = getattr(getattr(request, "session", None), "_session_cache", None)
        if response.status_code == 200 and isinstance(cache, dict) and "views" in cache:
            response["X-Views"] = str(cache["views"])
        response["X-Worker"] = str(os.getpid())
        response["X-Handled-Ms"] = f"{(time.perf_counter() - started) * 1000:.1f}"
        return response

    return middleware


def _found(request: HttpRequest) -> bool:
    """Whether the request's cookie led to a stored session (after it was loaded)."""
    return getattr(request.session, "record", None) is not None


@require_POST
def soak_login(request: HttpRequest) -> HttpResponse:
    user = authenticate(
        request,
        username=request.POST.get("username", ""),
        password=request.POST.get("password", ""),
    )
    if user is None:
        return JsonResponse({"error": "wrong username or password"}, status=403)
    login(request, user)
    return JsonResponse({"user": str(user.pk)})


@require_GET
def soak_incr(request: HttpRequest) -> HttpResponse:
    value = request.session.incr("views")  # type: ignore[attr-defined]
    return JsonResponse(
        {"found": _found(request), "user": request.session.get("_auth_user_id"), "views": value}
    )


@require_GET
def soak_whoami(request: HttpRequest) -> HttpResponse:
    views = request.session.get("views")
    user = get_user(request)
    return JsonResponse(
        {
            "found": _found(request),
            "user": str(user.pk) if user.is_authenticated else None,
            "views": views,
        }
    )


@require_POST
def soak_logout(request: HttpRequest) -> HttpResponse:
    logout(request)
    return JsonResponse({"user": None})


@require_POST
def soak_revoke(request: HttpRequest) -> HttpResponse:
    ended = get_store().delete_for_user(request.POST["user"])
    return JsonResponse({"ended": ended})


def setup_users() -> dict[str, str]:
    """The run's users (created when missing): username -> id."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password

    model = get_user_model()
    password = make_password(PASSWORD)
    names = [f"soak{i}" for i in range(USERS)]
    have = set(model.objects.filter(username__in=names).values_list("username", flat=True))
    model.objects.bulk_create(
        [model(username=name, password=password) for name in names if name not in have]
    )
    rows = model.objects.filter(username__in=names).values_list("username", "pk")
    return {name: str(pk) for name, pk in rows}


if __name__ == "__main__":  # python -m bench.soak_views setup: migrate, users; prints JSON
    import json

    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    django.setup()
    from django.core.management import call_command

    if sys.argv[1:] != ["setup"]:
        raise SystemExit("usage: python -m bench.soak_views setup")
    call_command("migrate", verbosity=0, interactive=False)
    print("USERS " + json.dumps(setup_users()), flush=True)
