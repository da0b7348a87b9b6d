"""Sphinx configuration: Markdown pages through MyST. Build with warnings as errors:

.venv/bin/sphinx-build -W -b html docs docs/_build/html
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

project = "django-sessionkit"
author = "django-sessionkit contributors"
copyright = "2026, django-sessionkit contributors"
_init = (ROOT / "django_sessionkit" / "__init__.py").read_text()
release = re.findall(r'^__version__ = "([^"]+)"', _init, re.M)[0]
version = release

extensions = ["myst_parser"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]

myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence", "deflist"]

html_theme = "alabaster"
html_title = f"django-sessionkit {release}"
