from __future__ import annotations

from django.apps import AppConfig


class SessionkitConfig(AppConfig):
    name = "django_sessionkit"
    verbose_name = "Sessions (sessionkit)"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django_sessionkit import checks  # noqa: F401  (registers the system checks)
