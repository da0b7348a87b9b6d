"""``MAX_SESSIONS_POLICY = "refuse"``: the refused login's exception, message and page.

The engine refuses the login (see ``SessionStore._admit``): when ``login()`` puts the user
into the session, it takes the user's lock in the store, counts the user's sessions and
either saves the new one then and there or raises :class:`SessionLimitReached`. The
middleware answers an exception nobody caught with a 403 page,
``django_sessionkit/session_limit_reached.html``; a login view that catches it shows
``str(exc)`` on its form instead.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template import TemplateDoesNotExist
from django.template.loader import render_to_string
from django.utils.translation import gettext

from django_sessionkit.conf import sessionkit_settings as conf

__all__ = ["DEFAULT_MESSAGE", "TEMPLATE", "SessionLimitReached", "message", "refused_response"]

#: The page of a refused login; a project overrides it with a template of the same name.
TEMPLATE = "django_sessionkit/session_limit_reached.html"

#: The built-in message (translated); ``SESSIONKIT["MAX_SESSIONS_MESSAGE"]`` replaces it.
DEFAULT_MESSAGE = (
    "You are already signed in on as many devices as this site allows ({limit}). "
    "Sign out on one of them, then sign in here again."
)


def message(limit: int) -> str:
    """The refused login's message, in the active language, with ``{limit}`` filled in."""
    text = conf.MAX_SESSIONS_MESSAGE
    return str(gettext(DEFAULT_MESSAGE) if text is None else text).replace("{limit}", str(limit))


class SessionLimitReached(PermissionDenied):
    """A login refused by ``MAX_SESSIONS_POLICY = "refuse"``: the user already has
    ``MAX_SESSIONS_PER_USER`` live sessions. Nothing was written: the visitor's session is
    as it was before ``login()``, and the user is not signed in. ``str(exc)`` is the message
    to show (``SESSIONKIT["MAX_SESSIONS_MESSAGE"]``)."""

    def __init__(self, limit: int, user_id: str) -> None:
        self.limit = limit
        self.user_id = user_id
        self.message = message(limit)
        super().__init__(self.message)


def refused_response(request: HttpRequest, exc: SessionLimitReached) -> HttpResponse:
    """The 403 page of a refused login that the view did not catch."""
    context = {"message": exc.message, "limit": exc.limit}
    try:
        body = render_to_string(TEMPLATE, context, request=request)
    except TemplateDoesNotExist:  # no app templates at all: the message as text
        return HttpResponse(
            exc.message + "\n", status=403, content_type="text/plain; charset=utf-8"
        )
    return HttpResponse(body, status=403)
