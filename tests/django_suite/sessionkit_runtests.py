"""Django's own ``tests/runtests.py``, with django_sessionkit swapped in.

Run by ``python -m tests.django_suite`` (see docs/django-test-suite.md) as
``python tests/django_suite/sessionkit_runtests.py DJANGO_TESTS_DIR [runtests.py arguments]``.

runtests.py overwrites ``INSTALLED_APPS`` and ``MIDDLEWARE`` with its module-level
``ALWAYS_INSTALLED_APPS`` and ``ALWAYS_MIDDLEWARE`` during set-up, so settings alone
cannot swap the middleware. This script imports runtests as a module, adds
``django_sessionkit`` to the first list, names our middleware in the second, and
then runs runtests' own ``if __name__ == "__main__":`` block in that module.

Right after ``django.setup()`` it also makes the module attribute
``django.contrib.sessions.middleware.SessionMiddleware`` our class, so the many tests
that name Django's middleware, through ``override_settings(MIDDLEWARE=[...])`` or
``from ... import SessionMiddleware``, get ours. The settings module (``--settings``)
sets ``SESSION_ENGINE`` and the store.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

DJANGO_MIDDLEWARE = "django.contrib.sessions.middleware.SessionMiddleware"
OUR_MIDDLEWARE = "django_sessionkit.middleware.SessionMiddleware"
OUR_APP = "django_sessionkit"
#: Our module of Django's parametrised tests, and the test apps whose classes it subclasses.
CONTRACT = "sessionkit_contract"
CONTRACT_APPS = ("sessions_tests", "csrf_tests")


def swap_middleware() -> None:
    """``django.contrib.sessions.middleware.SessionMiddleware`` is ours from now on.

    Django's own class stays importable under another name only by code that imported it
    before this swap; building one fails loudly, so no test silently runs Django's.
    """
    import django.contrib.sessions.middleware as django_middleware

    from django_sessionkit.middleware import SessionMiddleware

    original = django_middleware.SessionMiddleware
    if original is SessionMiddleware:
        return
    django_middleware.SessionMiddleware = SessionMiddleware  # type: ignore[misc]
    original_init = original.__init__

    def refuse_django_middleware(self: Any, *args: Any, **kwargs: Any) -> None:
        if type(self) is original:
            raise RuntimeError(
                "Django's own SessionMiddleware was built while Django's test suite runs "
                "against django_sessionkit: it was imported before the swap"
            )
        original_init(self, *args, **kwargs)

    original.__init__ = refuse_django_middleware  # type: ignore[method-assign]


def patch_django_setup() -> None:
    import django

    original = django.setup

    def setup(*args: Any, **kwargs: Any) -> None:
        original(*args, **kwargs)
        swap_middleware()

    django.setup = setup


def patch_runtests(runtests: ModuleType) -> None:
    if OUR_APP not in runtests.ALWAYS_INSTALLED_APPS:
        runtests.ALWAYS_INSTALLED_APPS.append(OUR_APP)
    runtests.ALWAYS_MIDDLEWARE[:] = [
        OUR_MIDDLEWARE if name == DJANGO_MIDDLEWARE else name for name in runtests.ALWAYS_MIDDLEWARE
    ]
    find_modules = runtests.get_filtered_test_modules

    def get_filtered_test_modules(*args: Any, **kwargs: Any) -> Iterator[str]:
        yield from find_modules(*args, **kwargs)
        labels = kwargs.get("test_labels") or (args[3] if len(args) > 3 else None) or []
        if any(label.split(".")[0] == CONTRACT for label in labels):
            yield from CONTRACT_APPS  # installed as apps even when only the contract runs

    runtests.get_filtered_test_modules = get_filtered_test_modules


def main_block(path: Path) -> ast.Module:
    """runtests.py's ``if __name__ == "__main__":`` body, as a module of its own."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in tree.body:
        if (
            isinstance(node, ast.If)
            and isinstance(node.test, ast.Compare)
            and isinstance(node.test.left, ast.Name)
            and node.test.left.id == "__name__"
        ):
            return ast.Module(body=node.body, type_ignores=[])
    raise SystemExit(f"{path} has no 'if __name__ == \"__main__\":' block")


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    tests_dir = Path(sys.argv[1]).resolve()
    runtests_path = tests_dir / "runtests.py"
    if not runtests_path.is_file():
        raise SystemExit(f"no {runtests_path}: pass the tests/ folder of Django's sdist")
    # runtests.py expects its own folder first on sys.path; this folder (settings, runner) next.
    sys.path[:1] = [str(tests_dir), str(Path(__file__).resolve().parent)]
    sys.argv = [str(runtests_path), *sys.argv[2:]]

    import runtests

    patch_runtests(runtests)
    patch_django_setup()
    code = compile(main_block(runtests_path), str(runtests_path), "exec")
    exec(code, runtests.__dict__)


if __name__ == "__main__":
    main()
