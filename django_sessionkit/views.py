"""'Where you're signed in': a user's own live sessions, and signing them out.

Include with ``path("account/sessions/", include("django_sessionkit.urls"))``.
Every lookup goes through ``Store.list(user_id=<the signed-in user>)``, so a
session of anyone else can never be shown or ended from here.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import resolve_url
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import ngettext
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from django_sessionkit import audit, lifecycle
from django_sessionkit.admin_views import current_key, rows, session_ref
from django_sessionkit.stores import get_store

__all__ = ["end_others", "end_session", "session_list"]

#: Most sessions one user's page shows.
MAX_USER_SESSIONS = 100
#: Most ended sessions (kept for KEEP_ENDED) it shows.
MAX_ENDED_SHOWN = 20


def _user_id(request: HttpRequest) -> str:
    return str(request.user.pk)


@never_cache  # who signed in from where: never kept by a browser or a shared cache
@login_required
@require_GET
def session_list(request: HttpRequest) -> HttpResponse:
    store = get_store()
    user_id = _user_id(request)
    items = store.list(user_id=user_id, limit=MAX_USER_SESSIONS)
    own = current_key(request)
    page_rows = rows(items, own)
    page_rows.sort(key=lambda row: not row.is_current)  # this device first
    context = {
        "sessions": page_rows,
        "others": sum(not row.is_current for row in page_rows),
        "truncated": len(items) == MAX_USER_SESSIONS,
        # The audit trail (KEEP_ENDED): how each started, and the ones that ended lately.
        "audit": audit.is_on(),
        "ended": audit.for_user(user_id, MAX_ENDED_SHOWN),
    }
    return TemplateResponse(request, "django_sessionkit/sessions.html", context)


@login_required
@require_POST
def end_session(request: HttpRequest) -> HttpResponse:
    """Sign out one of the user's own sessions (``session`` = its ref)."""
    store = get_store()
    ref = request.POST.get("session", "")
    own = current_key(request)
    mine = store.list(user_id=_user_id(request), limit=MAX_USER_SESSIONS)
    key = next((key for key, _ in mine if session_ref(key) == ref), None)
    if key is None:
        raise Http404("No such session of yours.")
    if key == own:
        logout(request)
        return HttpResponseRedirect(resolve_url(settings.LOGOUT_REDIRECT_URL or settings.LOGIN_URL))
    record = next(record for k, record in mine if k == key)
    lifecycle.end_one(store, key, record, by="user", request=request)
    messages.success(request, "That session was signed out.", fail_silently=True)
    return HttpResponseRedirect(reverse("sessionkit:sessions"))


@login_required
@require_POST
def end_others(request: HttpRequest) -> HttpResponse:
    """Sign out every other session of this user; this one stays signed in."""
    ended = lifecycle.end_user(
        get_store(), _user_id(request), keep=current_key(request), by="user", request=request
    )
    messages.success(
        request,
        ngettext(
            "%(count)d other session was signed out.",
            "%(count)d other sessions were signed out.",
            ended,
        )
        % {"count": ended},
        fail_silently=True,
    )
    return HttpResponseRedirect(reverse("sessionkit:sessions"))
