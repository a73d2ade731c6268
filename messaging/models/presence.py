"""Who is online: the server processes' heartbeats and the sockets they hold."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class PresenceProcess(models.Model):
    """A server process's socket registry; its heartbeat keeps all of its sockets alive."""

    id = models.CharField(max_length=64, primary_key=True)
    heartbeat_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"process {self.id}"


class SocketPresence(models.Model):
    """An open socket: live while the process holding it keeps its heartbeat fresh."""

    channel_name = models.CharField(max_length=200, primary_key=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sockets"
    )
    # The PresenceProcess holding the socket (no foreign key: a row of a process that is
    # gone is what the sweep looks for).
    process = models.CharField(max_length=64, db_index=True)
    connected_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.user} on {self.channel_name}"
