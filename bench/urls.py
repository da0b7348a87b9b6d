from django.conf import settings
from django.contrib import admin
from django.urls import path

from bench import soak_views, views

urlpatterns = [
    path("untouched/", views.untouched),
    path("first/", views.first),
    path("read/", views.read),
    path("write/", views.write),
    path("login/", views.bench_login),
]
if settings.MIDDLEWARE:  # views that need a session
    urlpatterns += [
        path("incr/", views.incr),
        path("set/<str:key>/", views.set_key),
        path("show/", views.show),
        path("prime/", views.prime),
        path("admin/", admin.site.urls),
        # bash bench/soak (bench/soak_views.py)
        path("soak/login/", soak_views.soak_login),
        path("soak/incr/", soak_views.soak_incr),
        path("soak/whoami/", soak_views.soak_whoami),
        path("soak/logout/", soak_views.soak_logout),
        path("soak/revoke/", soak_views.soak_revoke),
    ]
