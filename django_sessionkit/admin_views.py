"""The admin's session pages, over the Store interface only.

Every page view does work in proportion to the page it shows: it asks the
store for one page (``Store.list``, with the filters, the IP search and a
cursor), and per-user counts (``Store.count`` with a ``user_id``, an indexed
lookup). The store answers every filter from an index of its own.

Sessions are named by :func:`session_ref`: the first 12 hex digits of the
store key (itself a SHA-256 of the id), never the id. Links to the next page
carry a cursor made of the last row's last-seen time (microseconds) and ref,
so no page ever holds a whole store key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.contrib import messages
from django.contrib.auth import get_user_model, logout
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Model, Q
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse
from django.utils.translation import ngettext

from django_sessionkit import cookies, masking, useragent
from django_sessionkit.conf import sessionkit_settings
from django_sessionkit.engine import store_key
from django_sessionkit.stores import get_store
from django_sessionkit.stores.base import (
    Cursor,
    IPNetwork,
    SessionRecord,
    Store,
    from_us,
    to_us,
    utcnow,
)

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin

__all__ = [
    "PAGE_SIZE",
    "REF_LENGTH",
    "Listing",
    "Query",
    "find_session",
    "ip_search",
    "list_sessions",
    "session_ref",
]

REF_LENGTH = 12
PAGE_SIZE = 50
#: The shortest text the search box looks up as a session_key (GENID's shortest id).
MIN_KEY_SEARCH = 16

#: Users a username/email search may match; more asks for a narrower search.
MAX_SEARCH_USERS = 20
#: Sessions examined, as a last resort, to find a session by its ref.
RESOLVE_SCAN_LIMIT = 5000
#: Pages whose start the "Previous" link remembers.
MAX_BACK = 20
#: The longest user id a store keeps (``Session.user_id``); a longer one matches no session.
MAX_USER_ID = 64
#: Positions past this in ``?n=`` are taken for malformed (the list starts at the top).
MAX_START = 10**12

ACTIVE_WINDOWS = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
WHO_CHOICES = {"signed-in": "Signed in", "anonymous": "Anonymous"}
SIGNED_IN = {"": None, "signed-in": True, "anonymous": False}

_IPV4_FRAGMENT = re.compile(r"^(?:[0-9]{1,3}\.){1,3}(?:[0-9]{1,3})?$")
_IPV6_FRAGMENT = re.compile(r"^(?:[0-9a-fA-F]{1,4}:){1,7}$")
_DIGITS = re.compile(r"[0-9]{1,19}")  # ASCII only: int() would take "١٢", " 7" and "1_0"
#: Times links may carry (microseconds since 1970): up to the year 3000. Every real
#: last-seen time is in between; anything else is taken for malformed.
MAX_MOMENT = 32_503_680_000_000_000

Item = tuple[str, SessionRecord]


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


def ip_search(text: str) -> IPNetwork | None:
    """The network a search box entry stands for, or ``None`` when it is not an IP search.

    - an address: itself (``192.0.2.7``, ``2001:db8::1``);
    - a network in CIDR form: ``10.0.0.0/8``, ``2001:db8::/32``;
    - IPv4 whole octets, two or three, the last one followed by a dot or not:
      ``192.168.`` and ``192.168`` are ``192.168.0.0/16``, ``10.1.2`` is ``10.1.2.0/24``,
      and one octet needs its dot: ``10.`` is ``10.0.0.0/8`` (``10`` is a username);
    - IPv6 whole groups each followed by a colon: ``2001:db8:`` is ``2001:db8::/32``.
    """
    text = text.strip()
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        pass
    if _IPV4_FRAGMENT.match(text):
        octets = [o for o in text.split(".") if o]
        if len(octets) >= 2 or text.endswith("."):
            padded = ".".join(octets + ["0"] * (4 - len(octets)))
            try:
                return ipaddress.ip_network(f"{padded}/{8 * len(octets)}")
            except ValueError:  # an octet above 255
                return None
    if _IPV6_FRAGMENT.match(text):
        groups = text.rstrip(":").split(":")
        address = ":".join(groups + ["0"] * (8 - len(groups)))
        return ipaddress.ip_network(f"{address}/{16 * len(groups)}")
    return None


def stamp(moment: datetime) -> str:
    """A time as the pages carry it: whole microseconds since the epoch."""
    return str(to_us(moment))


def number(text: str, maximum: int) -> int | None:
    """``text`` as a whole number from 0 to ``maximum`` written in ASCII digits, or ``None``.

    Every number the pages take from a query string or a form goes through here, so a
    huge, negative or odd one is refused before it reaches a store or a database."""
    if not _DIGITS.fullmatch(text):
        return None
    value = int(text)
    return value if value <= maximum else None


def moment(text: str) -> datetime | None:
    """A time as :func:`stamp` writes it, or ``None`` when ``text`` is none."""
    us = number(text, MAX_MOMENT)
    return None if us is None else from_us(us)


def is_user_id(text: str) -> bool:
    """Whether ``text`` can be a user id as stores keep it. Any other text (too long, or
    with control characters, which PostgreSQL refuses in a query) matches no session."""
    return 0 < len(text) <= MAX_USER_ID and text.isprintable()


def clean_text(text: str) -> str:
    """Search text without the characters no username, email or address holds (NUL,
    which PostgreSQL refuses in a query, and the other control characters)."""
    return "".join(ch for ch in text if ch.isprintable())


def _key_bound(ref: str, *, inclusive: bool) -> str:
    """A key bound for a :class:`Cursor` at a row known by its ref only: after every key
    starting with ``ref`` (``ref + "g"``; "g" follows the hex digits), or before them.
    With ``COMPAT="express"`` the ref says nothing of the key: the bound is the lowest, so
    rows seen at the same moment come again (the row itself is dropped by ref)."""
    if sessionkit_settings.COMPAT == "express":
        return ""
    return ref if inclusive else ref + "g"


# --- the query behind a list page ----------------------------------------------------


@dataclasses.dataclass
class Query:
    """What the list page was asked for (from its query string)."""

    who: str = ""
    active: str = ""
    user: str = ""
    q: str = ""
    #: The cursor of the last row of the previous page ("<last seen us>.<ref>"), or "".
    after: str = ""
    #: Rows on the pages before this one (for "Sessions 51-100").
    start: int = 0
    #: The ``after`` of the pages before, most recent first, for the "Previous" link.
    back: list[str] = dataclasses.field(default_factory=list)

    @classmethod
    def from_request(cls, params: QueryDict) -> Query:
        start = number(params.get("n", "0"), MAX_START) or 0
        who = params.get("who", "")
        active = params.get("active", "")
        after = params.get("after", "")
        back = [t for t in params.get("back", "").split(",") if _parse_token(t)][:MAX_BACK]
        return cls(
            who=who if who in WHO_CHOICES else "",
            active=active if active in ACTIVE_WINDOWS else "",
            # One past the longest id: kept too long, so that it matches nothing.
            user=params.get("user", "").strip()[: MAX_USER_ID + 1],
            q=clean_text(params.get("q", "")).strip()[:200],
            after=after if _parse_token(after) else "",
            start=start if after else 0,
            back=back if after else [],
        )

    def params(self, **changes: Any) -> str:
        """This query's string with ``changes`` applied (empty values dropped)."""
        values = {**dataclasses.asdict(self), **changes}
        query = QueryDict(mutable=True)
        for name in ("who", "active", "user", "q", "after"):
            if values[name]:
                query[name] = values[name]
        if values["after"]:
            if values["start"]:
                query["n"] = str(values["start"])
            if values["back"]:
                query["back"] = ",".join(values["back"])
        return "?" + query.urlencode() if query else "?"

    def first_page(self) -> str:
        return self.params(after="", start=0, back=[])

    @property
    def network(self) -> IPNetwork | None:
        return ip_search(self.q) if self.q else None

    @property
    def cursor(self) -> tuple[Cursor, str] | None:
        """The store cursor after the previous page's last row, and that row's ref."""
        parsed = _parse_token(self.after)
        if parsed is None:
            return None
        seen, ref = parsed
        return Cursor(seen, _key_bound(ref, inclusive=False)), ref

    @property
    def since(self) -> datetime | None:
        window = ACTIVE_WINDOWS.get(self.active)
        return None if window is None else utcnow() - window


def token(item: Item) -> str:
    """The cursor a page link carries for a row: its last-seen time and its ref."""
    return f"{stamp(item[1].last_seen)}.{session_ref(item[0])}"


def _parse_token(text: str) -> tuple[datetime, str] | None:
    seen_text, _, ref = text.partition(".")
    seen = moment(seen_text)
    return None if seen is None or not is_ref(ref) else (seen, ref)


@dataclasses.dataclass
class Listing:
    items: list[Item]
    #: Rows on the pages before this one.
    start: int
    next_url: str | None
    prev_url: str | None
    total: int | None
    #: The search matched more users than are searched at once.
    too_many_users: bool = False
    #: Why the store could not answer this search (the page is empty then).
    error: str = ""


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


def _session_key_search(store: Store, q: str) -> list[Item]:
    """The session a search for its ``session_key`` (or signed cookie) names, if live.

    Only text that can be one of our keys is looked up (a username that happens to look
    like one falls through to the user search when no session has it)."""
    if not (q.startswith(("s:", "s%3A")) or (cookies.is_key(q) and len(q) >= MIN_KEY_SEARCH)):
        return []
    session_id = cookies.key_to_id(q)
    if session_id is None:
        return []
    key = store_key(session_id)
    record = store.load(key)
    return [] if record is None else [(key, record)]


def estimated_total(store: Store) -> int | None:
    """A cheap total for the unfiltered list, when the store can give one."""
    return store.estimate_count()


def list_sessions(store: Store, query: Query, limit: int = PAGE_SIZE) -> Listing:
    """One page of sessions for ``query``; the store reads O(page) from its indexes."""
    network = query.network
    user_ids: list[str] | None = None
    too_many = False
    if query.user:
        user_ids = [query.user] if is_user_id(query.user) else []
    if query.q and network is None:
        found, too_many = _user_search(query.q)
        user_ids = found if user_ids is None else [u for u in user_ids if u in found]
    if query.q and network is None and (by_key := _session_key_search(store, query.q)):
        return Listing(
            items=by_key,
            start=0,
            next_url=None,
            prev_url=None,
            total=1,
            too_many_users=False,
            error="",
        )
    signed_in = SIGNED_IN[query.who]
    cursor = query.cursor
    after, skip = (None, None) if cursor is None else cursor
    # One more row tells whether there is a next page; with COMPAT="express" the cursor's
    # own row may come back too (see _key_bound).
    want = limit + (2 if sessionkit_settings.COMPAT == "express" else 1)
    filters: dict[str, Any] = {"signed_in": signed_in, "ip": network, "after": after}
    error = ""
    try:
        if user_ids is None:
            items = store.list(**filters, limit=want)
        else:  # each user's own sessions (an index of their own), merged
            items = [
                item for u in user_ids for item in store.list(user_id=u, **filters, limit=want)
            ]
            items.sort(key=lambda item: item[0])
            items.sort(key=lambda item: item[1].last_seen, reverse=True)  # stable: then key
    except ValueError as exc:  # an IP search this store cannot answer
        items, error = [], str(exc)
    items = [item for item in items if session_ref(item[0]) != skip][: limit + 1]
    more = len(items) > limit
    items = items[:limit]
    since = query.since
    if since is not None:
        recent = [item for item in items if item[1].last_seen >= since]
        more = more and len(recent) == len(items)
        items = recent
    total = None
    if since is None and network is None and signed_in is None:
        if user_ids is None:
            total = estimated_total(store)
        elif len(user_ids) == 1:
            total = store.count(user_id=user_ids[0])
        elif not user_ids:
            total = 0
    next_url = prev_url = None
    if more and items:
        trail = ([query.after, *query.back] if query.after else [])[:MAX_BACK]
        next_url = query.params(after=token(items[-1]), start=query.start + limit, back=trail)
    if query.after:
        previous = query.back[0] if query.back else ""
        start = max(0, query.start - limit) if previous else 0
        prev_url = query.params(after=previous, start=start, back=query.back[1:])
    return Listing(
        items=items,
        start=query.start,
        next_url=next_url,
        prev_url=prev_url,
        total=total,
        too_many_users=too_many,
        error=error,
    )


# --- finding one session by its ref -------------------------------------------------


def find_session(
    store: Store,
    ref: str,
    *,
    user_ids: Iterable[str] = (),
    seen: Mapping[str, datetime] | None = None,
) -> Item | None:
    """The session whose :func:`session_ref` is ``ref``, or ``None``.

    Looked up with the store's ``find_by_prefix`` when it has a key index;
    otherwise right where the list showed it (``seen``: its last-seen time, which
    the list's links carry), then among the sessions of ``user_ids``, then in the
    first :data:`RESOLVE_SCAN_LIMIT` sessions.
    """
    found = find_sessions(store, {ref}, user_ids=user_ids, seen=seen)
    return found.get(ref)


def find_sessions(
    store: Store,
    refs: set[str],
    *,
    user_ids: Iterable[str] = (),
    seen: Mapping[str, datetime] | None = None,
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
    for ref, at in (seen or {}).items():
        if ref in wanted and ref not in found:
            cursor = Cursor(at, _key_bound(ref, inclusive=True))
            if take(store.list(after=cursor, limit=5)):
                return found
    for user_id in dict.fromkeys(user_ids):
        if take(store.list(user_id=user_id, limit=PAGE_SIZE * 4)):
            return found
    for examined, item in enumerate(store.iter_all(), start=1):
        if take([item]) or examined >= RESOLVE_SCAN_LIMIT:
            break
    return found


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

    @property
    def seen(self) -> str:
        """Its last-seen time as links carry it (see :func:`find_session`)."""
        return stamp(self.record.last_seen)


def _users(ids: Iterable[str]) -> dict[str, Model]:
    """The users with these ids (as stores keep them: ``str(pk)``), found in one query.

    An id that is not one (``"x"``, ``"007"``, an integer past the primary key's column,
    such as ``2**63``, which SQLite cannot even be asked about) finds no user."""
    User = get_user_model()
    field = User._meta.pk
    assert field is not None
    pks: dict[Any, str] = {}
    for user_id in set(ids):
        try:
            pk = field.to_python(user_id)
            field.run_validators(pk)  # an integer id: in the column's range
        except (ValidationError, ValueError, TypeError, OverflowError):
            continue
        if str(pk) == user_id:
            pks[pk] = user_id
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
        for key, _record in targets:
            store.delete(key)
        ended = len(targets)
        own_ended = any(key == own for key, _ in targets)
    elif action == "user":
        ended = store.delete_for_user(user_id, keep=own)
    else:
        ended = store.delete_all(keep=own)
    if own_ended:
        logout(request)  # this browser's session is gone: finish signing it out
        return HttpResponseRedirect(reverse(f"{model_admin.admin_site.name}:login"))
    messages.success(
        request,
        ngettext("%(count)d session was ended.", "%(count)d sessions were ended.", ended)
        % {"count": ended},
    )
    return HttpResponseRedirect(back)
