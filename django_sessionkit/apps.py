from __future__ import annotations

from django.apps import AppConfig


class SessionkitConfig(AppConfig):
    name = "django_sessionkit"
    verbose_name = "Sessions (sessionkit)"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django_sessionkit import audit, checks

        # Before any server is built: Django's SessionMiddleware in front of this engine
        # would take a bare session_key from a cookie and never sign one.
        checks.refuse_django_middleware()
        # The audit trail's receivers, only while SESSIONKIT["KEEP_ENDED"] > 0.
        audit.sync()
