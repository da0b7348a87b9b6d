"""Django's own test suite, run against our engine: ``python -m tests.django_suite``."""
