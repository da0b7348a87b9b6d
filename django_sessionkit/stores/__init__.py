"""Store lookup: the configured ``SESSIONKIT["STORE"]``, built once per configuration."""

from __future__ import annotations

import threading
from typing import Any

from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from django_sessionkit.conf import sessionkit_settings
from django_sessionkit.stores.base import Store

__all__ = ["Store", "build_store", "get_store"]

_stores: dict[str, Store] = {}
_lock = threading.Lock()
#: The settings' STORE dict last seen and its store: the settings keep returning the same
#: dict until a setting changes, so the common case is one identity check per call.
_current: tuple[dict[str, Any], Store] | None = None


def build_store(config: dict[str, Any]) -> Store:
    """A new store from a ``{"BACKEND", "LOCATION", "OPTIONS"}`` dict."""
    backend = import_string(config["BACKEND"])
    if not (isinstance(backend, type) and issubclass(backend, Store)):
        raise TypeError(f"{config['BACKEND']} is not a django_sessionkit Store subclass")
    return backend(config.get("LOCATION"), config.get("OPTIONS") or {})


def get_store() -> Store:
    """The store for the current settings, shared by every request of this process."""
    global _current
    config = sessionkit_settings.STORE
    current = _current
    if current is not None and current[0] is config:
        return current[1]
    cache_key = repr(sorted(config.items()))
    store = _stores.get(cache_key)
    if store is None:
        with _lock:
            store = _stores.get(cache_key)
            if store is None:
                store = _stores[cache_key] = build_store(config)
    _current = (config, store)
    return store


@receiver(setting_changed)
def _forget_stores(*, setting: str, **kwargs: Any) -> None:
    global _current
    if setting == "SESSIONKIT":
        with _lock:
            _stores.clear()
            _current = None
