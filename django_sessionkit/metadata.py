"""What a session records about the browser that holds it: IP address and user agent."""

from __future__ import annotations

import functools
import ipaddress

from django.http import HttpRequest

from django_sessionkit.conf import Settings, sessionkit_settings


def client_ip(request: HttpRequest, conf: Settings = sessionkit_settings) -> str | None:
    """The client's address.

    ``REMOTE_ADDR`` unless ``CLIENT_IP_HEADER`` names a header that trusted
    proxies append to (``X-Forwarded-For`` style); then the entry that the
    outermost of ``TRUSTED_PROXIES`` proxies saw, counted from the right, so
    a client cannot choose its address by sending the header itself.
    """
    address = request.META.get("REMOTE_ADDR")
    header = conf.CLIENT_IP_HEADER
    if header:
        hops = [hop.strip() for hop in request.META.get(header, "").split(",") if hop.strip()]
        if hops:
            address = hops[-min(conf.TRUSTED_PROXIES, len(hops))]
    return _valid_ip(address)


@functools.lru_cache(
    maxsize=1024
)  # parsing an address costs more than the rest of a save's metadata
def _valid_ip(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def user_agent(request: HttpRequest, conf: Settings = sessionkit_settings) -> str:
    return str(request.META.get("HTTP_USER_AGENT", ""))[: conf.USER_AGENT_MAX_LENGTH]
