"""Device, browser and OS of a session, parsed from its user agent by ``ua-parser``.

ua-parser (uap-python) carries the community-kept uap-core rules; we only
shape its answer for display. Parsing is cached per distinct user agent.
"""

from __future__ import annotations

import dataclasses
import functools

import ua_parser

__all__ = ["Agent", "describe"]

UNKNOWN = "Unknown"


@dataclasses.dataclass(frozen=True)
class Agent:
    """What a user agent says about the browser: each part is a display string."""

    browser: str
    os: str
    device: str

    def __str__(self) -> str:
        return f"{self.browser} on {self.os}"


def _version(*parts: str | None) -> str:
    numbers = []
    for part in parts:
        if not part:
            break
        numbers.append(part)
    return ".".join(numbers)


def _named(family: str | None, version: str = "") -> str:
    if not family or family == "Other":
        return UNKNOWN
    return f"{family} {version}".strip()


@functools.lru_cache(maxsize=2048)
def describe(user_agent: str) -> Agent:
    """Browser (with major version), OS (with version) and device of ``user_agent``."""
    if not user_agent:
        return Agent(UNKNOWN, UNKNOWN, UNKNOWN)
    result = ua_parser.parse(user_agent)
    ua, os, device = result.user_agent, result.os, result.device
    browser = _named(ua.family, _version(ua.major)) if ua else UNKNOWN
    system = _named(os.family, _version(os.major, os.minor)) if os else UNKNOWN
    if device and device.family and device.family != "Other":
        kind = device.family
    elif os and os.family in {"Windows", "Mac OS X", "macOS", "Linux", "Ubuntu", "Chrome OS"}:
        kind = "Computer"
    else:
        kind = UNKNOWN
    return Agent(browser=browser, os=system, device=kind)
