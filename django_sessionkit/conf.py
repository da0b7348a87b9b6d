"""The ``SESSIONKIT`` settings, read at call time.

Every property reads ``settings.SESSIONKIT`` afresh, so ``override_settings``
works in tests. Unset keys fall back to Django's ``SESSION_*`` settings.
Values are validated by the system checks in :mod:`django_sessionkit.checks`;
the properties here assume a valid configuration and only normalise it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

from django.conf import settings as django_settings
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
    "EXPRESS_USER_LOADER": "(none)",
    "EXPRESS_USER_KEY": "(none)",
}

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

SAME_SITE_VALUES = {"strict": "Strict", "lax": "Lax", "none": "None", "auto": "auto"}
PRIORITY_VALUES = {"low": "Low", "medium": "Medium", "high": "High"}
UNSET_VALUES = ("keep", "destroy")
COMPAT_VALUES = (None, "express")

SecureSetting = bool | Literal["auto"]

_MISSING = object()


class Settings:
    """Typed, normalised access to ``settings.SESSIONKIT``."""

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

    @property
    def SECRETS(self) -> list[str]:
        """Signing secrets: the first signs, every one verifies."""
        secret = self._get("SECRET", None)
        if secret is None:
            fallbacks = getattr(django_settings, "SECRET_KEY_FALLBACKS", [])
            return [django_settings.SECRET_KEY, *fallbacks]
        if isinstance(secret, str):
            return [secret]
        return list(secret)

    @property
    def SIGNED(self) -> bool:
        return bool(self._get("SIGNED", True))

    # --- cookie -----------------------------------------------------------

    @property
    def NAME(self) -> str:
        return str(self._get("NAME", django_settings.SESSION_COOKIE_NAME))

    @property
    def MAX_AGE(self) -> int | None:
        """Cookie lifetime in seconds, or ``None`` for a browser-session cookie."""
        value = self._cookie("MAX_AGE", _MISSING)
        if value is _MISSING:
            if django_settings.SESSION_EXPIRE_AT_BROWSER_CLOSE:
                return None
            return int(django_settings.SESSION_COOKIE_AGE)
        return None if value is None else int(value)

    @property
    def STORE_AGE(self) -> int:
        """How long the store keeps a browser-session cookie's session, in seconds."""
        max_age = self.MAX_AGE
        return int(django_settings.SESSION_COOKIE_AGE) if max_age is None else max_age

    @property
    def HTTP_ONLY(self) -> bool:
        return bool(self._cookie("HTTP_ONLY", django_settings.SESSION_COOKIE_HTTPONLY))

    @property
    def SECURE(self) -> SecureSetting:
        value = self._cookie("SECURE", django_settings.SESSION_COOKIE_SECURE)
        if isinstance(value, str):
            return "auto"
        return bool(value)

    @property
    def SAME_SITE(self) -> str | None:
        """``"Strict"``, ``"Lax"``, ``"None"``, ``"auto"`` or ``None`` (attribute omitted)."""
        value = self._cookie("SAME_SITE", django_settings.SESSION_COOKIE_SAMESITE)
        if value is True:
            return "Strict"
        if value is False or value is None:
            return None
        return SAME_SITE_VALUES[str(value).lower()]

    @property
    def DOMAIN(self) -> str | None:
        value = self._cookie("DOMAIN", django_settings.SESSION_COOKIE_DOMAIN)
        return value or None

    @property
    def PATH(self) -> str:
        return str(self._cookie("PATH", django_settings.SESSION_COOKIE_PATH) or "/")

    @property
    def PARTITIONED(self) -> bool:
        return bool(self._cookie("PARTITIONED", False))

    @property
    def PRIORITY(self) -> str | None:
        value = self._cookie("PRIORITY", None)
        return None if value is None else PRIORITY_VALUES[str(value).lower()]

    # --- behaviour --------------------------------------------------------

    @property
    def GENID(self) -> Callable[[HttpRequest | None], str] | None:
        value = self._get("GENID", None)
        if value is None:
            return None
        if isinstance(value, str):
            return import_string(value)  # type: ignore[no-any-return]
        return value  # type: ignore[no-any-return]

    @property
    def PROXY(self) -> bool | None:
        value = self._get("PROXY", None)
        return None if value is None else bool(value)

    @property
    def RESAVE(self) -> bool:
        return bool(self._get("RESAVE", django_settings.SESSION_SAVE_EVERY_REQUEST))

    @property
    def ROLLING(self) -> bool:
        return bool(self._get("ROLLING", django_settings.SESSION_SAVE_EVERY_REQUEST))

    @property
    def SAVE_UNINITIALIZED(self) -> bool:
        return bool(self._get("SAVE_UNINITIALIZED", False))

    @property
    def UNSET(self) -> str:
        return str(self._get("UNSET", "keep")).lower()

    @property
    def COMPAT(self) -> str | None:
        value = self._get("COMPAT", None)
        return None if value is None else str(value)

    # --- store ------------------------------------------------------------

    @property
    def STORE(self) -> dict[str, Any]:
        """``{"BACKEND": dotted path, "LOCATION": …, "OPTIONS": {…}}`` with defaults filled in."""
        store = self._get("STORE", None) or {}
        return {
            "BACKEND": store.get("BACKEND", DEFAULT_STORE),
            "LOCATION": store.get("LOCATION"),
            "OPTIONS": dict(store.get("OPTIONS") or {}),
        }

    # --- metadata ---------------------------------------------------------

    @property
    def CLIENT_IP_HEADER(self) -> str | None:
        """``request.META`` key holding the proxies' client-address list, or ``None``."""
        value = self._get("CLIENT_IP_HEADER", None)
        return None if value is None else str(value)

    @property
    def TRUSTED_PROXIES(self) -> int:
        """How many proxies in front of Django append to ``CLIENT_IP_HEADER``."""
        return int(self._get("TRUSTED_PROXIES", 1))

    @property
    def MAX_SIZE(self) -> int | None:
        """Largest session data accepted at save time, in bytes of JSON (``None``: no limit)."""
        value = self._get("MAX_SIZE", DEFAULT_MAX_SIZE)
        return None if value is None else int(value)

    @property
    def USER_AGENT_MAX_LENGTH(self) -> int:
        return int(self._get("USER_AGENT_MAX_LENGTH", 512))

    # --- admin ------------------------------------------------------------

    @property
    def ADMIN_SENSITIVE_KEYS(self) -> tuple[str, ...] | None:
        """Name fragments whose values the admin masks, or ``None`` for the default list."""
        value = self._get("ADMIN_SENSITIVE_KEYS", None)
        return None if value is None else tuple(str(v).lower() for v in value)

    # --- sharing sessions with Express (COMPAT="express") -------------------

    @property
    def EXPRESS_USER_LOADER(self) -> Callable[[Any, HttpRequest], Any] | None:
        """Maps the Express session's user to a Django user (``None``: never sign in)."""
        value = self._get("EXPRESS_USER_LOADER", None)
        if value is None:
            return None
        return import_string(value) if isinstance(value, str) else value  # type: ignore[no-any-return]

    @property
    def EXPRESS_USER_KEY(self) -> str:
        """The Express session key holding its signed-in user."""
        return str(self._get("EXPRESS_USER_KEY", None) or "user")


sessionkit_settings = Settings()
