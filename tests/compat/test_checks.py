"""Every installed app's system checks pass beside the engine and its middleware."""

from __future__ import annotations

from django.core.management import call_command


def test_system_checks_pass_with_every_app_installed() -> None:
    # Fails on any warning: allauth's middleware, admin.E410 (a SessionMiddleware),
    # axes' backend and middleware, the toolbar's, hijack's and our own checks.
    call_command("check", fail_level="WARNING", verbosity=0)
