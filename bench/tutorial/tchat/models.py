from django.db import models


class Message(models.Model):
    """A stored message, as in the tutorial: no ids for sync, no idempotency."""

    sender = models.CharField(max_length=32)
    recipient = models.CharField(max_length=32)
    body = models.TextField()
    client_id = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.sender} -> {self.recipient}: {self.client_id}"
