"""``sessionkit_settings_sqlite`` with sessions in Redis.

The server is the one ``python -m tests.django_suite`` started, named by
``SESSIONKIT_DJANGO_SUITE_REDIS_URL`` (never the machine's own on 6379).
"""

import os

from sessionkit_settings_sqlite import *  # noqa: F403

SESSIONKIT = {
    "STORE": {
        "BACKEND": "django_sessionkit.stores.redis.RedisStore",
        "LOCATION": os.environ["SESSIONKIT_DJANGO_SUITE_REDIS_URL"],
    }
}
