"""The admin's session pages, over the Store interface only.

Every page view does work in proportion to the page it shows: it asks the
store for one page (``Store.list``), and per-user counts (``Store.count``
with a ``user_id``, an indexed lookup). A filter the Store interface cannot
apply (signed-in/anonymous, IP) is applied here while scanning forward from
the page's position, examining at most :data:`SCAN_BUDGET` sessions per view.

Sessions are named by :func:`session_ref`: the first 12 hex digits of the
store key (itself a SHA-256 of the id), never the id.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.contrib import messages
from django.contrib.auth import get_user_model, logout
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Model, Q
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.translation import ngettext

from django_sessionkit import masking, useragent
from django_sessionkit.conf import sessionkit_settings
from django_sessionkit.stores import get_store
from django_sessionkit.stores.base import SessionRecord, Store

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin

__all__ = [
    "PAGE_SIZE",
    "REF_LENGTH",
    "SCAN_BUDGET",
    "Listing",
    "Query",
    "find_session",
    "list_sessions",
    "revoke_all_except",
    "session_ref",
]

REF_LENGTH = 12
PAGE_SIZE = 50
#: Sessions examined per page view for filters the store cannot apply itself.
SCAN_BUDGET = 2000
#: Users a username/email search may match; more asks for a narrower search.
MAX_SEARCH_USERS = 20
#: Sessions examined, as a last resort, to find a session by its ref.
RESOLVE_SCAN_LIMIT = 5000
#: Sessions listed, deleted, then listed again by "revoke all except mine".
REVOKE_BATCH = 500

ACTIVE_WINDOWS = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
WHO_CHOICES = {"signed-in": "Signed in", "anonymous": "Anonymous"}

_IP_FRAGMENT = re.compile(r"^(?:[0-9]{1,3}\.[0-9.]*|[0-9a-fA-F]{0,4}:[0-9a-fA-F:.]*)$")

Item = tuple[str, SessionRecord]
Fetch = Callable[[int, int], list[Item]]


def session_ref(key: str) -> str:
    """The short public name of the session stored under ``key``.

    With ``COMPAT="express"`` the store key is the raw id, so the ref is a
    prefix of its SHA-256 instead.
    """
    if sessionkit_settings.COMPAT == "express":
        return hashlib.sha256(key.encode()).hexdigest()[:REF_LENGTH]
    return key[:REF_LENGTH]


def is_ref(value: str) -> bool:
    return len(value) == REF_LENGTH and all(ch in "0123456789abcdef" for ch in value)


# --- the query behind a list page ----------------------------------------------------


@dataclasses.dataclass
class Query:
    """What the list page was asked for (from its query string)."""

    who: str = ""
    active: str = ""
    user: str = ""
    q: str = ""
    offset: int = 0

    @classmethod
    def from_request(cls, params: QueryDict) -> Query:
        try:
            offset = max(0, int(params.get("o", "0")))
        except ValueError:
            offset = 0
        who = params.get("who", "")
        active = params.get("active", "")
        return cls(
            who=who if who in WHO_CHOICES else "",
            active=active if active in ACTIVE_WINDOWS else "",
            user=params.get("user", "").strip()[:64],
            q=params.get("q", "").strip()[:200],
            offset=offset,
        )

    def params(self, **changes: Any) -> str:
        """This query's string with ``changes`` applied (empty values dropped)."""
        values = {**dataclasses.asdict(self), **changes}
        query = QueryDict(mutable=True)
        for name, param in (("who", "who"), ("active", "active"), ("user", "user"), ("q", "q")):
            if values[name]:
                query[param] = values[name]
        if values["offset"]:
            query["o"] = str(values["offset"])
        return "?" + query.urlencode() if query else "?"

    @property
    def ip_prefix(self) -> str | None:
        return self.q if self.q and _IP_FRAGMENT.match(self.q) else None

    @property
    def since(self) -> datetime | None:
        window = ACTIVE_WINDOWS.get(self.active)
        return None if window is None else timezone.now() - window


@dataclasses.dataclass
class Listing:
    items: list[Item]
    offset: int
    next_offset: int | None
    prev_offset: int | None
    total: int | None
    #: The scan budget ran out before the page was full; "Next" goes on from there.
    budget_exhausted: bool = False
    #: The search matched more users than are searched at once.
    too_many_users: bool = False
    scanned: bool = False


def _user_search(q: str) -> tuple[list[str], bool]:
    """Ids (as the store keeps them) of users whose username or email contains ``q``."""
    User = get_user_model()
    fields = [User.USERNAME_FIELD]
    email_field = User.get_email_field_name()
    if any(f.name == email_field for f in User._meta.get_fields()) and email_field not in fields:
        fields.append(email_field)
    condition = Q()
    for field in fields:
        condition |= Q(**{f"{field}__icontains": q})
    ids = [
        str(pk)
        for pk in User._default_manager.filter(condition)
        .order_by("pk")
        .values_list("pk", flat=True)[: MAX_SEARCH_USERS + 1]
    ]
    return ids[:MAX_SEARCH_USERS], len(ids) > MAX_SEARCH_USERS


def _fetcher(store: Store, user_ids: Sequence[str] | None) -> Fetch:
    """A function returning sessions ``[offset:offset+limit]``, most recently seen first."""
    if user_ids is None:
        return lambda offset, limit: store.list(offset=offset, limit=limit)
    if not user_ids:
        return lambda offset, limit: []
    if len(user_ids) == 1:
        (only,) = user_ids
        return lambda offset, limit: store.list(user_id=only, offset=offset, limit=limit)

    def merged(offset: int, limit: int) -> list[Item]:
        items: list[Item] = []
        for user_id in user_ids:
            items += store.list(user_id=user_id, offset=0, limit=offset + limit)
        items.sort(key=lambda item: (item[1].last_seen, item[0]), reverse=True)
        return items[offset : offset + limit]

    return merged


def _predicate(query: Query) -> Callable[[SessionRecord], bool] | None:
    tests: list[Callable[[SessionRecord], bool]] = []
    if query.who == "anonymous":
        tests.append(lambda record: record.user_id is None)
    elif query.who == "signed-in":
        tests.append(lambda record: record.user_id is not None)
    prefix = query.ip_prefix
    if prefix is not None:
        tests.append(lambda record: bool(record.ip) and str(record.ip).startswith(prefix))
    if not tests:
        return None
    return lambda record: all(test(record) for test in tests)


def estimated_total(store: Store) -> int | None:
    """A cheap total for the unfiltered list, when the store can give one."""
    return store.estimate_count()


def list_sessions(store: Store, query: Query, limit: int = PAGE_SIZE) -> Listing:
    """One page of sessions for ``query``; the store is asked for O(page) records."""
    user_ids: list[str] | None = None
    too_many = False
    if query.user:
        user_ids = [query.user]
    if query.q and query.ip_prefix is None:
        found, too_many = _user_search(query.q)
        user_ids = found if user_ids is None else [u for u in user_ids if u in found]
    if user_ids is not None and query.who == "anonymous":
        user_ids = []
    fetch = _fetcher(store, user_ids)
    predicate = _predicate(dataclasses.replace(query, who="") if user_ids is not None else query)
    since = query.since
    offset = query.offset
    if predicate is None:
        listing = _page(fetch, since, offset, limit)
        if user_ids is not None and len(user_ids) == 1 and since is None:
            listing.total = store.count(user_id=user_ids[0])
        elif user_ids == []:
            listing.total = 0
        elif user_ids is None and since is None:
            listing.total = estimated_total(store)
    else:
        listing = _scan(fetch, predicate, since, offset, limit)
    listing.too_many_users = too_many
    return listing


def _page(fetch: Fetch, since: datetime | None, offset: int, limit: int) -> Listing:
    items = fetch(offset, limit + 1)
    more = len(items) > limit
    items = items[:limit]
    if since is not None:
        recent = [item for item in items if item[1].last_seen >= since]
        more = more and len(recent) == len(items)
        items = recent
    return Listing(
        items=items,
        offset=offset,
        next_offset=offset + limit if more else None,
        prev_offset=max(0, offset - limit) if offset else None,
        total=None,
    )


def _scan(
    fetch: Fetch,
    predicate: Callable[[SessionRecord], bool],
    since: datetime | None,
    offset: int,
    limit: int,
) -> Listing:
    """Collect up to ``limit`` matches, scanning forward from raw position ``offset``."""
    found: list[Item] = []
    position = offset
    examined = 0
    cut = False  # reached sessions older than ``since``
    source_end: int | None = None  # raw position where the source ran out
    while len(found) < limit and examined < SCAN_BUDGET and not cut and source_end is None:
        want = min(200, SCAN_BUDGET - examined)
        batch = fetch(position, want)
        if len(batch) < want:
            source_end = position + len(batch)
        for item in batch:
            if since is not None and item[1].last_seen < since:
                cut = True
                break
            position += 1
            examined += 1
            if predicate(item[1]):
                found.append(item)
                if len(found) == limit:
                    break
    ended = cut or (source_end is not None and position >= source_end)
    exhausted = not ended and len(found) < limit
    return Listing(
        items=found,
        offset=offset,
        next_offset=None if ended else position,
        prev_offset=0 if offset else None,
        total=None,
        budget_exhausted=exhausted,
        scanned=True,
    )


# --- finding one session by its ref -------------------------------------------------


def find_session(
    store: Store,
    ref: str,
    *,
    user_ids: Iterable[str] = (),
    offset: int | None = None,
) -> Item | None:
    """The session whose :func:`session_ref` is ``ref``, or ``None``.

    Looked up with the store's ``find_by_prefix`` when it has a key index;
    otherwise among the sessions of ``user_ids``, then around list position
    ``offset``, then in the first :data:`RESOLVE_SCAN_LIMIT` sessions.
    """
    found = find_sessions(store, {ref}, user_ids=user_ids, offset=offset)
    return found.get(ref)


def find_sessions(
    store: Store,
    refs: set[str],
    *,
    user_ids: Iterable[str] = (),
    offset: int | None = None,
) -> dict[str, Item]:
    wanted = {ref for ref in refs if is_ref(ref)}
    found: dict[str, Item] = {}

    def take(items: Iterable[Item]) -> bool:
        for key, record in items:
            ref = session_ref(key)
            if ref in wanted and ref not in found:
                found[ref] = (key, record)
        return len(found) == len(wanted)

    if not wanted:
        return found
    if store.indexes_key_prefixes and sessionkit_settings.COMPAT != "express":
        for ref in wanted:
            matches = store.find_by_prefix(ref, limit=2)
            if len(matches) == 1:
                found[ref] = matches[0]
        return found
    for user_id in dict.fromkeys(user_ids):
        if take(store.list(user_id=user_id, offset=0, limit=PAGE_SIZE * 4)):
            return found
    if offset is not None and take(
        store.list(offset=max(0, offset - PAGE_SIZE), limit=PAGE_SIZE * 3)
    ):
        return found
    for examined, item in enumerate(store.iter_all(batch_size=REVOKE_BATCH), start=1):
        if take([item]) or examined >= RESOLVE_SCAN_LIMIT:
            break
    return found


# --- revoking ---------------------------------------------------------------------


def revoke_all_except(store: Store, keep: str | None) -> int:
    """End every session that existed when this started, except ``keep``; return how many.

    Works a batch at a time (list a page, delete it) so memory stays flat.
    """
    started = timezone.now()
    ended = 0
    for _pass in range(3):  # sessions touched meanwhile move ahead of the cursor
        ended_this_pass = 0
        position = 0
        while True:
            batch = store.list(offset=position, limit=REVOKE_BATCH)
            for key, record in batch:
                if key == keep or record.created_at > started:
                    position += 1
                else:
                    store.delete(key)
                    ended_this_pass += 1
            if len(batch) < REVOKE_BATCH:
                break
        ended += ended_this_pass
        if not ended_this_pass:
            break
    return ended


# --- presentation -------------------------------------------------------------------


@dataclasses.dataclass
class Row:
    """What a template may show of one session (never its key)."""

    ref: str
    record: SessionRecord
    agent: useragent.Agent
    user: Model | None
    user_url: str | None
    is_current: bool

    @property
    def user_id(self) -> str | None:
        return self.record.user_id


def _users(ids: Iterable[str]) -> dict[str, Model]:
    User = get_user_model()
    pks: dict[Any, str] = {}
    for user_id in set(ids):
        try:
            pks[User._meta.pk.to_python(user_id)] = user_id
        except (ValidationError, ValueError, TypeError):
            continue
    found = User._default_manager.in_bulk(list(pks))
    return {pks[pk]: user for pk, user in found.items() if pk in pks}


def _user_url(site_name: str, user: Model) -> str | None:
    opts = user._meta
    try:
        return reverse(f"{site_name}:{opts.app_label}_{opts.model_name}_change", args=[user.pk])
    except NoReverseMatch:
        return None


def rows(items: Sequence[Item], current_key: str | None, site_name: str = "admin") -> list[Row]:
    users = _users(record.user_id for _, record in items if record.user_id)
    result = []
    for key, record in items:
        user = users.get(record.user_id) if record.user_id else None
        result.append(
            Row(
                ref=session_ref(key),
                record=record,
                agent=useragent.describe(record.user_agent or ""),
                user=user,
                user_url=_user_url(site_name, user) if user is not None else None,
                is_current=key == current_key,
            )
        )
    return result


def current_key(request: HttpRequest) -> str | None:
    key = getattr(request.session, "key_hash", None)
    return key if isinstance(key, str) else None


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
                (label, query.params(who=value, offset=0), query.who == value)
                for value, label in [("", "All"), *WHO_CHOICES.items()]
            ],
        ),
        (
            "Active",
            [
                (label, query.params(active=value, offset=0), query.active == value)
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
        first_row=listing.offset + 1,
        last_row=listing.offset + len(listing.items),
        next_url=None if listing.next_offset is None else query.params(offset=listing.next_offset),
        prev_url=None if listing.prev_offset is None else query.params(offset=listing.prev_offset),
        clear_url=query.params(user="", q="", who="", active="", offset=0),
        hint_users=",".join(sorted({r.user_id for r in page_rows if r.user_id})),
        return_query=query.params()[1:],
        revoke_url=_url(model_admin, "revoke"),
        scan_budget=SCAN_BUDGET,
    )
    return TemplateResponse(request, "django_sessionkit/admin/session_list.html", context)


def _hints(params: QueryDict) -> tuple[list[str], int | None]:
    users = [u for u in params.get("hint_users", params.get("u", "")).split(",") if u][:50]
    try:
        offset: int | None = max(0, int(params.get("hint_offset", params.get("o", ""))))
    except ValueError:
        offset = None
    return users, offset


def detail(model_admin: ModelAdmin[Any], request: HttpRequest, ref: str) -> HttpResponse:
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    store = get_store()
    users, offset = _hints(request.GET)
    item = find_session(store, ref, user_ids=users, offset=offset)
    if item is None:
        raise Http404("No live session with that reference (it may have ended).")
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
        revoke_url=_url(model_admin, "revoke"),
        changelist_url=_url(model_admin, "changelist"),
    )
    return TemplateResponse(request, "django_sessionkit/admin/session_detail.html", context)


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
        users, offset = _hints(request.POST)
        targets = list(find_sessions(store, refs, user_ids=users, offset=offset).values())
        if not targets:
            messages.warning(request, "No live session selected (they may have ended already).")
            return HttpResponseRedirect(back)
    elif action == "user" and not user_id:
        messages.warning(request, "No user given.")
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
        for key, _record in targets:
            store.delete(key)
        ended = len(targets)
        own_ended = any(key == own for key, _ in targets)
    elif action == "user":
        ended = store.delete_for_user(user_id, keep=own)
    else:
        ended = revoke_all_except(store, own)
    if own_ended:
        logout(request)  # this browser's session is gone: finish signing it out
        return HttpResponseRedirect(reverse(f"{model_admin.admin_site.name}:login"))
    messages.success(
        request,
        ngettext("%(count)d session was ended.", "%(count)d sessions were ended.", ended)
        % {"count": ended},
    )
    return HttpResponseRedirect(back)
