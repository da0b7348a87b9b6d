"""Django's own session-engine contract (``sessions_tests.tests.SessionTestsMixin``), held
against our engine the way Django holds each of its backends to it."""

from django.test import TestCase
from sessions_tests.tests import SessionTestsMixin

from django_sessionkit.engine import SessionStore


class SessionkitSessionTests(SessionTestsMixin, TestCase):
    backend = SessionStore
