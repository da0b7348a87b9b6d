"""URLs of the example site."""

from __future__ import annotations

from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path

from example_project.tutorial import views

urlpatterns: list[URLPattern | URLResolver] = [
    path("", views.counter, name="counter"),
    # Django's login() calls session.cycle_key(): a new id, the old one deleted.
    # With MAX_SESSIONS_POLICY = "refuse", a login past the limit shows its message here.
    path("login/", views.LoginView.as_view(template_name="tutorial/login.html"), name="login"),
    path("logout/", views.logout_view, name="logout"),
    path("whoami/", views.whoami, name="whoami"),
    path("expiry/", views.expiry, name="expiry"),
    path("admin/", admin.site.urls),
]

if views.HAS_DEVICES_PAGE:  # "where you're signed in", from django_sessionkit itself
    urlpatterns.append(path("sessions/", include("django_sessionkit.urls")))
