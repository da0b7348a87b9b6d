"""Small views the compatibility flows drive, besides the apps' own."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import get_token
from django.shortcuts import redirect, render
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from tests.compat.shop.models import CartItem, add_to_cart


def whoami(request: HttpRequest) -> JsonResponse:
    user: Any = request.user
    signed_in = user.is_authenticated
    return JsonResponse(
        {
            "user": user.get_username() if signed_in else None,
            "verified": bool(signed_in and user.is_verified()),  # django-otp's middleware
            "hijacked": bool(getattr(user, "is_hijacked", False)),
        }
    )


def page(request: HttpRequest) -> HttpResponse:
    """An HTML page (the toolbar and hijack's banner insert themselves before </body>)."""
    return render(request, "compat/page.html", {"user": request.user})


def set_value(request: HttpRequest, key: str, value: str) -> JsonResponse:
    request.session[key] = value
    return JsonResponse({key: value})


def session_data(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"data": dict(request.session.items())})


def session_key(request: HttpRequest) -> JsonResponse:
    """What a view sees as ``request.session.session_key`` (what apps copy into tables)."""
    return JsonResponse({"session_key": request.session.session_key})


def csrf_token(request: HttpRequest) -> HttpResponse:
    return HttpResponse(get_token(request), content_type="text/plain")


def protected_form(request: HttpRequest) -> HttpResponse:
    """GET: a form with the CSRF token; POST (CsrfViewMiddleware has checked it): "accepted"."""
    if request.method == "POST":
        return HttpResponse("accepted")
    return render(request, "compat/form.html")


def add_message(request: HttpRequest) -> HttpResponse:
    messages.success(request, "Saved, and kept in the session until shown.")
    return redirect("show-messages")


def show_messages(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"messages": [str(m) for m in messages.get_messages(request)]})


def shop_add(request: HttpRequest, product: str) -> JsonResponse:
    item = add_to_cart(request, product)
    return JsonResponse({"product": item.product, "quantity": item.quantity})


def shop_cart(request: HttpRequest) -> JsonResponse:
    if request.user.is_authenticated:
        rows = CartItem.objects.filter(user=request.user)
    else:
        rows = CartItem.objects.filter(session_key=request.session.session_key or "", user=None)
    return JsonResponse({item.product: item.quantity for item in rows.order_by("product")})


class EchoAPI(APIView):
    """REST framework with SessionAuthentication (CSRF enforced) and IsAuthenticated."""

    def get(self, request: Request) -> Response:
        return Response({"user": request.user.get_username()})

    def post(self, request: Request) -> Response:
        request.session["api_posts"] = request.session.get("api_posts", 0) + 1
        return Response({"user": request.user.get_username(), "echo": request.data})
