from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from two_factor.urls import urlpatterns as two_factor_urls

from tests.compat import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),  # allauth: account, mfa (2fa/), sessions/
    path("", include(two_factor_urls)),  # two-factor-auth: account/login/, account/two_factor/
    path("auth/", include("django.contrib.auth.urls")),  # Django's own auth views
    path("hijack/", include("hijack.urls")),
    path("api/echo/", views.EchoAPI.as_view()),
    path("whoami/", views.whoami, name="whoami"),
    path("page/", views.page),
    path("session/", views.session_data),
    path("session/set/<str:key>/<str:value>/", views.set_value),
    path("session/key/", views.session_key),
    path("csrf-token/", views.csrf_token),
    path("form/", views.protected_form),
    path("messages/add/", views.add_message),
    path("messages/show/", views.show_messages, name="show-messages"),
    path("shop/add/<str:product>/", views.shop_add),
    path("shop/cart/", views.shop_cart),
    # Not debug_toolbar_urls(): it adds nothing while DEBUG is False, as it is at import time
    # here; the toolbar test turns DEBUG on.
    path("__debug__/", include("debug_toolbar.urls")),
]
