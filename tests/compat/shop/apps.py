from __future__ import annotations

from django.apps import AppConfig


class ShopConfig(AppConfig):
    """A shop's cart keyed by ``session_key`` for anonymous visitors, as many projects have."""

    name = "tests.compat.shop"
    label = "compat_shop"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in

        from tests.compat.shop.models import merge_cart_at_login

        user_logged_in.connect(merge_cart_at_login, dispatch_uid="compat_shop_merge_cart")
