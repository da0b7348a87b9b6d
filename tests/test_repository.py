"""The repository itself: no package registry's host name in any file.

Installs go through the ordinary clients (apt, pip, npm) as the machine configures them;
a host name written into a script, a doc or a lock file would bypass that. tests/run and
docs/stores-redis.md take the Debian mirror from the machine's own apt sources, and
package-lock.json carries no "resolved" URLs (tests/express_app/.npmrc keeps them out).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# Written with escapes, so that this file does not match itself.
REGISTRY_HOSTS = re.compile(
    rb"deb\.debian\.org|pypi\.org|files\.pythonhosted|registry\.npmjs|npmjs\.(org|com)",
    re.IGNORECASE,
)
SKIPPED_DIRS = {".git", ".venv", "node_modules", ".tox", ".mypy_cache", ".ruff_cache", "_build"}


def repository_files() -> list[Path]:
    """Every file git tracks or would add (not ignored); the whole tree without git."""
    if shutil.which("git") and (REPO / ".git").exists():
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO,
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout
        return [REPO / name for name in listed.decode().split("\0") if name]
    return [
        path
        for path in REPO.rglob("*")
        if path.is_file() and not SKIPPED_DIRS.intersection(path.relative_to(REPO).parts)
    ]


def test_no_package_registry_host_name_in_the_repository() -> None:
    files = repository_files()
    assert any(path.name == "package-lock.json" for path in files)
    found = []
    for path in files:
        if not path.is_file():  # deleted in the work tree, not yet in git
            continue
        for number, line in enumerate(path.read_bytes().splitlines(), start=1):
            if match := REGISTRY_HOSTS.search(line):
                found.append(f"{path.relative_to(REPO)}:{number}: {match.group().decode()}")
    assert found == [], "a package registry's host name is back:\n" + "\n".join(found)


def test_the_npm_lock_file_names_no_registry() -> None:
    lock = json.loads((REPO / "tests" / "express_app" / "package-lock.json").read_text())
    resolved = [name for name, entry in lock["packages"].items() if "resolved" in entry]
    assert resolved == [], f"package-lock.json has 'resolved' URLs again: {resolved[:5]}"
    assert all("integrity" in entry for name, entry in lock["packages"].items() if name)


@pytest.mark.parametrize(
    "line",
    [  # each split in two, so that this file does not match itself
        b"URIs: http://deb.debian" + b".org/debian",
        b"pip install --index-url https://PyPI" + b".org/simple x",
        b'"resolved": "https://registry.npm' + b'js.org/express/-/express-5.3.0.tgz"',
        b"https://files" + b".pythonhosted.org/packages/",
        b"see www.npmjs" + b".com/package/x",
    ],
)
def test_the_pattern_catches_each_host(line: bytes) -> None:
    assert REGISTRY_HOSTS.search(line)
