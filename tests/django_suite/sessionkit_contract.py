"""Django's own tests that take the session engine as a parameter, given ours.

Not one of Django's test apps: these subclass Django's test classes the way Django
does for each of its own backends. ``sessionkit_runtests.py`` installs the test apps
they come from (``sessions_tests``, ``csrf_tests``) whenever this module runs.
"""

from typing import Any

import csrf_tests.tests as csrf
from django.test import TestCase
from sessions_tests.tests import SessionTestsMixin

from django_sessionkit.engine import SessionStore


class SessionkitSessionTests(SessionTestsMixin, TestCase):
    """The contract Django holds each of its engines to (``backend = ...``)."""

    backend = SessionStore


class RecordingSessionStore(SessionStore):
    """csrf_tests' ``TestingSessionStore`` (there over Django's cache engine), over ours."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._cookies_set: list[Any] = []

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        self._cookies_set.append(value)


class SessionkitCsrfUseSessionsTests(csrf.CsrfViewMiddlewareUseSessionsTests):
    """CSRF_USE_SESSIONS, with the token kept in a session of our engine."""

    def _get_request(
        self, method: str | None = None, cookie: str | None = None, request_class: Any = None
    ) -> Any:
        request = super()._get_request(method, None, request_class)
        request.session = RecordingSessionStore()
        if cookie is not None:
            self._set_csrf_cookie(request, cookie)
        return request
