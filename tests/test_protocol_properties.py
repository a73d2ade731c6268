"""Property-based tests: any text at all gives a command or a protocol error, nothing else."""

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from messaging.protocol import FRAME_TYPES, ChatError, ErrorCode, encode, parse_frame

MAX = 64 * 1024
PROTOCOL_CODES = {
    ErrorCode.BAD_JSON,
    ErrorCode.BAD_FRAME,
    ErrorCode.UNKNOWN_TYPE,
    ErrorCode.TOO_LONG,
}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=20,
)

frame_like = st.fixed_dictionaries(
    {"type": st.sampled_from([*FRAME_TYPES, "nope", ""]) | json_values},
    optional={
        "to": json_values,
        "conversation": json_values,
        "body": json_values,
        "client_id": json_values,
        "after": json_values,
        "up_to": json_values,
        "id": json_values,
    },
)


def outcome(text: str):
    try:
        frame = parse_frame(text, max_chars=MAX)
    except ChatError as error:
        assert error.code in PROTOCOL_CODES, error
        assert error.detail
        json.dumps(error.as_frame())  # always sendable
        return error
    assert type(frame).__name__.endswith("Frame")
    return frame


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_any_text_is_a_frame_or_a_protocol_error(text):
    outcome(text)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_any_json_value_is_a_frame_or_a_protocol_error(value):
    outcome(json.dumps(value))


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(frame_like)
def test_frame_shaped_objects_are_a_frame_or_a_protocol_error(value):
    result = outcome(json.dumps(value))
    if not isinstance(result, ChatError):
        # Whatever is accepted is exactly typed: no bools for ints, no floats for ids.
        for name, field in type(result).model_fields.items():
            got = getattr(result, name)
            if field.annotation is int or name in ("conversation", "after", "up_to", "id"):
                assert got is None or type(got) is int


@given(st.binary(max_size=200))
def test_any_bytes_decoded_leniently_are_a_frame_or_a_protocol_error(data):
    outcome(data.decode("utf-8", "replace"))


# What the server sends: JSON without NaN (the chat never puts a float in a frame).
sent_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**60), 2**60) | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300)
@given(
    message=st.dictionaries(st.text(max_size=8), sent_values, max_size=6),
    others=st.dictionaries(st.sampled_from(["type", "prev_seq", "client_id"]), sent_values),
    later=st.dictionaries(st.text(max_size=8), sent_values, max_size=3),
)
def test_a_frame_is_sent_as_its_json_whether_its_message_was_encoded_before_or_not(
    message, others, later
):
    # One message's frames for many members (its text reused), then a new message.
    for prev_seq in (1, 2):
        frame = {**others, "message": message, "prev_seq": prev_seq, **later}
        assert encode(frame) == json.dumps(frame, ensure_ascii=False, separators=(",", ":"))
    changed = {**message, "body": "another"}
    frame = {"type": "message.updated", "message": changed, "prev_seq": 3}
    assert json.loads(encode(frame))["message"] == changed
