"""URLs of the example site."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.views import LoginView
from django.urls import URLPattern, URLResolver, include, path

from example_project.tutorial import views

urlpatterns: list[URLPattern | URLResolver] = [
    path("", views.counter, name="counter"),
    # Django's login() calls session.cycle_key(): a new id, the old one deleted.
    path("login/", LoginView.as_view(template_name="tutorial/login.html"), name="login"),
    path("logout/", views.logout_view, name="logout"),
    path("whoami/", views.whoami, name="whoami"),
    path("expiry/", views.expiry, name="expiry"),
    path("admin/", admin.site.urls),
]

if views.HAS_DEVICES_PAGE:  # "where you're signed in", from django_sessionkit itself
    urlpatterns.append(path("sessions/", include("django_sessionkit.urls")))
