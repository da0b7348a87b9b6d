"""The store query behind a list page, and finding sessions by their ref.

Every page asks the store for one page (``Store.list``, with the filters, the IP search
and a cursor), and per-user counts (an indexed lookup): work in proportion to the page.
Links to the next page carry a cursor of the last row's last-seen time and ref."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.contrib.auth import get_user_model
from django.db.models import Q
from django.http import QueryDict

from django_sessionkit import cookies
from django_sessionkit.conf import sessionkit_settings
from django_sessionkit.engine import store_key
from django_sessionkit.stores.base import (
    Cursor,
    IPNetwork,
    Store,
    utcnow,
)

if TYPE_CHECKING:
    pass

from django_sessionkit.admin_views.parsing import (
    ACTIVE_WINDOWS,
    MAX_BACK,
    MAX_SEARCH_USERS,
    MAX_START,
    MAX_USER_ID,
    MIN_KEY_SEARCH,
    PAGE_SIZE,
    RESOLVE_SCAN_LIMIT,
    SIGNED_IN,
    WHO_CHOICES,
    Item,
    _key_bound,
    clean_text,
    ip_search,
    is_ref,
    is_user_id,
    moment,
    number,
    session_ref,
    stamp,
)

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
