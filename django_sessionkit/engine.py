"""``SESSION_ENGINE = "django_sessionkit.engine"``: Django's session API over a Store.

``session_key`` fits where Django's fits: at most 40 characters of ``[A-Za-z0-9_-]``.

* A session the middleware made for a request reports its bare id (24 characters).
  That is what other apps copy into their tables; it is no cookie by itself, since
  the browser's cookie also carries a signature made with the secret.
* Any other session object (``SessionStore()`` in Django's test client, Channels, a
  shell) reports the bare id too, until it saves the session or makes it a new id
  itself. From then on it reports the *compact cookie* (the id and a 16-character
  signature): such code puts ``session_key`` into the cookie after saving (the test
  client's ``login()``, Channels' middleware), so it must work as a cookie. Code that
  only reads a session (``client.session`` in a test, a consumer) sees the same
  ``session_key`` as the views.

Every API that takes a key accepts both forms and the signed cookie ``s:<id>.<sig>``.
Stores see only the id's SHA-256 (``key_hash``).

Besides Django's API this adds express-session's ``regenerate()``,
``destroy()``, ``reload()`` and ``touch()``, each with an async twin.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from django.apps import apps
from django.contrib.sessions.backends.base import CreateError, SessionBase, UpdateError
from django.contrib.sessions.exceptions import SessionInterrupted
from django.core.exceptions import ImproperlyConfigured
from django.core.signing import JSONSerializer
from django.dispatch import Signal
from django.http import HttpRequest
from django.utils import timezone

from django_sessionkit import cookies, lifecycle, limits, metadata, signals
from django_sessionkit.conf import sessionkit_settings as conf
from django_sessionkit.stores import get_store
from django_sessionkit.stores.base import Changes, SessionRecord, Store, utcnow

if apps.apps_ready and not apps.is_installed("django_sessionkit"):
    raise ImproperlyConfigured(
        'SESSION_ENGINE is "django_sessionkit.engine" but "django_sessionkit" is not in '
        'INSTALLED_APPS. Add "django_sessionkit" to INSTALLED_APPS (in place of '
        '"django.contrib.sessions"), then run "manage.py migrate".'
    )

__all__ = [
    "CreateError",
    "SessionDataError",
    "SessionLimitReached",
    "SessionStore",
    "SessionTooLarge",
    "UpdateError",
]

SessionLimitReached = limits.SessionLimitReached

# How many fresh ids create() tries before concluding that GENID repeats itself.
MAX_CREATE_ATTEMPTS = 10

# Shortest id accepted from GENID (the longest is a session_key's, 40).
MIN_GENID_LENGTH = 16

AUTH_USER_KEY = "_auth_user_id"
HASH_SESSION_KEY = "_auth_user_hash"

#: Marks a session that ``importsessions`` copied from Django's own engines. Only such a
#: session may be reached through an old, unsigned Django cookie, once, before rotation.
IMPORTED_KEY = "_sessionkit_imported"


class SessionDataError(TypeError):
    """A value in the session cannot be stored: JSON cannot hold it, or it is nested deeper
    than ``SESSIONKIT["MAX_DEPTH"]``; nothing was written."""


class SessionTooLarge(ValueError):
    """The session's data is larger than ``SESSIONKIT["MAX_SIZE"]``; nothing was written."""


def store_key(session_id: str) -> str:
    """The key a store keeps a session under (the id itself only in express compat mode)."""
    return session_id if conf.COMPAT == "express" else cookies.hash_id(session_id)


_CONTAINERS = (dict, list, tuple)
#: Values that cannot change in place: the same object still has the same JSON.
_SCALARS = frozenset((str, int, float, bool, type(None)))


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether lists and dicts nest more than ``limit`` levels in ``value``.

    Level by level, with no recursion: any depth is fine.
    """
    level = [value] if isinstance(value, _CONTAINERS) else []
    for _ in range(limit):
        inside: list[Any] = []
        for item in level:
            inside.extend(item.values() if isinstance(item, dict) else item)
        level = [item for item in inside if isinstance(item, _CONTAINERS)]
        if not level:
            return False
    return bool(level)


def _too_deep(key: str, value: Any, limit: int | None) -> SessionDataError:
    if limit is not None and _deeper_than(value, limit):
        why = f"more than {limit} levels deep, over SESSIONKIT['MAX_DEPTH'] = {limit}"
    else:  # deeper than Python's JSON encoder goes (about 990 levels)
        why = "too deep for JSON to encode"
    return SessionDataError(
        f"session key {key!r} holds a value whose lists and dicts are nested {why}; "
        "nothing was saved: the stored copy is unchanged"
    )


#: json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False), with one
#: encoder made once (json.dumps makes one per call when given arguments).
_canonical = json.JSONEncoder(separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode


def _dump(key: str, value: Any, max_depth: int | None = None, stored: str | None = None) -> str:
    """``value`` as JSON. With ``max_depth``, a value nested deeper is refused, unless its
    JSON is ``stored`` (unchanged since it was loaded)."""
    try:
        text = _canonical(value)
    except RecursionError:
        raise _too_deep(key, value, max_depth) from None
    except (TypeError, ValueError) as exc:
        raise SessionDataError(
            f"session key {key!r} holds a {type(value).__name__}, which cannot be stored "
            f"as JSON ({exc}); store only str, int, float, bool, None, list and dict values"
        ) from exc
    # Each level opens with "[" or "{": JSON with fewer of them needs no walk.
    if (
        max_depth is not None
        and len(text) > 2 * max_depth
        and text.count("[") + text.count("{") > max_depth
        and text != stored
        and _deeper_than(value, max_depth)
    ):
        raise _too_deep(key, value, max_depth)
    return text


def _snapshot(
    data: dict[str, Any], max_depth: int | None = None, stored: dict[str, str] | None = None
) -> dict[str, str]:
    """Each key's JSON; with ``max_depth`` (a save), values changed since ``stored`` are
    checked against it."""
    if max_depth is None:
        return {key: _dump(key, value) for key, value in data.items()}
    stored = stored or {}
    return {key: _dump(key, value, max_depth, stored.get(key)) for key, value in data.items()}


def _check_size(snapshot: dict[str, str]) -> None:
    """Raise :class:`SessionTooLarge` when the data would exceed ``MAX_SIZE`` bytes."""
    limit = conf.MAX_SIZE
    if limit is None:
        return
    sizes = {key: len(key.encode()) + len(text.encode()) + 4 for key, text in snapshot.items()}
    total = sum(sizes.values()) + 2
    if total > limit:
        largest = ", ".join(
            f"{key!r} ({size} bytes)"
            for key, size in sorted(sizes.items(), key=lambda item: -item[1])[:3]
        )
        raise SessionTooLarge(
            f"the session's data is {total} bytes, over SESSIONKIT['MAX_SIZE'] = {limit}; "
            f"the largest keys are {largest}. Nothing was saved: the stored copy is unchanged."
        )


def _password_changed(previous: SessionRecord | None, data: dict[str, Any]) -> bool:
    """Whether this save follows a change of the signed-in user's password: the same user,
    a new session auth hash (Django's ``update_session_auth_hash()`` puts it there). With
    ``END_SESSIONS_ON_PASSWORD_CHANGE`` the user's other sessions then end at once; Django
    would only make them fail their next hash check, still listed as live meanwhile."""
    if not conf.END_SESSIONS_ON_PASSWORD_CHANGE or previous is None:
        return False
    before, after = previous.data, data
    user = after.get(AUTH_USER_KEY)
    if user is None or str(before.get(AUTH_USER_KEY)) != str(user):
        return False
    old_hash, new_hash = before.get(HASH_SESSION_KEY), after.get(HASH_SESSION_KEY)
    return bool(old_hash and new_hash and old_hash != new_hash)


@dataclasses.dataclass
class _Before:
    """A session as it was before a login, put back when the login is refused."""

    sid: str | None
    is_new: bool
    wrote: bool
    record: SessionRecord | None
    snapshot: dict[str, str]
    values: dict[str, Any]
    data: dict[str, Any] | None
    increments: dict[str, int | float]
    created_at: datetime | None
    modified: bool
    replaced: str | None


class SessionStore(SessionBase):
    """One browser's session, bound to the configured store."""

    #: Stores keep JSON themselves; Django's ``encode()``/``decode()`` still use this.
    serializer = JSONSerializer

    def __init__(self, session_key: str | None = None, *, request: HttpRequest | None = None):
        # SessionBase.__init__ is not called: it only sets the attributes below and imports
        # SESSION_SERIALIZER, which this engine ignores, on every request.
        self.accessed = False
        self.modified = False
        self.request = request
        self._id: str | None = None  # the id (see _sid)
        # The raw session cookie of a request, not yet verified: see from_cookie().
        self._pending_cookie: str | None = None
        self._cookie_pending = False
        self._cookie_id: str | None = None  # the id the request's cookie carried, if valid
        self._record: SessionRecord | None = None  # what the store holds, when known
        self._snapshot: dict[str, str] = {}  # each key's JSON as last loaded or saved
        self._values: dict[str, Any] = {}  # the objects _snapshot was made from
        self._is_new = False  # _sid was generated here and is not in the store yet
        self._created_at: datetime | None = None  # kept across cycle_key()
        self._began: datetime | None = None  # the start before a login restarted it
        self._increments: dict[str, int | float] = {}  # incr() deltas not saved yet
        self._pending_snapshot: dict[str, str] = {}  # per-key JSON of the save under way
        self._legacy = False  # _sid came from an unsigned cookie of Django's own engines
        self._signed: tuple[str, str] | None = None  # (id, its cookie value), made once
        self._bound = False  # made by the middleware for a request: session_key is the id
        self._wrote = False  # this object saved the session or gave it a new id
        self._replaced: str | None = None  # a store key to delete once the new id is saved
        # a timed-out session: (store key, record, reason), deleted at the end of the request
        self._ended: tuple[str, SessionRecord, str] | None = None
        self._events: list[signals.Event] = []  # sent at the end of the request
        self._password_changed = False  # this save follows update_session_auth_hash()
        self._signed_in_now = False  # this save is the first with its user (a login)
        # MAX_SESSIONS_POLICY = "refuse": the session before cycle_key() (its old key is
        # deleted when the new one is saved, not before: a refused login keeps it)...
        self._before_login: _Before | None = None
        self._rotated_from: str | None = None  # ...and that old key, for session_rotated
        self._admitted = False  # a login was let in: saved under the user's lock, no cookie yet
        self._refused = False  # a login was refused: the session is as it was before it
        self._holding = False  # a store lock is held: events wait until it is released
        if session_key is not None:
            self._session_key = session_key

    @classmethod
    def for_request(
        cls, request: HttpRequest, session_id: str | None, *, legacy: bool = False
    ) -> SessionStore:
        """The session for an id the middleware already unsigned from the cookie.

        ``legacy=True``: the id is an old Django session key from an unsigned cookie;
        it loads only a session that ``importsessions`` marked as imported.
        """
        session = cls(request=request)
        session._id = session._cookie_id = session_id
        session._legacy = legacy
        session._bound = True
        return session

    @classmethod
    def from_cookie(cls, request: HttpRequest, raw: str | None) -> SessionStore:
        """The session for a request whose session cookie is ``raw`` (as read from the
        Cookie header, decoded; ``None``: no such cookie there).

        The cookie is verified (an HMAC) only when the id is first needed, so a request
        that never uses its session costs no more than with Django's own engines.
        """
        session = cls(request=request)
        session._pending_cookie = raw
        session._cookie_pending = True
        session._bound = True
        return session

    # The id. With a request's cookie not verified yet, the first use verifies it.
    @property
    def _sid(self) -> str | None:
        if self._cookie_pending:
            self._verify_cookie()
        return self._id

    @_sid.setter
    def _sid(self, value: str | None) -> None:
        if self._cookie_pending:
            self._verify_cookie()
        self._id = value

    def _verify_cookie(self) -> None:
        self._cookie_pending = False
        assert self.request is not None
        sid, self._legacy = cookies.request_session_id(self.request, self._pending_cookie)
        self._id = self._cookie_id = sid

    @property
    def cookie_id(self) -> str | None:
        """The id the request's cookie carried, when it was valid (a later new id aside)."""
        if self._cookie_pending:
            self._verify_cookie()
        return self._cookie_id

    @property
    def legacy_cookie(self) -> bool:
        """Whether the request came with an unsigned cookie of Django's own engines."""
        if self._cookie_pending:
            if not cookies.may_be_legacy(self.request, self._pending_cookie):
                return False
            self._verify_cookie()
        return self._legacy

    # --- identity ---------------------------------------------------------

    def _get_session_key(self) -> str | None:
        sid = self._sid
        if sid is None or (cookies.is_key(sid) and (self._bound or not self._wrote)):
            return sid
        return cookies.id_to_key(sid)

    def _set_session_key(self, value: str | None) -> None:
        self._sid = cookies.key_to_id(value)

    session_key = property(_get_session_key)
    _session_key = property(_get_session_key, _set_session_key)

    @property
    def cookie_value(self) -> str | None:
        """What the browser's cookie carries: ``s:<id>.<sig>`` (the bare id with
        ``SIGNED=False``), not yet URL-encoded."""
        sid = self._sid
        if sid is None:
            return None
        signed = self._signed
        if signed is None or signed[0] != sid:  # one HMAC per id, not one per access
            signed = self._signed = (sid, cookies.id_to_cookie(sid))
        return signed[1]

    @property
    def session_id(self) -> str | None:
        """The raw id (secret: it is the bearer token). Prefer :attr:`key_hash` for display."""
        return self._sid

    @property
    def key_hash(self) -> str | None:
        """The store key of this session: the SHA-256 of its id."""
        return None if self._sid is None else store_key(self._sid)

    @property
    def is_new(self) -> bool:
        """True when this session is not (yet) in the store."""
        return self._sid is None or self._is_new

    @property
    def record(self) -> SessionRecord | None:
        return self._record

    @property
    def began(self) -> datetime | None:
        """When the session began, before the last new id (a login) restarted its clock for
        ABSOLUTE_TIMEOUT; ``None`` when it was never stored."""
        record = self._record
        return self._began or (record.created_at if record is not None else None)

    @property
    def store(self) -> Store:
        return get_store()

    def _new_id(self) -> None:
        genid = conf.GENID
        if genid is None:
            self._sid = cookies.new_id()
        else:
            value = genid(self.request)
            if not (cookies.is_key(value) and len(value) >= MIN_GENID_LENGTH):
                raise TypeError(
                    f"SESSIONKIT['GENID'] returned {value!r}; it must return a string of "
                    f"{MIN_GENID_LENGTH} to {cookies.MAX_KEY_LENGTH} characters of A-Z, a-z, "
                    "0-9, '-' and '_' (it becomes request.session.session_key, which fits "
                    "where Django's session keys fit)"
                )
            self._sid = value
        self._is_new = True
        self._wrote = True

    def _validate_session_key(self, key: str | None) -> bool:
        return cookies.key_to_id(key) is not None

    def is_empty(self) -> bool:
        return self._sid is None and not getattr(self, "_session_cache", None)

    # --- expiry -----------------------------------------------------------

    def get_session_cookie_age(self) -> int:
        return conf.STORE_AGE

    def get_expire_at_browser_close(self) -> bool:
        expiry = self.get("_session_expiry")
        if expiry is None:
            return conf.MAX_AGE is None
        return bool(expiry == 0)

    async def aget_expire_at_browser_close(self) -> bool:
        await self._aget_session()
        return self.get_expire_at_browser_close()

    def _expires_at(self, now: datetime) -> datetime:
        """When the session ends if nothing happens meanwhile: its expiry (``set_expiry``
        or MAX_AGE), then no later than IDLE_TIMEOUT from now, ABSOLUTE_TIMEOUT from its
        start, and ANONYMOUS_MAX_AGE from now while nobody is signed in to it."""
        data = self._session
        expiry = data.get("_session_expiry")
        if expiry == 0:
            expires_at = now + timedelta(seconds=conf.STORE_AGE)
        else:
            expires_at = self.get_expiry_date(modification=now, expiry=expiry)
            if timezone.is_naive(expires_at):
                expires_at = timezone.make_aware(expires_at, timezone.get_current_timezone())
        limits = [expires_at]
        if (idle := conf.IDLE_TIMEOUT) is not None:
            limits.append(now + timedelta(seconds=idle))
        if (absolute := conf.ABSOLUTE_TIMEOUT) is not None:
            limits.append(self._started(now) + timedelta(seconds=absolute))
        if (anonymous := conf.ANONYMOUS_MAX_AGE) is not None and AUTH_USER_KEY not in data:
            limits.append(now + timedelta(seconds=anonymous))
        return min(limits)

    def _started(self, now: datetime) -> datetime:
        """When this session started: created, or given its id at the last login."""
        record = self._record
        return record.created_at if record is not None else (self._created_at or now)

    def _timed_out(self, record: SessionRecord) -> str | None:
        """Why a loaded record is over IDLE_TIMEOUT or ABSOLUTE_TIMEOUT (``None``: it is
        not). Saves and touches keep the stored expiry within both, so the store drops such
        sessions itself; this catches records saved before the limits were set or lowered."""
        now = utcnow()
        idle, absolute = conf.IDLE_TIMEOUT, conf.ABSOLUTE_TIMEOUT
        if idle is not None and record.last_seen + timedelta(seconds=idle) <= now:
            return "idle_timeout"
        if absolute is not None and record.created_at + timedelta(seconds=absolute) <= now:
            return "absolute_timeout"
        return None

    # --- change tracking --------------------------------------------------

    def changes(self, snapshot: dict[str, str] | None = None) -> Changes:
        """The keys this request set, changed (also inside nested values) or removed.

        ``snapshot``: the data's per-key JSON, when the caller has it already.
        """
        data = getattr(self, "_session_cache", None)
        if data is None:
            return Changes()
        current = _snapshot(data) if snapshot is None else snapshot
        increments = {k: d for k, d in self._increments.items() if k in data}
        changed = {
            k: data[k]
            for k, text in current.items()
            if k not in increments and self._snapshot.get(k) != text
        }
        return Changes(
            set=changed,
            removed=set(self._snapshot) - set(data),
            increments=increments,
            loaded=self._record,
        )

    # --- atomic counters ----------------------------------------------------

    def _incremented(self, data: dict[str, Any], key: str, amount: int | float) -> int | float:
        if isinstance(amount, bool) or not isinstance(amount, (int, float)):
            raise TypeError(f"incr({key!r}, …) takes an int or float amount, not {amount!r}")
        current = data.get(key, 0)
        if isinstance(current, bool) or not isinstance(current, (int, float)):
            raise TypeError(f"session key {key!r} holds {current!r}, which is not a number")
        data[key] = current + amount
        self._increments[key] = self._increments.get(key, 0) + amount
        self.modified = True
        return data[key]  # type: ignore[no-any-return]

    def incr(self, key: str, amount: int | float = 1) -> int | float:
        """Add ``amount`` to a numeric key (0 when missing) and return the new value.

        Unlike ``session[key] += 1``, the increment survives concurrent requests:
        when another request saved the session meanwhile, the store adds this
        request's delta to the newer value instead of writing over it.
        """
        return self._incremented(self._session, key, amount)

    async def aincr(self, key: str, amount: int | float = 1) -> int | float:
        return self._incremented(await self._aget_session(), key, amount)

    def __setitem__(self, key: str, value: Any) -> None:
        self._increments.pop(key, None)  # an assignment replaces any pending increment
        if key == AUTH_USER_KEY and self._is_login(value):
            return self._admit(value)
        super().__setitem__(key, value)

    async def aset(self, key: str, value: Any) -> None:
        self._increments.pop(key, None)
        if key == AUTH_USER_KEY:
            await self._aget_session()
            if self._is_login(value):
                return await self._aadmit(value)
        await super().aset(key, value)

    def __delitem__(self, key: str) -> None:
        self._increments.pop(key, None)
        super().__delitem__(key)

    def update(self, dict_: Any) -> None:  # type: ignore[override]
        values = dict(dict_)
        for key in values:
            self._increments.pop(key, None)
        if AUTH_USER_KEY in values and self._is_login(values[AUTH_USER_KEY]):
            self[AUTH_USER_KEY] = values.pop(AUTH_USER_KEY)
        super().update(values)

    async def aupdate(self, dict_: Any) -> None:
        values = dict(dict_)
        for key in values:
            self._increments.pop(key, None)
        if AUTH_USER_KEY in values:
            await self.aset(AUTH_USER_KEY, values.pop(AUTH_USER_KEY))
        await super().aupdate(values)

    # --- refusing a login past MAX_SESSIONS_PER_USER ("refuse") ----------------

    def _is_login(self, user_id: Any) -> bool:
        """Whether putting ``user_id`` into the session signs a user in (what
        ``login()`` does), while logins past the limit are refused."""
        if conf.REFUSES_PAST_LIMIT is None or user_id is None:
            return False
        self._session  # noqa: B018  (loaded: its record says who is signed in)
        record = self._record
        return record is None or record.user_id != str(user_id)

    def _capture(self) -> _Before:
        data = getattr(self, "_session_cache", None)
        return _Before(
            sid=self._sid,
            is_new=self._is_new,
            wrote=self._wrote,
            record=self._record,
            snapshot=dict(self._snapshot),
            values=dict(self._values),
            data=None if data is None else dict(data),
            increments=dict(self._increments),
            created_at=self._created_at,
            modified=self.modified,
            replaced=self._replaced,
        )

    def _restore(self, before: _Before) -> None:
        """Back to ``before``: nothing of the refused login is left, in the store or here."""
        self._sid, self._is_new, self._wrote = before.sid, before.is_new, before.wrote
        self._record, self._snapshot = before.record, before.snapshot
        self._values = before.values
        if before.data is None:
            self.__dict__.pop("_session_cache", None)
        else:
            self.__dict__["_session_cache"] = before.data
        self._increments, self._created_at = before.increments, before.created_at
        self.modified, self._replaced = before.modified, before.replaced
        self._before_login = self._rotated_from = None

    def _let_in(self, user_id: Any) -> tuple[str, int, _Before]:
        """Put the user in (the session as it was is kept to go back to)."""
        before = self._before_login or self._capture()
        super().__setitem__(AUTH_USER_KEY, user_id)
        limit = conf.REFUSES_PAST_LIMIT
        assert limit is not None
        return str(user_id), limit, before

    def _refuse(self, before: _Before, exc: BaseException) -> None:
        self._holding = False
        self._restore(before)
        self._refused = isinstance(exc, limits.SessionLimitReached)

    def _admit(self, user_id: Any) -> None:
        """A login while logins past MAX_SESSIONS_PER_USER are refused: under the user's
        lock in the store, count the user's sessions, then save this one at once or raise
        :class:`SessionLimitReached` (the session is then as it was before the login)."""
        user, limit, before = self._let_in(user_id)
        store = self.store

        def count_and_save() -> None:
            if store.count(user_id=user) >= limit:
                raise limits.SessionLimitReached(limit, user)
            self.save()

        self._holding = True
        try:
            store.user_locked(user, count_and_save)
        except BaseException as exc:
            self._refuse(before, exc)
            raise
        self._holding, self._admitted, self._refused = False, True, False
        self._sent_unless_bound()

    async def _aadmit(self, user_id: Any) -> None:
        user, limit, before = self._let_in(user_id)
        store = self.store

        async def count_and_save() -> None:
            if await store.acount(user_id=user) >= limit:
                raise limits.SessionLimitReached(limit, user)
            await self.asave()

        work: Callable[[], Awaitable[None]] = count_and_save
        self._holding = True
        try:
            await store.auser_locked(user, work)
        except BaseException as exc:
            self._refuse(before, exc)
            raise
        self._holding, self._admitted, self._refused = False, True, False
        await self._asent_unless_bound()

    @property
    def admitted(self) -> bool:
        """A login was let in during this request: its session is saved, its cookie not
        yet sent (MAX_SESSIONS_POLICY = "refuse")."""
        return self._admitted

    @property
    def refused(self) -> bool:
        """A login was refused during this request (:class:`SessionLimitReached`)."""
        return self._refused

    def has_changes(self) -> bool:
        if self.modified:
            return True
        data = getattr(self, "_session_cache", None)
        if data is None:
            return False
        # The usual read: every value still the very object loaded, and none that can
        # change in place. Then nothing changed, and no value needs its JSON made again.
        values = self._values
        if not self._increments and len(data) == len(values):
            for key, value in data.items():
                if type(value) not in _SCALARS or values.get(key, _SCALARS) is not value:
                    break
            else:
                return False
        return bool(self.changes())

    # --- loading ----------------------------------------------------------

    # Django's versions ask for ``session_key`` (here a signed value: an HMAC) to learn
    # whether there is an id at all.
    def _get_session(self, no_load: bool = False) -> dict[str, Any]:
        self.accessed = True
        try:
            return self._session_cache
        except AttributeError:
            data = {} if no_load or self._sid is None else self.load()
            self._session_cache: dict[str, Any] = data
            return data

    async def _aget_session(self, no_load: bool = False) -> dict[str, Any]:
        self.accessed = True
        try:
            return self._session_cache
        except AttributeError:
            data = {} if no_load or self._sid is None else await self.aload()
            self._session_cache = data
            return data

    @property
    def _session(self) -> dict[str, Any]:
        return self._get_session()

    def _loaded(self, record: SessionRecord | None) -> dict[str, Any]:
        self._increments = {}
        if self._legacy and record is not None and not record.data.get(IMPORTED_KEY):
            record = None  # an unsigned cookie never reaches a session that was not imported
        if record is not None and (reason := self._timed_out(record)):
            if self._sid is not None:  # deleted, and reported, at the end of the request
                self._ended = (store_key(self._sid), record, reason)
            record = None
        if record is None:
            # Missing or expired: never adopt the id the browser sent.
            self._sid, self._record, self._snapshot, self._values = None, None, {}, {}
            return {}
        self._record = record
        self._snapshot, self._values = _snapshot(record.data), record.data
        if self._bound and signals.session_client_changed.has_listeners():
            self._client_changed(record)  # works out the request's address and agent
        if self._bound and not cookies.is_key(self._sid):
            # An id from release 0.1 (43 characters) cannot be a session_key: the session
            # moves to a new id now, and the old key is deleted once the new one is saved.
            self._replaced = self._rotate()
        return dict(record.data)

    def load(self) -> dict[str, Any]:
        if self._sid is None or self._is_new:
            return {}
        return self._loaded(self.store.load(store_key(self._sid)))

    async def aload(self) -> dict[str, Any]:
        if self._sid is None or self._is_new:
            return {}
        return self._loaded(await self.store.aload(store_key(self._sid)))

    def exists(self, session_key: str | None) -> bool:
        sid = cookies.key_to_id(session_key)
        return sid is not None and self.store.exists(store_key(sid))

    async def aexists(self, session_key: str | None) -> bool:
        sid = cookies.key_to_id(session_key)
        return sid is not None and await self.store.aexists(store_key(sid))

    # --- saving -----------------------------------------------------------

    def _needs_create(self, must_create: bool) -> bool:
        return self._sid is None or (self._is_new and not must_create)

    def _prepare_save(self, must_create: bool) -> tuple[str, SessionRecord, Changes | None]:
        """The store key, the record to write and this request's changes (None: insert)."""
        assert self._sid is not None
        now = utcnow()
        data = self._session
        previous = self._record
        request = self.request
        user_id = data.get(AUTH_USER_KEY)
        self._password_changed = _password_changed(previous, data)
        self._signed_in_now = user_id is not None and (
            previous is None or previous.user_id != str(user_id)
        )
        record = SessionRecord(
            data=data,
            expires_at=self._expires_at(now),
            created_at=previous.created_at if previous else (self._created_at or now),
            last_seen=now,
            user_id=None if user_id is None else str(user_id),
            ip=metadata.client_ip(request) if request else (previous.ip if previous else None),
            user_agent=metadata.user_agent(request)
            if request
            else (previous.user_agent if previous else ""),
            version=previous.version if previous else 0,
        )
        # Fails here, before any write, naming the key that cannot be stored or is too big.
        snapshot = _snapshot(data, conf.MAX_DEPTH, self._snapshot)
        _check_size(snapshot)
        self._pending_snapshot = snapshot
        if must_create or self._is_new:
            return store_key(self._sid), record, None
        return store_key(self._sid), record, self.changes(snapshot)

    def _finish_save(self, saved: SessionRecord) -> None:
        cache = self._session
        merged = saved.data is not cache
        if merged:  # merged with a concurrent save: show the merged data
            cache.clear()
            cache.update(saved.data)
            saved.data = cache
        self._record = saved
        self._snapshot = _snapshot(cache) if merged else self._pending_snapshot
        self._values = dict(cache)
        self._increments = {}
        self._is_new = False
        self._wrote = True
        self.modified = False
        self._before_login = None

    @staticmethod
    def _eviction_limit() -> int | None:
        """MAX_SESSIONS_PER_USER when a login past it ends the oldest sessions (the default
        policy, "evict_oldest": after its save, the engine ends those past it)."""
        limit = conf.MAX_SESSIONS_PER_USER
        return limit if limit and conf.MAX_SESSIONS_POLICY == "evict_oldest" else None

    def _saved_events(self, key: str, saved: SessionRecord, *, created: bool) -> None:
        if rotated_from := self._rotated_from:  # cycle_key() waited for this save
            self._rotated_from = None
            self._queue(
                signals.session_rotated,
                key_hash=key,
                old_key_hash=rotated_from,
                user_id=saved.user_id,
            )
        if created:
            self._queue(signals.session_created, key_hash=key, user_id=saved.user_id)

    def save(self, must_create: bool = False) -> None:
        if self._needs_create(must_create):
            return self.create()
        key, record, changes = self._prepare_save(must_create)
        saved = self.store.save(key, record, must_create=changes is None, changes=changes)
        self._finish_save(saved)
        if replaced := self._take_replaced():
            self.store.delete(replaced)
        self._saved_events(key, saved, created=changes is None)
        limit = self._eviction_limit()
        if self._signed_in_now and saved.user_id is not None and limit:
            self._signed_in_now = False
            lifecycle.enforce_limit(self.store, saved.user_id, limit, request=self.request)
        if self._password_changed and saved.user_id is not None:
            self._password_changed = False
            lifecycle.end_user(
                self.store,
                saved.user_id,
                keep=key,
                reason="password_changed",
                by="user",
                request=self.request,
            )
        self._sent_unless_bound()

    async def asave(self, must_create: bool = False) -> None:
        if self._needs_create(must_create):
            return await self.acreate()
        await self._aget_session()
        key, record, changes = self._prepare_save(must_create)
        saved = await self.store.asave(key, record, must_create=changes is None, changes=changes)
        self._finish_save(saved)
        if replaced := self._take_replaced():
            await self.store.adelete(replaced)
        self._saved_events(key, saved, created=changes is None)
        limit = self._eviction_limit()
        if self._signed_in_now and saved.user_id is not None and limit:
            self._signed_in_now = False
            await lifecycle.aenforce_limit(self.store, saved.user_id, limit, request=self.request)
        if self._password_changed and saved.user_id is not None:
            self._password_changed = False
            await lifecycle.aend_user(
                self.store,
                saved.user_id,
                keep=key,
                reason="password_changed",
                by="user",
                request=self.request,
            )
        await self._asent_unless_bound()

    def _next_create_id(self, attempt: int) -> None:
        # Keep an id that cycle_key()/regenerate() just made; otherwise make one.
        if attempt or self._sid is None or not self._is_new:
            self._new_id()

    def _create_failed(self) -> CreateError:
        return CreateError(
            f"no unused session id after {MAX_CREATE_ATTEMPTS} attempts; "
            "if SESSIONKIT['GENID'] is set, it must return a different id each time"
        )

    def create(self) -> None:
        self._get_session(no_load=self._sid is None or self._is_new)
        for attempt in range(MAX_CREATE_ATTEMPTS):
            self._next_create_id(attempt)
            try:
                self.save(must_create=True)
            except CreateError:
                continue
            self.modified = True
            return
        raise self._create_failed()

    async def acreate(self) -> None:
        await self._aget_session(no_load=self._sid is None or self._is_new)
        for attempt in range(MAX_CREATE_ATTEMPTS):
            self._next_create_id(attempt)
            try:
                await self.asave(must_create=True)
            except CreateError:
                continue
            self.modified = True
            return
        raise self._create_failed()

    # --- deleting and rotating ---------------------------------------------

    def end_timed_out(self) -> None:
        """Delete the stored record of a session that loaded past IDLE_TIMEOUT or
        ABSOLUTE_TIMEOUT (the middleware calls this at the end of the request)."""
        if ended := self._ended:
            self._ended = None
            self.store.delete(ended[0])
            self._queue_ended(*ended)

    async def aend_timed_out(self) -> None:
        if ended := self._ended:
            self._ended = None
            await self.store.adelete(ended[0])
            self._queue_ended(*ended)

    # --- events ---------------------------------------------------------------

    def _queue(self, signal: Signal, **kwargs: Any) -> None:
        """An event, sent once the request is over (or at once outside a request); nothing
        at all while nobody listens to ``signal``."""
        if signal.has_listeners():
            self._events.append((signal, {"sender": type(self), "request": self.request, **kwargs}))

    def _queue_ended(self, key: str, record: SessionRecord | None, reason: str) -> None:
        self._queue(
            signals.session_ended,
            key_hash=key,
            user_id=record.user_id if record else None,
            reason=reason,
            by=None,
            record=record,
        )

    def _client_changed(self, record: SessionRecord) -> None:
        assert self.request is not None
        after = (metadata.client_ip(self.request), metadata.user_agent(self.request))
        before = (record.ip, record.user_agent or "")
        if record.ip is not None and before != after:
            self._queue(
                signals.session_client_changed,
                key_hash=store_key(self._sid or ""),
                user_id=record.user_id,
                before=before,
                after=after,
            )

    def send_events(self) -> None:
        """Send the events this session queued (the middleware calls this at the end)."""
        if self._events:
            events, self._events = self._events, []
            signals.send(events)

    async def asend_events(self) -> None:
        if self._events:
            events, self._events = self._events, []
            await signals.asend(events)

    def _sent_unless_bound(self) -> None:
        if not (self._bound or self._holding):
            self.send_events()

    async def _asent_unless_bound(self) -> None:
        if not (self._bound or self._holding):
            await self.asend_events()

    def _take_replaced(self) -> str | None:
        replaced, self._replaced = self._replaced, None
        return replaced

    def _keys_to_delete(self, session_key: str | None) -> list[str]:
        if session_key is not None:
            sid = cookies.key_to_id(session_key)
        elif self._is_new:
            sid = None  # never stored: nothing to delete
        else:
            sid = self._sid
        if sid is not None and sid == self._sid:
            self._record = None
        keys = [] if sid is None else [store_key(sid)]
        if session_key is None and (replaced := self._take_replaced()):
            keys.append(replaced)  # the id this session had before it was moved
        return keys

    def delete(self, session_key: str | None = None) -> None:
        for key in self._keys_to_delete(session_key):
            self.store.delete(key)

    async def adelete(self, session_key: str | None = None) -> None:
        for key in self._keys_to_delete(session_key):
            await self.store.adelete(key)

    def _forget(self) -> None:
        self._sid, self._record, self._snapshot, self._increments = None, None, {}, {}
        self._values = {}
        self._is_new, self._created_at, self._began = False, None, None
        self._before_login = self._rotated_from = None

    def _queue_logout(self) -> None:
        if self._sid is not None and not self._is_new:
            self._queue_ended(store_key(self._sid), self._record, "logout")

    def flush(self) -> None:
        """Empty the session, delete it from the store and drop its id."""
        self._queue_logout()
        self.clear()
        self.delete()
        self._forget()
        self._sent_unless_bound()

    async def aflush(self) -> None:
        self._queue_logout()
        self.clear()
        await self.adelete()
        self._forget()
        await self._asent_unless_bound()

    def _rotate(self, *, restart: bool = False) -> str | None:
        """Give the session a new id; return the old store key if it must be deleted.

        ``restart``: the new id starts the session anew for ABSOLUTE_TIMEOUT (a login)."""
        old_key = None if self._sid is None or self._is_new else store_key(self._sid)
        previous = self._record
        self._created_at = previous.created_at if previous else self._created_at
        self._began = self._created_at
        if restart:
            self._created_at = utcnow()
        self._record = None
        self._new_id()
        self.modified = True
        if previous is not None:  # the new id starts from the stored version's metadata
            self._record = SessionRecord(
                data=previous.data,
                expires_at=previous.expires_at,
                created_at=self._created_at or previous.created_at,
                last_seen=previous.last_seen,
                user_id=previous.user_id,
                ip=previous.ip,
                user_agent=previous.user_agent,
                version=0,
            )
        return old_key

    def _rotate_for_login(self) -> str | None:
        """cycle_key()'s rotation; the old key if it must be deleted now. While logins past
        MAX_SESSIONS_PER_USER are refused, the old key is deleted when the new id is saved
        (a refused login leaves the visitor's session as it was)."""
        if conf.REFUSES_PAST_LIMIT is None:
            return self._rotate(restart=conf.ABSOLUTE_TIMEOUT is not None)
        self._before_login = self._capture()
        old_key = self._rotate(restart=conf.ABSOLUTE_TIMEOUT is not None)
        if old_key is not None:
            self._replaced = self._rotated_from = old_key
        return None

    def cycle_key(self) -> None:
        """New id, same data; the old id is dead at once (login does this)."""
        self._session  # noqa: B018  (load the data before the id changes)
        if old_key := self._rotate_for_login():
            self.store.delete(old_key)
            self._queue_rotated(old_key)
            self._sent_unless_bound()

    async def acycle_key(self) -> None:
        await self._aget_session()
        if old_key := self._rotate_for_login():
            await self.store.adelete(old_key)
            self._queue_rotated(old_key)
            await self._asent_unless_bound()

    def _queue_rotated(self, old_key: str) -> None:
        user = self._record.user_id if self._record else None
        new_key = store_key(self._sid or "")
        self._queue(signals.session_rotated, key_hash=new_key, old_key_hash=old_key, user_id=user)

    # --- express-session's Session API --------------------------------------

    def regenerate(self) -> None:
        """express's ``req.session.regenerate()``: old session deleted, new empty one saved."""
        self.flush()
        self._new_id()
        self.modified = True

    async def aregenerate(self) -> None:
        await self.aflush()
        self._new_id()
        self.modified = True

    def destroy(self) -> None:
        """express's ``req.session.destroy()``: end the session; the cookie is removed too."""
        self.flush()

    async def adestroy(self) -> None:
        await self.aflush()

    def _reloaded(self, record: SessionRecord | None) -> None:
        if record is None:
            raise SessionInterrupted("The session no longer exists in the store; it was ended.")
        self._session_cache = self._loaded(record)
        self.modified = False

    def reload(self) -> None:
        """Re-read the session from the store, dropping unsaved changes."""
        if self._sid is None or self._is_new:
            raise SessionInterrupted("The session was never saved, so it cannot be reloaded.")
        self._reloaded(self.store.load(store_key(self._sid)))

    async def areload(self) -> None:
        if self._sid is None or self._is_new:
            raise SessionInterrupted("The session was never saved, so it cannot be reloaded.")
        self._reloaded(await self.store.aload(store_key(self._sid)))

    def _touch_args(self) -> tuple[str, datetime, datetime] | None:
        if self._sid is None or self._is_new:
            return None
        now = utcnow()
        return store_key(self._sid), self._expires_at(now), now

    def _touched(self, ok: bool, expires_at: datetime, now: datetime) -> bool:
        if ok and self._record is not None:
            self._record.expires_at, self._record.last_seen = expires_at, now
        return ok

    def touch(self) -> bool:
        """Move the stored expiry and last activity now, without rewriting the data.

        Returns ``False`` when the session is not in the store (never saved or ended).
        """
        args = self._touch_args()
        return args is not None and self._touched(self.store.touch(*args), *args[1:])

    async def atouch(self) -> bool:
        await self._aget_session()
        args = self._touch_args()
        return args is not None and self._touched(await self.store.atouch(*args), *args[1:])

    # --- housekeeping ---------------------------------------------------------

    @classmethod
    def clear_expired(cls) -> None:
        for _removed in lifecycle.purge(get_store()):
            pass

    @classmethod
    async def aclear_expired(cls) -> None:
        from asgiref.sync import sync_to_async

        await sync_to_async(cls.clear_expired)()
