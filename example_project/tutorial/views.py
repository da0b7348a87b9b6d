"""express-session's tutorials, as Django views."""

from __future__ import annotations

import importlib.util
from datetime import timedelta
from typing import Any

from django.contrib.auth import logout
from django.contrib.auth import views as auth_views
from django.forms import Form
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

#: The "where you're signed in" pages, when this version of django_sessionkit has them.
HAS_DEVICES_PAGE = importlib.util.find_spec("django_sessionkit.urls") is not None

#: The short lifetime the expiry page gives this session, in seconds.
SHORT_MAX_AGE = 30


def navigation(request: HttpRequest) -> dict[str, Any]:
    """Context processor: what the menu shows."""
    return {"has_devices_page": HAS_DEVICES_PAGE}


def counter(request: HttpRequest) -> HttpResponse:
    """``req.session.views = (req.session.views || 0) + 1``"""
    views = request.session.get("views", 0) + 1
    request.session["views"] = views
    return render(request, "tutorial/counter.html", {"views": views})


def whoami(request: HttpRequest) -> HttpResponse:
    """The signed-in user, what the session holds and what the store knows about it."""
    session = request.session
    data = dict(session.items())  # loads the session
    return render(
        request,
        "tutorial/whoami.html",
        {
            "data": sorted(data.items()),
            # Our engine's extras: the record as stored, and the hash the store keys it by.
            "record": getattr(session, "record", None),
            "key_hash": getattr(session, "key_hash", None),
            "lifetimes": lifetimes(getattr(session, "record", None)),
        },
    )


def lifetimes(record: Any) -> list[tuple[str, str]]:
    """The session's own limits (SESSIONKIT's lifetime keys), as the whoami page shows them."""
    from django_sessionkit.conf import sessionkit_settings as conf

    shown = []
    if conf.IDLE_TIMEOUT is not None:
        shown.append(("Idle timeout", f"ends after {conf.IDLE_TIMEOUT} s without a visit"))
    if conf.ABSOLUTE_TIMEOUT is not None:
        until = ""
        if record is not None:
            end = timezone.localtime(record.created_at + timedelta(seconds=conf.ABSOLUTE_TIMEOUT))
            until = f", at {end:%H:%M:%S} at the latest"
        shown.append(("Absolute timeout", f"{conf.ABSOLUTE_TIMEOUT} s after sign-in{until}"))
    if conf.ANONYMOUS_MAX_AGE is not None:
        shown.append(("Anonymous sessions", f"live at most {conf.ANONYMOUS_MAX_AGE} s"))
    if conf.MAX_SESSIONS_PER_USER is not None:
        past = (
            "is refused"
            if conf.MAX_SESSIONS_POLICY == "refuse"
            else "ends your least recently seen session"
        )
        shown.append(
            ("Sessions per user", f"at most {conf.MAX_SESSIONS_PER_USER}; a login past it {past}")
        )
    return shown


class LoginView(auth_views.LoginView):
    """Django's LoginView, showing a login refused by MAX_SESSIONS_POLICY = "refuse" on the
    form (without this, the middleware answers it with a 403 page)."""

    def form_valid(self, form: Form) -> HttpResponse:
        from django_sessionkit.limits import SessionLimitReached

        try:
            return super().form_valid(form)  # type: ignore[arg-type]
        except SessionLimitReached as exc:
            form.add_error(None, str(exc))
            return self.form_invalid(form)  # type: ignore[arg-type]


@require_POST
def logout_view(request: HttpRequest) -> HttpResponse:
    """``req.session.destroy()``: Django's logout() flushes the session.

    The stored session is deleted and the response deletes the cookie.
    """
    logout(request)
    return redirect("whoami")


def expiry(request: HttpRequest) -> HttpResponse:
    """Give this session a short ``maxAge`` and watch it run out."""
    session = request.session
    if request.method == "POST":
        if request.POST.get("action") == "reset":
            session.set_expiry(None)  # back to SESSIONKIT["COOKIE"]["MAX_AGE"]
        else:
            session.set_expiry(SHORT_MAX_AGE)
            session["short_lived"] = True  # something to lose when it expires
        return redirect("expiry")
    session.get("short_lived")  # loads the session, so its record is known
    record = getattr(session, "record", None)
    seconds_left = None
    if record is not None:
        seconds_left = max(0, int((record.expires_at - timezone.now()).total_seconds()))
    return render(
        request,
        "tutorial/expiry.html",
        {
            "record": record,
            "seconds_left": seconds_left,
            "short_max_age": SHORT_MAX_AGE,
            "browser_session": record is not None and session.get_expire_at_browser_close(),
        },
    )
