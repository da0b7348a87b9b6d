from django.contrib import admin
from django.urls import include, path

from tests.testapp import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("account/sessions/", include("django_sessionkit.urls")),
    path("plain/", views.plain),
    path("read/", views.read),
    path("count/", views.count),
    path("key/", views.session_key),
    path("incr/", views.incr),
    path("set/<str:key>/<str:value>/", views.set_value),
    path("nested/", views.nested_append),
    path("login/<str:username>/", views.login_view),
    path("login-form/<str:username>/", views.login_form),
    path("login-fail/<str:username>/", views.login_then_fail),
    path("logout/", views.logout_view),
    path("whoami/", views.whoami),
    path("flush/", views.flush),
    path("regenerate/", views.regenerate),
    path("unset/", views.unset),
    path("error/", views.server_error),
    path("expiry/<int:seconds>/", views.set_expiry),
    path("message/", views.add_message),
    path("messages/", views.read_messages),
    path("password/<str:username>/", views.change_password),
    path("async/count/", views.async_count),
    path("async/login/<str:username>/", views.async_login),
    path("async/read/", views.async_read),
    path("csrf/", views.csrf_form),
]
