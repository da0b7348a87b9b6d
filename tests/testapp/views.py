"""Tiny views that exercise request.session the ways real projects do."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import (
    aget_user,
    alogin,
    get_user_model,
    login,
    logout,
    update_session_auth_hash,
)
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import get_token


def plain(request: HttpRequest) -> HttpResponse:
    return HttpResponse("plain")


def read(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"data": dict(request.session.items())})


def count(request: HttpRequest) -> JsonResponse:
    request.session["views"] = request.session.get("views", 0) + 1
    return JsonResponse({"views": request.session["views"]})


def incr(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"views": request.session.incr("views")})  # type: ignore[attr-defined]


def session_key(request: HttpRequest) -> JsonResponse:
    """What apps copy into their tables: request.session.session_key, after a change."""
    request.session["views"] = request.session.get("views", 0) + 1
    if request.session.session_key is None:  # a new visitor: as in Django, saved first
        request.session.save()
    return JsonResponse({"key": request.session.session_key, "views": request.session["views"]})


def set_value(request: HttpRequest, key: str, value: str) -> JsonResponse:
    request.session[key] = value
    return JsonResponse({key: value})


def nested_append(request: HttpRequest) -> JsonResponse:
    cart = request.session.setdefault("cart", {"items": []})
    cart["items"].append(len(cart["items"]))  # changes a nested value only
    return JsonResponse(cart)


def login_view(request: HttpRequest, username: str) -> HttpResponse:
    user = get_user_model().objects.get(username=username)
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    return HttpResponse(f"hello {username}")


def login_form(request: HttpRequest, username: str) -> HttpResponse:
    """A login view that shows a refused login's message on its own page (as a project's
    form would), instead of the middleware's 403."""
    from django_sessionkit.limits import SessionLimitReached

    user = get_user_model().objects.get(username=username)
    try:
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    except SessionLimitReached as exc:
        who = request.user.get_username() if request.user.is_authenticated else None
        return JsonResponse({"error": str(exc), "user": who})
    return JsonResponse({"error": None, "user": username})


def login_then_fail(request: HttpRequest, username: str) -> HttpResponse:
    user = get_user_model().objects.get(username=username)
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    return HttpResponse("boom", status=500)


def logout_view(request: HttpRequest) -> HttpResponse:
    logout(request)
    return HttpResponse("bye")


def whoami(request: HttpRequest) -> JsonResponse:
    user = request.user
    return JsonResponse({"user": user.get_username() if user.is_authenticated else None})


def flush(request: HttpRequest) -> HttpResponse:
    request.session.flush()
    return HttpResponse("flushed")


def regenerate(request: HttpRequest) -> HttpResponse:
    request.session.regenerate()  # type: ignore[attr-defined]
    return HttpResponse("regenerated")


def unset(request: HttpRequest) -> HttpResponse:
    request.session.get("anything")
    request.session = None  # type: ignore[assignment]
    return HttpResponse("unset")


def server_error(request: HttpRequest) -> HttpResponse:
    request.session["during_error"] = True
    return HttpResponse("boom", status=500)


def set_expiry(request: HttpRequest, seconds: int) -> HttpResponse:
    request.session.set_expiry(seconds)
    return HttpResponse(str(seconds))


def add_message(request: HttpRequest) -> HttpResponse:
    messages.info(request, "saved!")
    return HttpResponse("added")


def read_messages(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"messages": [str(m) for m in messages.get_messages(request)]})


def change_password(request: HttpRequest, username: str) -> HttpResponse:
    user = request.user  # as PasswordChangeView does: the signed-in user changes their password
    assert user.is_authenticated and user.get_username() == username
    user.set_password("a-new-password")
    user.save()
    update_session_auth_hash(request, user)
    return HttpResponse("changed")


async def async_count(request: HttpRequest) -> JsonResponse:
    views = await request.session.aget("views", 0) + 1
    await request.session.aset("views", views)
    return JsonResponse({"views": views})


async def async_login(request: HttpRequest, username: str) -> HttpResponse:
    user = await get_user_model().objects.aget(username=username)
    await alogin(request, user, backend="django.contrib.auth.backends.ModelBackend")
    return HttpResponse(f"hello {username}")


async def async_read(request: HttpRequest) -> JsonResponse:
    user = await aget_user(request)
    data = dict(await request.session.aitems())
    return JsonResponse({"user": user.get_username() or None, "data": data})


def csrf_form(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        return HttpResponse("posted")
    return HttpResponse(get_token(request))
