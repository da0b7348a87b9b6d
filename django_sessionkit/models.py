"""The database table behind :class:`~django_sessionkit.stores.database.DatabaseStore`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone


class AwareDateTimeField(models.DateTimeField):  # type: ignore[type-arg]
    """A ``DateTimeField`` that gives and takes aware times whatever ``USE_TZ`` says.

    Under ``USE_TZ = False`` Django keeps naive times in the default time zone, and the
    SQLite and MySQL backends refuse aware ones: an aware value is turned into that
    naive local time on the way in, and a naive one read back is made aware again.
    The column is an ordinary ``DateTimeField`` (migrations see no difference).
    """

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        if isinstance(value, datetime) and not settings.USE_TZ and timezone.is_aware(value):
            value = timezone.make_naive(value, timezone.get_default_timezone())
        return value

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        if isinstance(value, datetime) and timezone.is_naive(value):
            value = timezone.make_aware(value, timezone.get_default_timezone())
        return value

    def deconstruct(self) -> Any:
        name, _path, args, kwargs = super().deconstruct()
        return name, "django.db.models.DateTimeField", args, kwargs


class Session(models.Model):
    """One session. ``key`` is the SHA-256 of the cookie's id, never the id itself."""

    key = models.CharField("key (hash of the id)", max_length=64, primary_key=True)
    data = models.TextField("data (JSON)")
    version = models.PositiveBigIntegerField(default=1)
    expires_at = AwareDateTimeField(db_index=True)
    # NULL, not "", for anonymous sessions: the index then holds only signed-in ones.
    user_id = models.CharField(max_length=64, null=True, blank=True, db_index=True)  # noqa: DJ001
    ip = models.GenericIPAddressField("IP address", null=True, blank=True)
    user_agent = models.CharField(max_length=1024, blank=True, default="")
    created_at = AwareDateTimeField()
    last_seen = AwareDateTimeField()

    class Meta:
        verbose_name = "session"
        verbose_name_plural = "sessions"
        # Store.list: each filter walks one index in its order (most recently seen first,
        # then key), so a page costs the same at any depth and on any number of rows.
        indexes = [
            models.Index(fields=["-last_seen"], name="sessionkit_last_seen"),
            models.Index(
                fields=["-last_seen", "key"],
                name="sessionkit_seen_signed_in",
                condition=models.Q(user_id__isnull=False),
            ),
            models.Index(
                fields=["-last_seen", "key"],
                name="sessionkit_seen_anonymous",
                condition=models.Q(user_id__isnull=True),
            ),
            models.Index(fields=["ip", "-last_seen", "key"], name="sessionkit_ip_seen"),
        ]

    def __str__(self) -> str:
        return self.key[:12]


class EndedSession(models.Model):
    """A session that ended, kept for ``SESSIONKIT["KEEP_ENDED"]`` seconds (the audit trail;
    see :mod:`django_sessionkit.audit`). Written in the database of the database store,
    or ``"default"`` with any other store."""

    # db_index: on PostgreSQL Django adds the pattern index a prefix (the admin's ref) needs.
    key = models.CharField("key (hash of the id)", max_length=64, db_index=True)
    # NULL for an anonymous session, as in Session.
    user_id = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001
    started = models.CharField("how it started", max_length=16, blank=True, default="")
    created_at = AwareDateTimeField(null=True, blank=True)
    last_seen = AwareDateTimeField(null=True, blank=True)
    ip = models.GenericIPAddressField("IP address", null=True, blank=True)
    user_agent = models.CharField(max_length=1024, blank=True, default="")
    ended_at = AwareDateTimeField()
    reason = models.CharField(max_length=32)
    by = models.CharField(max_length=16, blank=True, default="")

    class Meta:
        verbose_name = "ended session"
        verbose_name_plural = "ended sessions"
        indexes = [
            # listsessions --ended and the purge (newest first; older than KEEP_ENDED)
            models.Index(fields=["-ended_at", "-id"], name="sessionkit_ended_at"),
            # a user's ended sessions (the user page, --user)
            models.Index(fields=["user_id", "-ended_at", "-id"], name="sessionkit_ended_user"),
        ]

    def __str__(self) -> str:
        return self.key[:12]

    @property
    def ref(self) -> str:
        """The admin's name for it: the first 12 hex digits of the key's hash."""
        return self.key[:12]

    @property
    def how_started(self) -> str:
        from django_sessionkit.audit import started_label

        return started_label(self.started)

    @property
    def how_ended(self) -> str:
        from django_sessionkit.audit import ended_label

        return ended_label(self.reason, self.by)

    @property
    def agent(self) -> Any:
        """The user agent described (device, browser, operating system)."""
        from django_sessionkit.useragent import describe

        return describe(self.user_agent)
