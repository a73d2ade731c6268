"""Property-based tests: any text at all gives a command or a protocol error, nothing else."""

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from messaging.protocol import FRAME_TYPES, ChatError, ErrorCode, parse_frame

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
