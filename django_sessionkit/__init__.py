"""django-sessionkit: a Django session engine with express-session's options and behaviour."""

__version__ = "0.1.0"
