"""Sign in on Django the users an Express app signed in (``COMPAT = "express"``, opt-in).

An Express app usually signs a user in with ``req.session.user = {...}``; Django
knows nothing of that key. Name a callable that maps that value to a Django user::

    SESSIONKIT = {
        "COMPAT": "express",
        "EXPRESS_USER_LOADER": "myproject.auth.user_from_express",
        # "EXPRESS_USER_KEY": "user",   # the Express session key (default "user")
        ...
    }
    MIDDLEWARE = [
        ...,
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django_sessionkit.express.ExpressUserMiddleware",  # after AuthenticationMiddleware
        ...,
    ]

    def user_from_express(value, request):
        # value is what the Express app stored, e.g. {"username": "alice"}
        return User.objects.filter(username=value.get("username")).first()

When a request arrives with no Django user signed in but with that key in the session,
the middleware calls the loader and, if it returns an active user, signs it in with
:func:`django.contrib.auth.login` (which also gives the session a new id and stores
``_auth_user_id``, so the Express app sees the Django login too). The loader returns
``None`` to refuse. Without ``EXPRESS_USER_LOADER`` the middleware does nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth import login
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponseBase

from django_sessionkit.conf import sessionkit_settings

__all__ = ["ExpressUserMiddleware", "user_key", "user_loader"]

UserLoader = Callable[[Any, HttpRequest], Any]


def user_loader() -> UserLoader | None:
    """The configured ``SESSIONKIT["EXPRESS_USER_LOADER"]``, imported, or ``None``."""
    loader = sessionkit_settings.EXPRESS_USER_LOADER
    if loader is not None and not callable(loader):
        raise ImproperlyConfigured(
            f"SESSIONKIT['EXPRESS_USER_LOADER'] is {loader!r}, which is not callable."
        )
    return loader


def user_key() -> str:
    """The Express session key holding the signed-in user (``SESSIONKIT["EXPRESS_USER_KEY"]``)."""
    return sessionkit_settings.EXPRESS_USER_KEY


def sign_in_express_user(request: HttpRequest) -> bool:
    """Sign in the Express session's user, if any and if the loader accepts it."""
    loader = user_loader()
    session = getattr(request, "session", None)
    if loader is None or session is None:
        return False
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return False
    value = session.get(user_key())
    if value is None:
        return False
    found = loader(value, request)
    if found is None or not getattr(found, "is_active", True):
        return False
    backend = getattr(found, "backend", None) or settings.AUTHENTICATION_BACKENDS[0]
    login(request, found, backend=backend)
    request.user = found
    return True


class ExpressUserMiddleware:
    """Put it after ``AuthenticationMiddleware``; see the module docstring."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        sign_in_express_user(request)
        return self.get_response(request)
