"""Ending sessions from the admin: the confirmation page and the revoke action."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import messages
from django.contrib.auth import logout
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import ngettext

from django_sessionkit import lifecycle
from django_sessionkit.stores import get_store

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin

from django_sessionkit.admin_views.pages import (
    _context,
    _hints,
    _url,
)
from django_sessionkit.admin_views.parsing import (
    Item,
    is_user_id,
)
from django_sessionkit.admin_views.query import (
    find_sessions,
)
from django_sessionkit.admin_views.rows import (
    _users,
    current_key,
    rows,
)

ACTIONS = {
    "selected": "End the selected sessions",
    "user": "End every session of this user",
    "others": "End every session except yours",
}


def revoke(model_admin: ModelAdmin[Any], request: HttpRequest) -> HttpResponse:
    """Confirm, then end sessions: POST only; needs the delete permission."""
    if not model_admin.has_delete_permission(request):
        raise PermissionDenied
    changelist_url = _url(model_admin, "changelist")
    if request.method != "POST":
        return HttpResponseRedirect(changelist_url)
    store = get_store()
    action = request.POST.get("action", "")
    own = current_key(request)
    return_query = request.POST.get("return_query", "")
    back = changelist_url + ("?" + return_query.lstrip("?") if return_query else "")
    if action not in ACTIONS:
        messages.warning(request, "Choose what to end.")
        return HttpResponseRedirect(back)
    confirmed = request.POST.get("confirm") == "yes"
    targets: list[Item] = []
    user_id = request.POST.get("user", "")
    if action == "selected":
        refs = set(request.POST.getlist("session"))
        users, seen = _hints(request.POST)
        targets = list(find_sessions(store, refs, user_ids=users, seen=seen).values())
        if not targets:
            messages.warning(request, "No live session selected (they may have ended already).")
            return HttpResponseRedirect(back)
    elif action == "user" and not is_user_id(user_id):
        messages.warning(request, "No user given." if not user_id else "No user has that id.")
        return HttpResponseRedirect(back)

    if not confirmed:
        user_count = store.count(user_id=user_id) if action == "user" else None
        target_rows = rows(targets, own, model_admin.admin_site.name)
        context = _context(
            model_admin,
            request,
            title="Are you sure?",
            subtitle=None,
            action=action,
            action_label=ACTIONS[action],
            target_rows=target_rows,
            includes_own=any(r.is_current for r in target_rows),
            target_user=_users([user_id]).get(user_id) if user_id else None,
            user_id=user_id,
            user_count=user_count,
            return_query=return_query,
            back_url=back,
            revoke_url=_url(model_admin, "revoke"),
        )
        return TemplateResponse(request, "django_sessionkit/admin/revoke_confirm.html", context)

    own_ended = False
    if action == "selected":
        for key, record in targets:
            lifecycle.end_one(store, key, record, by="admin", request=request)
        ended = len(targets)
        own_ended = any(key == own for key, _ in targets)
    elif action == "user":
        ended = lifecycle.end_user(store, user_id, keep=own, by="admin", request=request)
    else:
        ended = lifecycle.end_all(store, keep=own, by="admin", request=request)
    if own_ended:
        logout(request)  # this browser's session is gone: finish signing it out
        return HttpResponseRedirect(reverse(f"{model_admin.admin_site.name}:login"))
    messages.success(
        request,
        ngettext("%(count)d session was ended.", "%(count)d sessions were ended.", ended)
        % {"count": ended},
    )
    return HttpResponseRedirect(back)
