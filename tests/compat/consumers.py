"""Channels: a websocket consumer behind AuthMiddlewareStack."""

from __future__ import annotations

from typing import Any

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.routing import URLRouter
from django.urls import path


class WhoAmIConsumer(AsyncJsonWebsocketConsumer):
    """Sends who the session says the user is; {"remember": v} writes v into the session."""

    async def connect(self) -> None:
        await self.accept()
        user = self.scope["user"]
        await self.send_json(
            {
                "user": user.get_username() if user.is_authenticated else None,
                "session_key": self.scope["session"].session_key,
            }
        )

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        session = self.scope["session"]
        session["remembered_over_websocket"] = content["remember"]
        await database_sync_to_async(session.save)()
        await self.send_json({"saved": True})


application = AuthMiddlewareStack(URLRouter([path("ws/whoami/", WhoAmIConsumer.as_asgi())]))
