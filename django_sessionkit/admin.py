"""The "Sessions" admin: live sessions from the configured store, not from a table.

The model is registered for its permissions and its entry on the admin index;
every page reads the store through :mod:`django_sessionkit.admin_views`, so the
same pages work on DatabaseStore and RedisStore.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path

from django_sessionkit import admin_views
from django_sessionkit.models import Session

if TYPE_CHECKING:
    _ModelAdmin = admin.ModelAdmin[Session]
else:  # ModelAdmin is generic for the type checker only
    _ModelAdmin = admin.ModelAdmin


@admin.register(Session)
class SessionAdmin(_ModelAdmin):
    """View permission to see sessions, delete permission to end them; no adding or editing."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Session | None = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        name = f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            path("", wrap(self.changelist_view), name=f"{name}_changelist"),
            path("revoke/", wrap(self.revoke_view), name=f"{name}_revoke"),
            path("<str:object_id>/", wrap(self.change_view), name=f"{name}_change"),
        ]

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        return admin_views.changelist(self, request)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        return admin_views.detail(self, request, object_id)

    def revoke_view(self, request: HttpRequest) -> HttpResponse:
        return admin_views.revoke(self, request)
