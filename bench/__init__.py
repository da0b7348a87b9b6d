"""Benchmarks for django-sessionkit (not part of the test suite): run ``bash bench/run``."""
