"""Django's test-suite settings (``test_sqlite``: SQLite, ``USE_TZ = False``) with our engine."""

from test_sqlite import *  # noqa: F403

SESSION_ENGINE = "django_sessionkit.engine"
TEST_RUNNER = "sessionkit_runner.SessionkitRunner"
