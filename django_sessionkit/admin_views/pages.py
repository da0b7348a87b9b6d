"""The list and detail pages."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.template.response import TemplateResponse
from django.urls import reverse

from django_sessionkit import audit, masking
from django_sessionkit.stores import get_store

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin

from django_sessionkit.admin_views.parsing import (
    PAGE_SIZE,
    WHO_CHOICES,
    is_ref,
    is_user_id,
    moment,
)
from django_sessionkit.admin_views.query import (
    Query,
    find_session,
    list_sessions,
)
from django_sessionkit.admin_views.rows import (
    _user_url,
    _users,
    current_key,
    rows,
)

# --- the views ----------------------------------------------------------------------


def _context(model_admin: ModelAdmin[Any], request: HttpRequest, **extra: Any) -> dict[str, Any]:
    return {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "app_label": model_admin.opts.app_label,
        "has_view_permission": model_admin.has_view_permission(request),
        "has_delete_permission": model_admin.has_delete_permission(request),
        **extra,
    }


def _url(model_admin: ModelAdmin[Any], name: str, *args: Any) -> str:
    opts = model_admin.opts
    return reverse(
        f"{model_admin.admin_site.name}:{opts.app_label}_{opts.model_name}_{name}", args=args
    )


def changelist(model_admin: ModelAdmin[Any], request: HttpRequest) -> HttpResponse:
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    store = get_store()
    query = Query.from_request(request.GET)
    listing = list_sessions(store, query)
    page_rows = rows(listing.items, current_key(request), model_admin.admin_site.name)
    filtered_user = None
    if query.user:
        filtered_user = _users([query.user]).get(query.user)
    filters = [
        (
            "By user",
            [
                (label, query.params(who=value, after=""), query.who == value)
                for value, label in [("", "All"), *WHO_CHOICES.items()]
            ],
        ),
        (
            "Active",
            [
                (label, query.params(active=value, after=""), query.active == value)
                for value, label in [("", "Any time"), ("day", "Last day"), ("hour", "Last hour")]
            ],
        ),
    ]
    context = _context(
        model_admin,
        request,
        title="Live sessions",
        subtitle=None,
        rows=page_rows,
        listing=listing,
        query=query,
        filters=filters,
        filtered_user=filtered_user,
        first_row=listing.start + 1,
        last_row=listing.start + len(listing.items),
        next_url=listing.next_url,
        prev_url=listing.prev_url,
        first_url=query.first_page() if query.back else None,
        clear_url=query.params(user="", q="", who="", active="", after=""),
        hint_users=",".join(sorted({r.user_id for r in page_rows if r.user_id})),
        hint_seen=",".join(f"{r.ref}.{r.seen}" for r in page_rows),
        return_query=query.params()[1:],
        revoke_url=_url(model_admin, "revoke"),
    )
    return TemplateResponse(request, "django_sessionkit/admin/session_list.html", context)


def _hints(params: QueryDict) -> tuple[list[str], dict[str, datetime]]:
    """Where a session was on the page a link or form came from: its user (``u``,
    ``hint_users``), its last-seen time (``s`` with the ref in the URL, ``hint_seen``)."""
    users_text = ",".join(params.getlist("hint_users")) or params.get("u", "")
    users = [u for u in users_text.split(",") if is_user_id(u)][:50]
    seen = {}
    for entry in ",".join(params.getlist("hint_seen")).split(",")[: PAGE_SIZE * 2]:
        ref, _, at = entry.partition(".")
        when = moment(at)
        if is_ref(ref) and when is not None:
            seen[ref] = when
    return users, seen


def detail(model_admin: ModelAdmin[Any], request: HttpRequest, ref: str) -> HttpResponse:
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    store = get_store()
    users, seen = _hints(request.GET)
    at = moment(request.GET.get("s", ""))
    if at is not None:
        seen[ref] = at
    item = find_session(store, ref, user_ids=users, seen=seen)
    if item is None:
        return _ended_detail(model_admin, request, ref)
    (row,) = rows([item], current_key(request), model_admin.admin_site.name)
    record = item[1]
    context = _context(
        model_admin,
        request,
        title=f"Session {row.ref}",
        subtitle=None,
        row=row,
        data=masking.pretty(record.data),
        user_session_count=store.count(user_id=record.user_id) if record.user_id else None,
        ended=audit.for_user(record.user_id, ENDED_SHOWN) if record.user_id else [],
        revoke_url=_url(model_admin, "revoke"),
        changelist_url=_url(model_admin, "changelist"),
    )
    return TemplateResponse(request, "django_sessionkit/admin/session_detail.html", context)


#: Most of a user's ended sessions the detail page lists.
ENDED_SHOWN = 10


def _ended_detail(model_admin: ModelAdmin[Any], request: HttpRequest, ref: str) -> HttpResponse:
    """The page of a session that ended and is still kept (KEEP_ENDED): how and when."""
    ended = audit.find(ref) if audit.is_on() and is_ref(ref) else None
    if ended is None:
        raise Http404("No live session with that reference (it may have ended).")
    user = _users([ended.user_id]).get(ended.user_id) if ended.user_id else None
    context = _context(
        model_admin,
        request,
        title=f"Session {ended.ref} (ended)",
        subtitle=None,
        ended=ended,
        user=user,
        user_url=_user_url(model_admin.admin_site.name, user) if user is not None else None,
        changelist_url=_url(model_admin, "changelist"),
    )
    return TemplateResponse(request, "django_sessionkit/admin/session_ended.html", context)
