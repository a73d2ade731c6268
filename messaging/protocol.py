"""The wire format of /ws/chat/: parse and validate inbound frames, build outbound ones."""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import emoji
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
# Longer digit strings cannot be a 64-bit integer; refusing them early also avoids
# Python's 4300-digit conversion limit.
MAX_INT_DIGITS = 20


class ErrorCode:
    """The error codes of PROTOCOL.md."""

    BAD_JSON = "bad_json"
    BAD_FRAME = "bad_frame"
    UNKNOWN_TYPE = "unknown_type"
    NOT_FOUND = "not_found"
    FORBIDDEN = "forbidden"
    CANNOT_SEND = "cannot_send"
    CONFLICT = "conflict"
    TOO_LONG = "too_long"
    EMPTY = "empty"
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"


@dataclass
class ChatError(Exception):
    """A request the server refuses, answered as an `error` frame (or a 4xx over HTTP)."""

    code: str
    detail: str
    client_id: str | None = None
    retry_after: float | None = None

    def as_frame(self) -> dict[str, Any]:
        """Build the `error` frame for this refusal."""
        frame: dict[str, Any] = {"type": "error", "code": self.code, "detail": self.detail}
        if self.client_id is not None:
            frame["client_id"] = self.client_id
        if self.retry_after is not None:
            frame["retry_after"] = self.retry_after
        return frame


class _Frame(BaseModel):
    # Strict: `true` is no integer and `5` is no string. Unknown fields are ignored so
    # that clients may add their own.
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


ClientId = Annotated[str, Field(min_length=1, max_length=64)]
MessageId = Annotated[int, Field(ge=1, le=INT64_MAX)]


UploadId = Annotated[str, Field(min_length=1, max_length=64)]
MAX_ATTACHMENTS = 10


class SendFrame(_Frame):
    type: Literal["message.send"]
    body: str
    client_id: ClientId
    to: str | None = None
    conversation: MessageId | None = None
    reply_to: MessageId | None = None
    attachments: Annotated[list[UploadId], Field(max_length=MAX_ATTACHMENTS)] = []


class SyncFrame(_Frame):
    type: Literal["sync"]
    after: Annotated[int, Field(ge=0, le=INT64_MAX)]


class ReadFrame(_Frame):
    type: Literal["read"]
    conversation: MessageId
    up_to: MessageId


class TypingFrame(_Frame):
    type: Literal["typing"]
    conversation: MessageId


class EditFrame(_Frame):
    type: Literal["message.edit"]
    id: MessageId
    body: str


class DeleteFrame(_Frame):
    type: Literal["message.delete"]
    id: MessageId


class PingFrame(_Frame):
    type: Literal["ping"]


class ReactionFrame(_Frame):
    type: Literal["reaction.add", "reaction.remove"]
    id: MessageId
    emoji: Annotated[str, Field(min_length=1, max_length=64)]


InboundFrame = (
    SendFrame
    | SyncFrame
    | ReadFrame
    | TypingFrame
    | EditFrame
    | DeleteFrame
    | PingFrame
    | ReactionFrame
)

_FRAME_MODELS = (
    SendFrame,
    SyncFrame,
    ReadFrame,
    TypingFrame,
    EditFrame,
    DeleteFrame,
    PingFrame,
    ReactionFrame,
)
FRAME_TYPES: dict[str, TypeAdapter] = {
    frame_type: TypeAdapter(model)
    for model in _FRAME_MODELS
    for frame_type in model.model_fields["type"].annotation.__args__
}


class _BadJson(ValueError):
    pass


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise _BadJson("number out of range")
    value = int(text)
    if not INT64_MIN <= value <= INT64_MAX:
        raise _BadJson("number out of range")
    return value


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _BadJson("number out of range")
    return value


def _refuse_constant(text: str) -> None:
    raise _BadJson(f"{text} is not JSON")


def decode_json(text: str) -> Any:
    """Decode strict JSON: no NaN or Infinity, numbers within 64 bits, finite floats."""
    try:
        return json.loads(
            text,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_refuse_constant,
        )
    except (ValueError, RecursionError) as exc:
        # json.JSONDecodeError is a ValueError too.
        raise ChatError(ErrorCode.BAD_JSON, f"not valid JSON: {_short(exc)}") from None


def _short(exc: BaseException) -> str:
    return str(exc).split("\n", 1)[0][:120] or type(exc).__name__


def _has_bad_text(value: str) -> bool:
    """Tell whether a string holds a NUL or a lone surrogate, which no database stores."""
    if "\x00" in value:
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def has_bad_text(document: Any) -> bool:
    """Tell whether any string of a decoded document holds a NUL or a lone surrogate."""
    # Iterative, so that a deeply nested (but valid) document cannot exhaust the stack.
    pending = [document]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if _has_bad_text(item):
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def parse_frame(text: str, *, max_chars: int) -> InboundFrame:
    """Parse one inbound text frame, or raise ChatError saying what is wrong with it."""
    if len(text) > max_chars:
        raise ChatError(ErrorCode.TOO_LONG, f"frame over {max_chars} characters")
    document = decode_json(text)
    if not isinstance(document, dict):
        raise ChatError(ErrorCode.BAD_JSON, "a frame must be one JSON object")
    client_id = document.get("client_id")
    echo = (
        client_id
        if isinstance(client_id, str) and 0 < len(client_id) <= 64 and not _has_bad_text(client_id)
        else None
    )
    frame_type = document.get("type")
    if not isinstance(frame_type, str):
        raise ChatError(ErrorCode.BAD_FRAME, "type: a string is required", client_id=echo)
    adapter = FRAME_TYPES.get(frame_type)
    if adapter is None:
        raise ChatError(
            ErrorCode.UNKNOWN_TYPE, f"unknown frame type {frame_type[:40]!r}", client_id=echo
        )
    if has_bad_text(document):
        raise ChatError(
            ErrorCode.BAD_FRAME, "text may not hold NUL or unpaired surrogates", client_id=echo
        )
    try:
        frame = adapter.validate_python(document)
    except ValidationError as exc:
        raise ChatError(ErrorCode.BAD_FRAME, _validation_detail(exc), client_id=echo) from None
    if isinstance(frame, SendFrame) and (frame.to is None) == (frame.conversation is None):
        raise ChatError(
            ErrorCode.BAD_FRAME, "give exactly one of 'to' and 'conversation'", client_id=echo
        )
    if isinstance(frame, SendFrame) and len(set(frame.attachments)) != len(frame.attachments):
        raise ChatError(ErrorCode.BAD_FRAME, "attachments: an upload twice", client_id=echo)
    if isinstance(frame, ReactionFrame):
        qualified = canonical_emoji(frame.emoji)
        if qualified is None:
            raise ChatError(ErrorCode.BAD_FRAME, "emoji: give exactly one emoji")
        frame = frame.model_copy(update={"emoji": qualified})
    return frame


_VARIATION_SELECTOR = "\ufe0f"


def _without_selectors(text: str) -> str:
    return text.replace(_VARIATION_SELECTOR, "")


@functools.cache
def _fully_qualified() -> dict[str, str]:
    """Map each emoji, its presentation selectors left out, to its fully qualified form."""
    return {
        _without_selectors(text): text
        for text, data in emoji.EMOJI_DATA.items()
        if data["status"] == emoji.STATUS["fully_qualified"]
    }


def canonical_emoji(text: str) -> str | None:
    """Return one emoji in its fully qualified form, or None if the text is not one emoji.

    "❤" and "❤️", "👍" and "👍" with a selector are each one reaction, however a client
    wrote them.
    """
    return _fully_qualified().get(_without_selectors(text))


def _validation_detail(exc: ValidationError) -> str:
    first = exc.errors(include_url=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "frame"
    return f"{where}: {first['msg']}"


def check_body(body: str, *, max_chars: int, client_id: str | None = None) -> str:
    """Return the body if it can be stored, else raise `empty` or `too_long`."""
    # Python counts code points, as PROTOCOL.md does.
    if len(body) > max_chars:
        raise ChatError(
            ErrorCode.TOO_LONG, f"body over {max_chars} characters", client_id=client_id
        )
    if not body or body.isspace():
        raise ChatError(ErrorCode.EMPTY, "body is blank", client_id=client_id)
    return body


def iso_utc(moment: datetime | None) -> str | None:
    """Format a time as ISO 8601 in UTC with a Z."""
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def user_data(user) -> dict[str, Any]:
    """Show a user as the protocol does."""
    return user_row_data(user.pk, user.username)


def user_row_data(user_id: int, username: str) -> dict[str, Any]:
    """Show a user read as plain columns, as user_data shows one."""
    return {"id": user_id, "username": username}


@dataclass(frozen=True)
class MessageParts:
    """What a message shows beside its text: the reply's quote, reactions, files, mentions.

    Read in bulk for a page of messages (messaging.domain.message_parts); a message
    without them is shown with none, as a new plain message is.
    """

    reply_to: dict[str, Any] | None = None
    reactions: list[dict[str, Any]] = field(default_factory=list)
    attachments: list[dict[str, Any]] = field(default_factory=list)
    mentions: list[int] = field(default_factory=list)


NO_PARTS = MessageParts()
# How much of a quoted message a reply shows, in code points (PROTOCOL.md).
QUOTE_CHARS = 200


def quote_data(original) -> dict[str, Any]:
    """Show the message a reply answers: who wrote it and the start of its text."""
    deleted = original.deleted_at is not None
    return {
        "id": original.pk,
        "sender": user_data(original.sender),
        "body": "" if deleted else original.body[:QUOTE_CHARS],
        "deleted": deleted,
    }


def message_data(message) -> dict[str, Any]:
    """Show a message as the protocol does; a deleted one keeps its id, not its body.

    `removed_by` is "moderator" when staff hid the message, null otherwise (its sender
    deleted it, or it is not deleted). A deleted message shows no quote, reactions, files
    or mentions either.
    """
    deleted = message.deleted_at is not None
    parts = NO_PARTS if deleted else getattr(message, "parts", NO_PARTS)
    return {
        "id": message.pk,
        "seq": message.seq,
        "conversation": message.conversation_id,
        "sender": user_data(message.sender),
        "body": "" if deleted else message.body,
        "client_id": message.client_id,
        "created_at": iso_utc(message.created_at),
        "edited_at": iso_utc(message.edited_at),
        "deleted": deleted,
        "removed_by": "moderator" if deleted and message.hidden_by_id is not None else None,
        "kind": message.kind,
        "reply_to": parts.reply_to,
        "reactions": parts.reactions,
        "attachments": parts.attachments,
        "mentions": parts.mentions,
    }


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
# The message the last frame carried, and its JSON text. A change's frames (one per member
# of its conversation, and the sender's ack) carry the same message object, built once for
# them all and never changed after (message_data builds a new one for every change): a
# group message is encoded once, not once per member.
_last_message: tuple[object, str] = (None, "")


def encode(frame: dict[str, Any]) -> str:
    """Encode an outbound frame."""
    global _last_message
    message = frame.get("message")
    if type(message) is not dict:
        return _ENCODER.encode(frame)
    shown, text = _last_message
    if shown is not message:
        text = _ENCODER.encode(message)
        # One assignment: a reader in another thread sees the pair whole.
        _last_message = (message, text)
    fields = (
        f'"message":{text}'
        if key == "message"
        # A stamp (prev_seq) is a plain int: its text is its digits.
        else f"{_ENCODER.encode(key)}:{value if type(value) is int else _ENCODER.encode(value)}"
        for key, value in frame.items()
    )
    return "{" + ",".join(fields) + "}"
