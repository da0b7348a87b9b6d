"""``path("account/sessions/", include("django_sessionkit.urls"))``."""

from __future__ import annotations

from django.urls import path

from django_sessionkit import views

app_name = "sessionkit"

urlpatterns = [
    path("", views.session_list, name="sessions"),
    path("end/", views.end_session, name="end"),
    path("end-others/", views.end_others, name="end_others"),
]
