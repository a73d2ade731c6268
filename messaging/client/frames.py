"""What the server's frames mean to the client: the types it watches, a refusal, a close."""

from __future__ import annotations

from typing import Any

# Close codes after which reconnecting cannot help: the session or token was ended.
CLOSE_SESSION_ENDED = 4401
PUSH_TYPES = ("message.new", "message.updated")
# A change that a sync found, handed on by `events()` in place of a push that was lost (or
# that came while the client was away): the message as it is now, new, edited or deleted.
SYNCED = "message.synced"


class ChatError(Exception):
    """A frame the server refused with an `error` frame."""

    def __init__(
        self,
        code: str,
        detail: str = "",
        retry_after: float | None = None,
        client_id: str | None = None,
    ) -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail
        self.retry_after = retry_after
        self.client_id = client_id

    @classmethod
    def from_frame(cls, frame: dict[str, Any]) -> ChatError:
        """Build the exception an `error` frame describes."""
        return cls(
            frame.get("code", "error"),
            frame.get("detail", ""),
            frame.get("retry_after"),
            frame.get("client_id"),
        )
