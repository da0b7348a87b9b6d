"""Run Django's own test suite against django_sessionkit and judge the outcome.

``python -m tests.django_suite`` (``bash tests/run`` does this after pytest):

1. finds the ``tests/`` folder of the installed Django's sdist: downloaded once with
   ``pip download`` into ``.cache/django-suite/`` (git-ignored), or named by
   ``SESSIONKIT_DJANGO_TESTS``;
2. runs ``runtests.py`` for the apps in :data:`APPS` through ``sessionkit_runtests.py``
   in each configuration: ``sqlite`` (the suite's own ``test_sqlite``, ``USE_TZ = False``)
   and ``redis`` (the same with ``SESSIONKIT["STORE"]`` on a redis-server started here,
   on a spare port, and stopped by its PID);
3. prints, per configuration and app: ran / passed / skipped / failed / excluded /
   differences, and exits 1 when a test fails that ``differences.txt`` does not list.

Under ``CI=true`` a missing sdist or Redis fails the run; otherwise it is skipped
with a message that says how to fix it. See docs/django-test-suite.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from tests.django_suite import sessionkit_lists as lists

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
CACHE = REPO / ".cache" / "django-suite"
ARTIFACTS = REPO / "tests" / "artifacts" / "django-suite"
WRAPPER = HERE / "sessionkit_runtests.py"

#: Django's test apps that exercise sessions.
APPS = (
    "sessions_tests",
    "auth_tests",
    "messages_tests",
    "csrf_tests",
    "test_client",
    "test_client_regress",
    "middleware",
    "admin_views",
    "admin_inlines",
    "admin_changelist",
    "admin_docs",
    "flatpages_tests",
    "async",
    "deprecation",
    # Not one of Django's apps: Django's tests that take the engine as a parameter
    # (SessionTestsMixin, CSRF_USE_SESSIONS), given ours.
    "sessionkit_contract",
)
SETTINGS = {
    "sqlite": "sessionkit_settings_sqlite",
    "redis": "sessionkit_settings_redis",
}
#: No single configuration may take longer than this (seconds).
RUN_TIMEOUT = int(os.environ.get("SESSIONKIT_DJANGO_SUITE_TIMEOUT", 15 * 60))
COLUMNS = ("ran", "passed", "skipped", "failed", "excluded", "differences")


class Unavailable(Exception):
    """Something the run needs is missing: skip locally, fail under CI."""


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def say(message: str = "") -> None:
    print(message, flush=True)


# --- Django's tests/ folder ---------------------------------------------------------


def django_version() -> str:
    import django

    return django.__version__


def django_tests_dir(version: str) -> Path:
    """The ``tests/`` folder of Django ``version``'s sdist, downloaded and unpacked once."""
    if named := os.environ.get("SESSIONKIT_DJANGO_TESTS"):
        path = Path(named)
        if not (path / "runtests.py").is_file():
            raise Unavailable(f"SESSIONKIT_DJANGO_TESTS={named} has no runtests.py.")
        return path
    target = CACHE / f"django-{version}" / "tests"
    if (target / "runtests.py").is_file():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    sdist = _find_sdist(version) or _download_sdist(version)
    _extract_tests(sdist, target)
    return target


def _find_sdist(version: str) -> Path | None:
    for name in (f"django-{version}.tar.gz", f"Django-{version}.tar.gz"):
        if (CACHE / name).is_file():
            return CACHE / name
    return None


def _download_sdist(version: str) -> Path:
    say(f"downloading the sdist of Django {version} (its tests/ folder) into {CACHE}")
    command = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "-q"]
    command += ["--no-deps", "--no-binary", ":all:", f"django=={version}", "-d", str(CACHE)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired as exc:
        raise Unavailable(f"pip download of Django {version}'s sdist timed out") from exc
    sdist = _find_sdist(version)
    if done.returncode != 0 or sdist is None:
        raise Unavailable(
            f"could not download the sdist of Django {version} "
            f"(pip download exited {done.returncode}):\n{done.stderr.strip()[-2000:]}\n"
            "Check the network and pip's index, or point SESSIONKIT_DJANGO_TESTS at the "
            f"tests/ folder of a Django {version} checkout."
        )
    return sdist


def _extract_tests(sdist: Path, target: Path) -> None:
    """Unpack only ``<top>/tests/`` of the sdist into ``target`` (atomically)."""
    staging = Path(tempfile.mkdtemp(prefix="unpack-", dir=CACHE))
    try:
        with tarfile.open(sdist) as archive:
            members = [m for m in archive.getmembers() if _tests_member(m.name)]
            if not members:
                raise Unavailable(f"{sdist.name} has no tests/ folder")
            if hasattr(tarfile, "data_filter"):
                archive.extractall(staging, members=members, filter="data")
            else:  # pragma: no cover - Python without PEP 706
                archive.extractall(staging, members=members)
        (unpacked,) = [p / "tests" for p in staging.iterdir()]
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(target, ignore_errors=True)
        unpacked.rename(target)
    except (OSError, tarfile.TarError, ValueError) as exc:
        raise Unavailable(f"could not unpack {sdist}: {exc}; delete it to download again") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _tests_member(name: str) -> bool:
    parts = name.split("/")
    return len(parts) >= 2 and parts[1] == "tests"


# --- Redis ---------------------------------------------------------------------------


@contextmanager
def redis_server() -> Iterator[str]:
    """Our own redis-server on a spare port (never 6379); stopped by its PID afterwards."""
    from tests.redis_servers import ServerError, Servers

    servers = Servers()
    try:
        try:
            url = servers.standalone().url
        except FileNotFoundError as exc:
            raise Unavailable(
                "redis-server is not installed: apt-get install redis-server "
                "(bash tests/run installs it when run as root)"
            ) from exc
        except ServerError as exc:
            raise Unavailable(f"could not start redis-server: {exc}") from exc
        yield url
    finally:
        servers.stop_all()


# --- running and judging --------------------------------------------------------------


@dataclass
class Outcome:
    """One configuration's run, judged against the two lists."""

    configuration: str
    counts: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    failures: dict[str, str] = field(default_factory=dict)  # test id -> detail
    differences: dict[str, str] = field(default_factory=dict)  # test id -> reason
    stale: list[str] = field(default_factory=list)  # listed differences that passed
    matched: set[int] = field(default_factory=set)  # line numbers of entries that matched
    matched_exclusions: set[int] = field(default_factory=set)
    error: str | None = None  # the run itself broke
    seconds: float = 0.0


def app_of(test_id: str) -> str:
    return test_id.split(".", 1)[0]


def run_configuration(
    configuration: str,
    tests_dir: Path,
    labels: list[str],
    parallel: int,
    extra: list[str],
    env_extra: dict[str, str],
) -> Outcome:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    results = ARTIFACTS / f"{configuration}.json"
    log = ARTIFACTS / f"{configuration}.log"
    results.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.update(env_extra)
    env["SESSIONKIT_DJANGO_SUITE_CONFIG"] = configuration
    env["SESSIONKIT_DJANGO_SUITE_RESULTS"] = str(results)
    command = [sys.executable, str(WRAPPER), str(tests_dir), "--noinput"]
    command += [f"--settings={SETTINGS[configuration]}", f"--parallel={parallel}", *extra, *labels]
    say(f"\n== Django's test suite, {configuration}: {' '.join(labels)}")
    say(f"   (output: {log.relative_to(REPO)})")
    outcome = Outcome(configuration)
    started = time.monotonic()
    with log.open("w") as out:
        returncode = run_with_timeout(command, out, env)
    outcome.seconds = time.monotonic() - started
    if returncode is None:
        outcome.error = f"timed out after {RUN_TIMEOUT} s"
        return outcome
    if not results.is_file():
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        outcome.error = f"runtests.py exited {returncode} without results:\n{tail}"
        return outcome
    judge(outcome, json.loads(results.read_text()))
    if returncode != 0 and not (outcome.failures or outcome.differences):
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        outcome.error = f"runtests.py exited {returncode} with no failing test:\n{tail}"
    return outcome


def run_with_timeout(command: list[str], out: IO[str], env: dict[str, str]) -> int | None:
    """Run ``command``; its exit status, or ``None`` when it ran out of time.

    runtests.py's parallel workers are its children: on a timeout the whole process group
    we started (and only it) is killed, so no worker outlives the run.
    """
    process = subprocess.Popen(
        command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )
    try:
        return process.wait(RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return None
    except BaseException:  # Ctrl-C: take runtests.py and its workers down too
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        process.wait()
        raise


def judge(outcome: Outcome, document: dict[str, object]) -> None:
    configuration = outcome.configuration
    exclusions = lists.read(lists.EXCLUDED)
    differences = lists.read(lists.DIFFERENCES)
    for test_id in document["excluded"]:  # type: ignore[attr-defined]
        outcome.counts[app_of(test_id)]["excluded"] += 1
        if entry := lists.find(exclusions, test_id, configuration):
            outcome.matched_exclusions.add(entry.line)
    results: dict[str, dict[str, str]] = document["outcomes"]  # type: ignore[assignment]
    for test_id, result in sorted(results.items()):
        counts = outcome.counts[app_of(test_id)]
        counts["ran"] += 1
        entry = lists.find(differences, test_id, configuration)
        if entry:
            outcome.matched.add(entry.line)
        if result["outcome"] == "failed":
            if entry:
                counts["differences"] += 1
                outcome.differences[test_id] = entry.reason
            else:
                counts["failed"] += 1
                outcome.failures[test_id] = result["detail"]
        else:
            counts[result["outcome"]] += 1
            if entry and result["outcome"] == "passed":
                outcome.stale.append(test_id)


def print_table(outcomes: list[Outcome]) -> None:
    width = max([len(app) for o in outcomes for app in o.counts] + [len("total")])
    header = f"{'configuration':<13}  {'app':<{width}}  " + "  ".join(f"{c:>11}" for c in COLUMNS)
    say("\n" + header)
    say("-" * len(header))
    for outcome in outcomes:
        if outcome.error is not None and not outcome.counts:
            say(f"{outcome.configuration:<13}  (did not run: see below)")
            continue
        total: Counter[str] = Counter()
        for app in sorted(outcome.counts):
            counts = outcome.counts[app]
            total.update(counts)
            row = "  ".join(f"{counts[c]:>11}" for c in COLUMNS)
            say(f"{outcome.configuration:<13}  {app:<{width}}  {row}")
        row = "  ".join(f"{total[c]:>11}" for c in COLUMNS)
        say(f"{outcome.configuration:<13}  {'total':<{width}}  {row}   ({outcome.seconds:.0f} s)")


def report(outcomes: list[Outcome], missing: list[str], full_run: bool) -> bool:
    """Print the table, the failures and notes; whether the run passed."""
    if outcomes:
        print_table(outcomes)
    ok = True
    for outcome in outcomes:
        if outcome.error is not None:
            ok = False
            say(f"\nFAILED: the {outcome.configuration} run broke: {outcome.error}")
        for test_id, detail in outcome.failures.items():
            ok = False
            say(f"\nFAILED [{outcome.configuration}] {test_id}")
            say("    " + "\n    ".join(detail.strip().splitlines()[-12:]))
        for test_id in outcome.stale:
            say(f"\nnote [{outcome.configuration}]: {test_id} is in differences.txt but passed")
    if full_run:
        ran = [o for o in outcomes if o.error is None]
        checks = ((lists.DIFFERENCES, "matched"), (lists.EXCLUDED, "matched_exclusions"))
        for path, attribute in checks:
            for entry in lists.read(path):
                relevant = [o for o in ran if o.configuration in entry.configurations]
                if relevant and not any(entry.line in getattr(o, attribute) for o in relevant):
                    say(f"note: {path.name}:{entry.line} {entry.test_id} matched no test")
    for what in missing:
        if in_ci():
            ok = False
            say(f"\nFAILED: {what} (CI=true: a missing part fails the run)")
        else:
            say(f"\nSKIPPED {what}")
    failed = sum(len(o.failures) for o in outcomes)
    broke = [o.configuration for o in outcomes if o.error is not None]
    verdict = []
    if failed:
        verdict.append(f"{failed} failing test(s) not listed in differences.txt")
    if broke:
        verdict.append(f"the {' and '.join(broke)} run broke")
    if missing:
        verdict.append(f"{len(missing)} part(s) could not run")
    if ok:
        summary = "no failures beyond the listed differences"
        say(f"\nDjango's test suite: {'; '.join([summary, *verdict])}")
    else:
        say(f"\nDjango's test suite FAILED: {'; '.join(verdict)}")
    return ok


def parse_arguments(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    extra: list[str] = []
    if "--" in argv:
        at = argv.index("--")
        argv, extra = argv[:at], argv[at + 1 :]
    parser = argparse.ArgumentParser(
        prog="python -m tests.django_suite",
        description="Run Django's own test suite against django_sessionkit.",
        epilog="Arguments after -- go to Django's runtests.py (e.g. -- -v 2 -k pattern).",
    )
    parser.add_argument(
        "labels", nargs="*", help=f"test apps or test ids (default: {', '.join(APPS)})"
    )
    parser.add_argument(
        "--config",
        choices=(*lists.CONFIGURATIONS, "all"),
        default="all",
        help="which configuration to run (default: all)",
    )
    parser.add_argument(
        "--parallel", type=int, default=min(2, os.cpu_count() or 1), help="processes (default: 2)"
    )
    return parser.parse_args(argv), extra


def main(argv: list[str] | None = None) -> int:
    options, extra = parse_arguments(sys.argv[1:] if argv is None else argv)
    labels = options.labels or list(APPS)
    configurations = lists.CONFIGURATIONS if options.config == "all" else (options.config,)
    lists.read(lists.EXCLUDED), lists.read(lists.DIFFERENCES)  # a bad line fails before any run
    full_run = not options.labels and not extra

    try:
        tests_dir = django_tests_dir(django_version())
    except Unavailable as exc:
        return 0 if report([], [f"Django's test suite: {exc}"], full_run) else 1

    outcomes = []
    missing = []
    for configuration in configurations:
        if configuration == "redis":
            try:
                with redis_server() as url:
                    env = {"SESSIONKIT_DJANGO_SUITE_REDIS_URL": url}
                    outcomes.append(
                        run_configuration(
                            configuration, tests_dir, labels, options.parallel, extra, env
                        )
                    )
            except Unavailable as exc:
                missing.append(f"Django's test suite on Redis: {exc}")
        else:
            outcomes.append(
                run_configuration(configuration, tests_dir, labels, options.parallel, extra, {})
            )
    return 0 if report(outcomes, missing, full_run) else 1
