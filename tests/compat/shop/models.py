"""A cart the way shops write it: rows keyed by ``session_key`` until the visitor signs in."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models, transaction
from django.http import HttpRequest

#: Where the anonymous visitor's key is remembered: login() gives the session a new key
#: (cycle_key) before user_logged_in is sent, so the handler cannot ask for the old one.
CART_KEY = "cart_session_key"


class CartItem(models.Model):
    session_key = models.CharField(max_length=40, blank=True, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE
    )
    product = models.CharField(max_length=50)
    quantity = models.PositiveIntegerField(default=1)

    def __str__(self) -> str:
        return f"{self.quantity} x {self.product}"


def add_to_cart(request: HttpRequest, product: str) -> CartItem:
    """Add one ``product`` to the visitor's cart (the user's once signed in)."""
    if request.user.is_authenticated:
        lookup: dict[str, Any] = {"user": request.user}
    else:
        if request.session.session_key is None:
            request.session.save()  # the usual way to get a key for a new visitor
        key = request.session.session_key
        assert key is not None
        request.session[CART_KEY] = key
        lookup = {"session_key": key, "user": None}
    with transaction.atomic():
        item, created = CartItem.objects.select_for_update().get_or_create(
            product=product, defaults={"quantity": 1}, **lookup
        )
        if not created:
            item.quantity += 1
            item.save(update_fields=["quantity"])
    return item


def merge_cart_at_login(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    """``user_logged_in``: the anonymous cart's rows join the user's cart."""
    if request is None or not hasattr(request, "session"):
        return
    key = request.session.pop(CART_KEY, None)
    if not key:
        return
    with transaction.atomic():
        for item in CartItem.objects.select_for_update().filter(session_key=key, user=None):
            mine = CartItem.objects.filter(user=user, product=item.product).first()
            if mine is None:
                item.user, item.session_key = user, ""
                item.save(update_fields=["user", "session_key"])
            else:
                mine.quantity += item.quantity
                mine.save(update_fields=["quantity"])
                item.delete()
