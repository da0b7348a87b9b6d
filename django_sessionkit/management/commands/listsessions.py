"""``manage.py listsessions``: live sessions, page by page, as a table, JSON or CSV;
``--ended``: the ended sessions the audit trail keeps (``SESSIONKIT["KEEP_ENDED"]``)."""

from __future__ import annotations

import ipaddress
from argparse import ArgumentParser
from datetime import datetime
from typing import Any

from django.core.management.base import CommandError

from django_sessionkit import audit
from django_sessionkit.management import options as parse
from django_sessionkit.management.base import StoreCommand
from django_sessionkit.management.lookup import handle_of, pages, resolve_user, usernames
from django_sessionkit.management.output import (
    ENDED_COLUMNS,
    FORMATS,
    USER_AGENT_WIDTH,
    Raw,
    shorten,
    writer,
)
from django_sessionkit.models import EndedSession
from django_sessionkit.stores.base import SessionRecord, Store
from django_sessionkit.stores.database import DatabaseStore

IpFilter = ipaddress.IPv4Network | ipaddress.IPv6Network


class Command(StoreCommand):
    help = (
        "Lists live sessions, most recently active first: key prefix, user, IP address, "
        "user agent, created, last seen, expires. Streams page by page. With --ended: the "
        "ended sessions kept for SESSIONKIT['KEEP_ENDED'], most recently ended first."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--user", help="Only this user's sessions (username or user id).")
        parser.add_argument(
            "--ip", help="Only sessions from this IP address or network (192.0.2.7, 10.0.0.0/8)."
        )
        parser.add_argument(
            "--active-since",
            help="Only sessions seen since then (with --ended: ended since then): 30m, 1h, "
            "2d, 1w, or an ISO date/date-time.",
        )
        parser.add_argument(
            "--ended",
            action="store_true",
            help="List the ended sessions the audit trail keeps (SESSIONKIT['KEEP_ENDED']): "
            "how each started, when and how it ended, and by whom.",
        )
        parser.add_argument(
            "--format", default="table", help=f"{', '.join(FORMATS)} (default table)."
        )
        parser.add_argument(
            "--page-size",
            default="500",
            help="Sessions fetched from the store per round trip (default 500).",
        )

    def run(self, store: Store, **options: Any) -> None:
        fmt = str(options["format"]).lower()
        if fmt not in FORMATS:
            raise CommandError(
                f"--format {options['format']!r} is not accepted: use one of {', '.join(FORMATS)}."
            )
        page_size = parse.batch_size(options["page_size"], "--page-size")
        since = parse.since(options["active_since"]) if options["active_since"] else None
        network = self.network(options["ip"]) if options["ip"] else None
        if options["ended"]:
            return self.list_ended(store, fmt, page_size, since, network, options)
        user_id = resolve_user(store, options["user"])[0] if options["user"] else None
        out = writer(fmt, Raw(self.stdout))
        try:
            for page in pages(store, user_id=user_id, ip=network, page_size=page_size):
                names = usernames(record.user_id for _, record in page)
                for key, record in page:
                    if since is not None and record.last_seen < since:
                        out.close()  # newest first: everything after this is older still
                        return
                    out.row(self.values(key, record, names, wide=fmt != "table"))
        except ValueError as exc:  # a network this store cannot search
            raise CommandError(f"--ip {options['ip']!r}: {exc}.") from None
        out.close()

    @staticmethod
    def network(value: str) -> IpFilter:
        try:
            return ipaddress.ip_network(value.strip(), strict=False)
        except ValueError:
            raise CommandError(
                f"--ip {value!r} is not an IP address or network: give one such as 192.0.2.7, "
                "2001:db8::1 or 10.0.0.0/8."
            ) from None

    @staticmethod
    def values(
        key: str, record: SessionRecord, names: dict[str, str], *, wide: bool
    ) -> dict[str, Any]:
        user, agent = _who(record.user_id, record.user_agent, names, wide=wide)
        moments: dict[str, datetime] = {
            "created": record.created_at,
            "last_seen": record.last_seen,
            "expires": record.expires_at,
        }
        values: dict[str, Any] = {
            "key": handle_of(key),
            "user": user,
            "ip": record.ip,
            "user_agent": agent,
            **moments,
        }
        if wide:
            values["user_id"] = record.user_id
        return values

    def list_ended(
        self,
        store: Store,
        fmt: str,
        page_size: int,
        since: datetime | None,
        network: IpFilter | None,
        options: dict[str, Any],
    ) -> None:
        if not audit.is_on():
            raise CommandError(
                "--ended: SESSIONKIT['KEEP_ENDED'] is 0, so ended sessions are not kept. Set "
                "it to how many seconds to keep them (86400 for a day) to start the audit trail."
            )
        user_id = None
        if options["user"]:  # a deleted user's id too, while ended sessions of it are kept
            kept = audit.rows()
            user_id = resolve_user(
                store, options["user"], has_sessions=lambda u: kept.filter(user_id=u).exists()
            )[0]
        ip = None
        if network is not None:
            try:  # the database store's own IP conditions, on the same column type
                ip = DatabaseStore(audit.alias())._ip_condition(network)
            except ValueError as exc:
                raise CommandError(f"--ip {options['ip']!r}: {exc}.") from None
        out = writer(fmt, Raw(self.stdout), ENDED_COLUMNS)
        before = None
        while True:
            page = audit.page(user_id=user_id, ip=ip, since=since, before=before, limit=page_size)
            names = usernames(row.user_id for row in page)
            for row in page:
                out.row(self.ended_values(row, names, wide=fmt != "table"))
            if len(page) < page_size:
                break
            before = (page[-1].ended_at, page[-1].id)
        out.close()

    @staticmethod
    def ended_values(row: EndedSession, names: dict[str, str], *, wide: bool) -> dict[str, Any]:
        user, agent = _who(row.user_id, row.user_agent, names, wide=wide)
        values: dict[str, Any] = {
            "key": row.ref,
            "user": user,
            "ip": row.ip,
            "user_agent": agent,
            "started": row.started or None,
            "created": row.created_at,
            "ended": row.ended_at,
            "reason": row.reason,
            "by": row.by or None,
        }
        if wide:
            values["user_id"] = row.user_id
            values["last_seen"] = row.last_seen
        return values


def _who(
    user_id: str | None, user_agent: str, names: dict[str, str], *, wide: bool
) -> tuple[str | None, str | None]:
    """A row's user (its username, else ``#id``) and its user agent (shortened in a table)."""
    user = None if user_id is None else names.get(user_id, f"#{user_id}")
    agent = user_agent or None
    if agent and not wide:
        agent = shorten(agent, USER_AGENT_WIDTH)
    return user, agent
