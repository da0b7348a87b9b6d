"""``manage.py demouser``: create (or reset) the demo user and say how to sign in."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from django_sessionkit.stores import get_store

USERNAME = "demo"
PASSWORD = "demo"


class Command(BaseCommand):
    help = "Creates the demo user (a superuser, so it can open /admin/) or resets its password."

    def handle(self, *args: Any, **options: Any) -> None:
        user, _ = get_user_model().objects.get_or_create(username=USERNAME)
        user.is_staff = user.is_superuser = True
        user.set_password(PASSWORD)
        user.save()
        self.stdout.write(f"Demo user: {USERNAME}  password: {PASSWORD}")
        self.stdout.write(f"Sessions are kept in: {get_store().describe()}")
