"""The database table behind :class:`~django_sessionkit.stores.database.DatabaseStore`."""

from __future__ import annotations

from django.db import models


class Session(models.Model):
    """One session. ``key`` is the SHA-256 of the cookie's id, never the id itself."""

    key = models.CharField("key (hash of the id)", max_length=64, primary_key=True)
    data = models.TextField("data (JSON)")
    version = models.PositiveBigIntegerField(default=1)
    expires_at = models.DateTimeField(db_index=True)
    # NULL, not "", for anonymous sessions: the index then holds only signed-in ones.
    user_id = models.CharField(max_length=64, null=True, blank=True, db_index=True)  # noqa: DJ001
    ip = models.GenericIPAddressField("IP address", null=True, blank=True)
    user_agent = models.CharField(max_length=1024, blank=True, default="")
    created_at = models.DateTimeField()
    last_seen = models.DateTimeField()

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
