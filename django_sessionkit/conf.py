"""The ``SESSIONKIT`` settings, normalised once and kept until a setting changes.

Each value is worked out on first use and remembered: the request path reads a
dozen of them per request, and reading Django's settings each time cost more
than the rest of the cookie handling. Django's ``setting_changed`` signal (sent
by ``override_settings`` and pytest-django's ``settings`` fixture) forgets them
all, so tests that change settings see the new values. Unset keys fall back to
Django's ``SESSION_*`` settings. Values are validated by the system checks in
:mod:`django_sessionkit.checks`; the properties here assume a valid
configuration and only normalise it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Generic, Literal, TypeVar, overload

from django.conf import settings as django_settings
from django.core.signals import setting_changed
from django.http import HttpRequest
from django.utils.module_loading import import_string

DEFAULT_STORE = "django_sessionkit.stores.database.DatabaseStore"

#: Top-level SESSIONKIT keys and the express-session option each one mirrors.
KEYS: dict[str, str] = {
    "SECRET": "secret",
    "NAME": "name",
    "COOKIE": "cookie",
    "GENID": "genid",
    "PROXY": "proxy",
    "RESAVE": "resave",
    "ROLLING": "rolling",
    "SAVE_UNINITIALIZED": "saveUninitialized",
    "STORE": "store",
    "UNSET": "unset",
    "SIGNED": "(cookie-signature)",
    "COMPAT": "(none)",
    "CLIENT_IP_HEADER": "(none)",
    "TRUSTED_PROXIES": "(none)",
    "USER_AGENT_MAX_LENGTH": "(none)",
    "ADMIN_SENSITIVE_KEYS": "(none)",
    "MAX_SIZE": "(none)",
    "MAX_DEPTH": "(none)",
    "EXPRESS_USER_LOADER": "(none)",
    "EXPRESS_USER_KEY": "(none)",
    "IDLE_TIMEOUT": "(none)",
    "ABSOLUTE_TIMEOUT": "(none)",
    "ANONYMOUS_MAX_AGE": "(none)",
    "TOUCH_AFTER": "touchAfter (connect-mongo)",
    "END_SESSIONS_ON_PASSWORD_CHANGE": "(none)",
    "MAX_SESSIONS_PER_USER": "(none)",
    "KEEP_ENDED": "(none)",
    "MAX_SESSIONS_POLICY": "(none)",
    "MAX_SESSIONS_MESSAGE": "(none)",
}

#: What a login past MAX_SESSIONS_PER_USER does (the first is the default).
MAX_SESSIONS_POLICIES = ("evict_oldest", "refuse")

#: The lifetime keys: seconds (an int >= 1), or None for no limit.
LIFETIME_KEYS = ("IDLE_TIMEOUT", "ABSOLUTE_TIMEOUT", "ANONYMOUS_MAX_AGE")

#: Keys of SESSIONKIT["COOKIE"] and the express-session ``cookie.*`` option each mirrors.
COOKIE_KEYS: dict[str, str] = {
    "MAX_AGE": "maxAge",
    "HTTP_ONLY": "httpOnly",
    "SECURE": "secure",
    "SAME_SITE": "sameSite",
    "DOMAIN": "domain",
    "PATH": "path",
    "PARTITIONED": "partitioned",
    "PRIORITY": "priority",
}

STORE_KEYS = ("BACKEND", "LOCATION", "OPTIONS")

#: Default for SESSIONKIT["MAX_SIZE"]: far above any sane session, well below what hurts a store.
DEFAULT_MAX_SIZE = 256 * 1024
#: Default for SESSIONKIT["MAX_DEPTH"]: levels of lists and dicts inside one session value.
DEFAULT_MAX_DEPTH = 100

SAME_SITE_VALUES = {"strict": "Strict", "lax": "Lax", "none": "None", "auto": "auto"}
PRIORITY_VALUES = {"low": "Low", "medium": "Medium", "high": "High"}
UNSET_VALUES = ("keep", "destroy")
COMPAT_VALUES = (None, "express")

SecureSetting = bool | Literal["auto"]

_MISSING = object()

T = TypeVar("T")


class setting(Generic[T]):  # lower case: used as a decorator, like ``property``
    """A read-only property whose value is computed once and kept until :meth:`Settings.reset`."""

    def __init__(self, compute: Callable[[Any], T]) -> None:
        self.compute = compute
        self.name = compute.__name__
        self.__doc__ = compute.__doc__

    @overload
    def __get__(self, instance: None, owner: type) -> setting[T]: ...
    @overload
    def __get__(self, instance: Settings, owner: type) -> T: ...
    def __get__(self, instance: Settings | None, owner: type) -> setting[T] | T:
        if instance is None:
            return self
        cache = instance._values
        try:
            return cache[self.name]  # type: ignore[no-any-return]
        except KeyError:
            value = cache[self.name] = self.compute(instance)
            return value


class Settings:
    """Typed, normalised access to ``settings.SESSIONKIT``."""

    def __init__(self) -> None:
        self._values: dict[str, Any] = {}

    def reset(self) -> None:
        """Forget every computed value (a Django setting changed)."""
        self._values = {}

    @property
    def raw(self) -> Mapping[str, Any]:
        value = getattr(django_settings, "SESSIONKIT", None)
        return value if isinstance(value, Mapping) else {}

    def _get(self, key: str, default: Any) -> Any:
        return self.raw.get(key, default)

    def _cookie(self, key: str, default: Any) -> Any:
        cookie = self.raw.get("COOKIE")
        if isinstance(cookie, Mapping) and key in cookie:
            return cookie[key]
        return default

    # --- signing ----------------------------------------------------------

    @setting
    def SECRETS(self) -> list[str]:
        """Signing secrets: the first signs, every one verifies."""
        secret = self._get("SECRET", None)
        if secret is None:
            fallbacks = getattr(django_settings, "SECRET_KEY_FALLBACKS", [])
            return [django_settings.SECRET_KEY, *fallbacks]
        if isinstance(secret, str):
            return [secret]
        return list(secret)

    @setting
    def SIGNED(self) -> bool:
        return bool(self._get("SIGNED", True))

    # --- cookie -----------------------------------------------------------

    @setting
    def NAME(self) -> str:
        return str(self._get("NAME", django_settings.SESSION_COOKIE_NAME))

    @setting
    def MAX_AGE(self) -> int | None:
        """Cookie lifetime in seconds, or ``None`` for a browser-session cookie."""
        value = self._cookie("MAX_AGE", _MISSING)
        if value is _MISSING:
            if django_settings.SESSION_EXPIRE_AT_BROWSER_CLOSE:
                return None
            return int(django_settings.SESSION_COOKIE_AGE)
        return None if value is None else int(value)

    @setting
    def STORE_AGE(self) -> int:
        """How long the store keeps a browser-session cookie's session, in seconds."""
        max_age = self.MAX_AGE
        return int(django_settings.SESSION_COOKIE_AGE) if max_age is None else max_age

    @setting
    def HTTP_ONLY(self) -> bool:
        return bool(self._cookie("HTTP_ONLY", django_settings.SESSION_COOKIE_HTTPONLY))

    @setting
    def SECURE(self) -> SecureSetting:
        value = self._cookie("SECURE", django_settings.SESSION_COOKIE_SECURE)
        if isinstance(value, str):
            return "auto"
        return bool(value)

    @setting
    def SAME_SITE(self) -> str | None:
        """``"Strict"``, ``"Lax"``, ``"None"``, ``"auto"`` or ``None`` (attribute omitted)."""
        value = self._cookie("SAME_SITE", django_settings.SESSION_COOKIE_SAMESITE)
        if value is True:
            return "Strict"
        if value is False or value is None:
            return None
        return SAME_SITE_VALUES[str(value).lower()]

    @setting
    def DOMAIN(self) -> str | None:
        value = self._cookie("DOMAIN", django_settings.SESSION_COOKIE_DOMAIN)
        return value or None

    @setting
    def PATH(self) -> str:
        return str(self._cookie("PATH", django_settings.SESSION_COOKIE_PATH) or "/")

    @setting
    def PARTITIONED(self) -> bool:
        return bool(self._cookie("PARTITIONED", False))

    @setting
    def PRIORITY(self) -> str | None:
        value = self._cookie("PRIORITY", None)
        return None if value is None else PRIORITY_VALUES[str(value).lower()]

    # --- behaviour --------------------------------------------------------

    @setting
    def GENID(self) -> Callable[[HttpRequest | None], str] | None:
        value = self._get("GENID", None)
        if value is None:
            return None
        if isinstance(value, str):
            return import_string(value)  # type: ignore[no-any-return]
        return value  # type: ignore[no-any-return]

    @setting
    def PROXY(self) -> bool | None:
        value = self._get("PROXY", None)
        return None if value is None else bool(value)

    @setting
    def RESAVE(self) -> bool:
        return bool(self._get("RESAVE", django_settings.SESSION_SAVE_EVERY_REQUEST))

    @setting
    def ROLLING(self) -> bool:
        return bool(self._get("ROLLING", django_settings.SESSION_SAVE_EVERY_REQUEST))

    @setting
    def SAVE_UNINITIALIZED(self) -> bool:
        return bool(self._get("SAVE_UNINITIALIZED", False))

    @setting
    def UNSET(self) -> str:
        return str(self._get("UNSET", "keep")).lower()

    @setting
    def COMPAT(self) -> str | None:
        value = self._get("COMPAT", None)
        return None if value is None else str(value)

    # --- store ------------------------------------------------------------

    @setting
    def STORE(self) -> dict[str, Any]:
        """``{"BACKEND": dotted path, "LOCATION": …, "OPTIONS": {…}}`` with defaults filled in."""
        store = self._get("STORE", None) or {}
        return {
            "BACKEND": store.get("BACKEND", DEFAULT_STORE),
            "LOCATION": store.get("LOCATION"),
            "OPTIONS": dict(store.get("OPTIONS") or {}),
        }

    # --- metadata ---------------------------------------------------------

    @setting
    def CLIENT_IP_HEADER(self) -> str | None:
        """``request.META`` key holding the proxies' client-address list, or ``None``."""
        value = self._get("CLIENT_IP_HEADER", None)
        return None if value is None else str(value)

    @setting
    def TRUSTED_PROXIES(self) -> int:
        """How many proxies in front of Django append to ``CLIENT_IP_HEADER``."""
        return int(self._get("TRUSTED_PROXIES", 1))

    @setting
    def MAX_SIZE(self) -> int | None:
        """Largest session data accepted at save time, in bytes of JSON (``None``: no limit)."""
        value = self._get("MAX_SIZE", DEFAULT_MAX_SIZE)
        return None if value is None else int(value)

    @setting
    def IDLE_TIMEOUT(self) -> int | None:
        """Seconds without a request after which a session ends (``None``: no limit)."""
        value = self._get("IDLE_TIMEOUT", None)
        return None if value is None else int(value)

    @setting
    def ABSOLUTE_TIMEOUT(self) -> int | None:
        """Seconds after its start (creation, or the login that gave it its id) after which
        a session ends, whatever its activity (``None``: no limit)."""
        value = self._get("ABSOLUTE_TIMEOUT", None)
        return None if value is None else int(value)

    @setting
    def ANONYMOUS_MAX_AGE(self) -> int | None:
        """The longest lifetime of a session nobody is signed in to (``None``: MAX_AGE's)."""
        value = self._get("ANONYMOUS_MAX_AGE", None)
        return None if value is None else int(value)

    @setting
    def TOUCH_AFTER(self) -> int:
        """An unchanged session is touched at most once per this many seconds (0: every
        request, as express-session does). With IDLE_TIMEOUT and no explicit value, a tenth
        of it (at most a minute), so that idle time is known to that precision."""
        value = self._get("TOUCH_AFTER", None)
        if value is not None:
            return int(value)
        idle = self.IDLE_TIMEOUT
        return 0 if idle is None else max(1, min(60, idle // 10))

    @setting
    def MAX_SESSIONS_PER_USER(self) -> int | None:
        """The most sessions one user keeps: a login past it ends the user's least recently
        seen ones, or fails (MAX_SESSIONS_POLICY); ``None``: no limit."""
        value = self._get("MAX_SESSIONS_PER_USER", None)
        return None if value is None else int(value)

    @setting
    def KEEP_ENDED(self) -> int:
        """Seconds an ended session is kept for the audit trail (0: the audit is off, no
        record of how sessions start or end is written)."""
        value = self._get("KEEP_ENDED", 0)
        # Read at start-up (AppConfig.ready), before the checks report a wrong value (E032).
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    @setting
    def MAX_SESSIONS_POLICY(self) -> str:
        """``"evict_oldest"``: a login past MAX_SESSIONS_PER_USER ends the user's least
        recently seen sessions; ``"refuse"``: the login fails and nothing is written."""
        return str(self._get("MAX_SESSIONS_POLICY", None) or MAX_SESSIONS_POLICIES[0])

    @setting
    def REFUSES_PAST_LIMIT(self) -> int | None:
        """The limit when logins past it are refused (``None``: they are not)."""
        limit = self.MAX_SESSIONS_PER_USER
        return limit if limit and self.MAX_SESSIONS_POLICY == "refuse" else None

    @setting
    def MAX_SESSIONS_MESSAGE(self) -> str | None:
        """The refused login's message (``{limit}`` is replaced); ``None``: the built-in,
        translated one. A lazy translation (``gettext_lazy``) stays lazy: it is turned into
        text in the language of the request that is refused."""
        value: str | None = self._get("MAX_SESSIONS_MESSAGE", None)
        return value

    @setting
    def END_SESSIONS_ON_PASSWORD_CHANGE(self) -> bool:
        return bool(self._get("END_SESSIONS_ON_PASSWORD_CHANGE", True))

    @setting
    def MAX_DEPTH(self) -> int | None:
        """Most levels of lists and dicts a saved value may nest (``None``: no limit)."""
        value = self._get("MAX_DEPTH", DEFAULT_MAX_DEPTH)
        return None if value is None else int(value)

    @setting
    def USER_AGENT_MAX_LENGTH(self) -> int:
        return int(self._get("USER_AGENT_MAX_LENGTH", 512))

    # --- admin ------------------------------------------------------------

    @setting
    def ADMIN_SENSITIVE_KEYS(self) -> tuple[str, ...] | None:
        """Name fragments whose values the admin masks, or ``None`` for the default list."""
        value = self._get("ADMIN_SENSITIVE_KEYS", None)
        return None if value is None else tuple(str(v).lower() for v in value)

    # --- sharing sessions with Express (COMPAT="express") -------------------

    @setting
    def EXPRESS_USER_LOADER(self) -> Callable[[Any, HttpRequest], Any] | None:
        """Maps the Express session's user to a Django user (``None``: never sign in)."""
        value = self._get("EXPRESS_USER_LOADER", None)
        if value is None:
            return None
        return import_string(value) if isinstance(value, str) else value  # type: ignore[no-any-return]

    @setting
    def EXPRESS_USER_KEY(self) -> str:
        """The Express session key holding its signed-in user."""
        return str(self._get("EXPRESS_USER_KEY", None) or "user")


sessionkit_settings = Settings()


def _setting_changed(**kwargs: Any) -> None:
    sessionkit_settings.reset()


setting_changed.connect(_setting_changed, dispatch_uid="django_sessionkit.conf")
