"""The admin's session pages, over the Store interface only.

* :mod:`.parsing` — what the pages take from URLs, query strings and forms (refs, the IP
  search box, numbers and times, each checked);
* :mod:`.query` — the store query behind a list page, and finding sessions by ref;
* :mod:`.rows` — how a session shows (user, where, which browser, "this is you");
* :mod:`.pages` — the list and detail pages;
* :mod:`.actions` — ending sessions: the confirmation page and the revoke action.

Sessions are named by :func:`session_ref`: the first 12 hex digits of the store key
(itself a SHA-256 of the id), never the id.
"""

from django_sessionkit.admin_views.actions import revoke
from django_sessionkit.admin_views.pages import changelist, detail
from django_sessionkit.admin_views.parsing import (
    PAGE_SIZE,
    REF_LENGTH,
    ip_search,
    moment,
    session_ref,
)
from django_sessionkit.admin_views.query import Listing, Query, find_session, list_sessions
from django_sessionkit.admin_views.rows import current_key, rows

__all__ = [
    "PAGE_SIZE",
    "REF_LENGTH",
    "Listing",
    "Query",
    "changelist",
    "current_key",
    "detail",
    "find_session",
    "ip_search",
    "list_sessions",
    "moment",
    "revoke",
    "rows",
    "session_ref",
]
