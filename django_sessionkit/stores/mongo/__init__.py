"""The MongoDB stores (``pip install 'django-sessionkit[mongo]'``), on pymongo.

* :class:`MongoStore` (``store.py``): sessions in a collection, one document per session,
  keyed by the id's SHA-256 (``layout.py``: the document's fields and values).
* :class:`ExpressMongoStore` (``express.py``): connect-mongo's layout, for
  ``COMPAT = "express"``.
* ``collection.py``: what both share (running operations on the sync or the async client,
  indexes, auto-removal); ``connection.py``: their options, checks and clients.
"""

try:
    import pymongo  # noqa: F401
except ImportError as exc:  # the system check reports this message (sessionkit.E017)
    raise ImportError(
        "the MongoDB stores need pymongo, which is not installed: "
        "pip install 'django-sessionkit[mongo]'"
    ) from exc

from django_sessionkit.stores.mongo.express import ExpressMongoStore
from django_sessionkit.stores.mongo.store import MongoStore

__all__ = ["ExpressMongoStore", "MongoStore"]
