"""The send rules decide each send from what is known about it, with no database."""

from messaging.domain import send_rules
from messaging.domain.send_rules import Action, Earlier, Person, Place, SendFacts, decide
from messaging.models import Conversation, Message

ANN = Person(1, True, "ann")
BEN = Person(2, True, "ben")
PAIR = Place(id=10, direct=True, members=frozenset({1, 2}))
GROUP = Place(id=20, direct=False, members=frozenset({1, 2, 3}))
PAIR_KEY = Conversation.direct_key_for(1, 2)


def facts(**known) -> SendFacts:
    """A send by ann to ben's direct conversation, as known unless said otherwise."""
    base = {
        "sender": ANN,
        "body": "hello",
        "max_chars": 20,
        "conversation_id": PAIR.id,
        "place": PAIR,
        "other": BEN,
    }
    return SendFacts(**{**base, **known})


def to_ben(**known) -> SendFacts:
    """A send by ann to the name "ben", with no conversation of the two yet."""
    return facts(**{"to": "ben", "conversation_id": None, "place": None, **known})


def refusal(decision) -> tuple[str, str]:
    assert decision.action is Action.REFUSE
    return decision.code, decision.detail


def test_a_member_writing_in_a_direct_conversation_or_a_group_is_stored():
    assert decide(facts()) == send_rules.STORE
    assert decide(facts(conversation_id=GROUP.id, place=GROUP, other=None)) == send_rules.STORE


def test_a_first_message_to_someone_opens_the_conversation_then_is_stored_there():
    assert decide(to_ben()) == send_rules.OPEN
    assert decide(to_ben(place=PAIR)) == send_rules.STORE


def test_a_blank_or_too_long_body_is_refused_before_anything_else():
    assert refusal(decide(facts(body="  ", sender=Person(1, False)))) == ("empty", "body is blank")
    assert refusal(decide(to_ben(body="x" * 21, other=None)))[0] == "too_long"


def test_a_deactivated_sender_is_forbidden_even_for_a_retry():
    earlier = Earlier(PAIR.id, PAIR_KEY, Message.hash_body("hello"))
    decision = decide(facts(sender=Person(1, False, "ann"), earlier=earlier))
    assert refusal(decision) == ("forbidden", "this account can no longer send messages")


def test_a_name_nobody_has_or_ones_own_is_refused_even_for_a_retry():
    earlier = Earlier(PAIR.id, PAIR_KEY, Message.hash_body("hello"))
    assert refusal(decide(to_ben(other=None, earlier=earlier))) == ("not_found", "no such user")
    yourself = refusal(decide(to_ben(other=ANN)))
    assert yourself == ("bad_frame", "you cannot send a message to yourself")


def test_a_conversation_one_is_not_in_is_not_found():
    outside = Place(id=30, direct=False, members=frozenset({2, 3}))
    assert refusal(decide(facts(conversation_id=30, place=outside, other=None))) == (
        "not_found",
        "no such conversation",
    )
    assert refusal(decide(facts(conversation_id=31, place=None, other=None)))[0] == "not_found"


def test_writing_to_someone_deactivated_or_across_a_block_cannot_send():
    gone = Person(2, False, "ben")
    assert refusal(decide(facts(other=gone))) == ("cannot_send", "ben cannot receive messages")
    assert refusal(decide(facts(blocked=True))) == (
        "cannot_send",
        "you and ben cannot message each other",
    )
    assert refusal(decide(to_ben(other=gone))) == ("cannot_send", "ben cannot receive messages")
    assert refusal(decide(to_ben(blocked=True))) == ("cannot_send", "you and ben cannot message")


def test_a_block_does_not_stop_a_group():
    group = facts(conversation_id=GROUP.id, place=GROUP, other=None, blocked=True)
    assert decide(group) == send_rules.STORE


def test_a_retry_in_the_same_place_with_the_same_body_is_acked_even_if_now_refused():
    earlier = Earlier(PAIR.id, PAIR_KEY, Message.hash_body("hello"))
    assert decide(facts(earlier=earlier, other=Person(2, False, "ben"))) == send_rules.ACK_EARLIER
    assert decide(to_ben(place=PAIR, earlier=earlier, blocked=True)) == send_rules.ACK_EARLIER
    # Removed from the group since: still acked.
    in_group = Earlier(GROUP.id, None, Message.hash_body("hello"))
    left = facts(conversation_id=GROUP.id, place=None, other=None, earlier=in_group)
    assert decide(left) == send_rules.ACK_EARLIER


def test_a_retry_with_another_body_or_place_is_a_conflict():
    conflict = ("conflict", "this client_id was already used for another message")
    earlier = Earlier(PAIR.id, PAIR_KEY, Message.hash_body("hello"))
    assert refusal(decide(facts(body="changed", earlier=earlier))) == conflict
    elsewhere = facts(conversation_id=GROUP.id, place=GROUP, other=None, earlier=earlier)
    assert refusal(decide(elsewhere)) == conflict
    in_group = Earlier(GROUP.id, None, Message.hash_body("hello"))
    assert refusal(decide(to_ben(earlier=in_group))) == conflict


def test_a_retry_of_a_deleted_message_is_acked_whatever_its_body():
    deleted = Earlier(PAIR.id, PAIR_KEY, "")
    assert decide(facts(body="anything else", earlier=deleted)) == send_rules.ACK_EARLIER
    assert decide(to_ben(body="or this", earlier=deleted)) == send_rules.ACK_EARLIER


def test_each_conversation_opened_counts_once_for_its_first_send():
    openings = {4: "1:3", 0: "1:2", 2: "1:2", 3: "2:3"}
    assert send_rules.first_opening_of_each(openings) == {"1:2": 0, "2:3": 3, "1:3": 4}


def test_a_stamp_follows_the_latest_of_every_member():
    assert send_rules.stamp({1: 4, 2: 9, 3: 0}) == 10
    assert send_rules.stamp({}) == 1


def test_a_row_keeps_the_keyed_hash_of_its_body():
    row = send_rules.message_fields(
        conversation_id=10, sender_id=1, body="hello", client_id="c-1", seq=7
    )
    assert row == {
        "conversation_id": 10,
        "sender_id": 1,
        "kind": "text",
        "body": "hello",
        "client_id": "c-1",
        "sent_hash": Message.hash_body("hello"),
        "seq": 7,
        "reply_to_id": None,
    }
    assert row["sent_hash"] != "hello"


def test_a_reply_must_answer_a_live_message_of_its_own_conversation():
    assert decide(facts(reply_to=5, reply_in=PAIR.id)) == send_rules.STORE
    assert refusal(decide(facts(reply_to=5, reply_in=GROUP.id)))[0] == "not_found"
    assert refusal(decide(facts(reply_to=5, reply_in=None)))[0] == "not_found"
    # Nothing is there to answer before the conversation is opened.
    assert refusal(decide(to_ben(other=BEN, reply_to=5, reply_in=PAIR.id)))[0] == "not_found"
    assert decide(to_ben(other=BEN)) == send_rules.OPEN


def test_files_may_go_without_words_if_they_are_the_senders_own_and_unsent():
    assert decide(facts(body="", attachments=2)) == send_rules.STORE
    assert decide(facts(body="  ", attachments=1)) == send_rules.STORE
    assert refusal(decide(facts(body="")))[0] == "empty"
    assert refusal(decide(facts(body="x" * 21, attachments=1)))[0] == "too_long"
    assert refusal(decide(facts(attachments=1, attachable=False)))[0] == "not_found"
    assert refusal(decide(to_ben(other=BEN, attachments=1, attachable=False)))[0] == "not_found"
    # A retry is answered as the first send was, even once its files were sent.
    earlier = Earlier(PAIR.id, PAIR_KEY, Message.hash_body(""))
    retry = facts(body="", attachments=1, attachable=False, earlier=earlier)
    assert decide(retry) == send_rules.ACK_EARLIER


def test_reacting_follows_the_rules_of_writing():
    assert send_rules.writing_refusal(ANN, PAIR, BEN, blocked=False) is None
    assert send_rules.writing_refusal(ANN, GROUP, None, blocked=True) is None
    carl = Person(4, True, "carl")
    assert refusal(send_rules.writing_refusal(carl, PAIR, BEN, blocked=False))[0] == "not_found"
    assert refusal(send_rules.writing_refusal(ANN, PAIR, BEN, blocked=True))[0] == "cannot_send"
    gone = Person(1, False, "ann")
    assert refusal(send_rules.writing_refusal(gone, PAIR, BEN, blocked=False))[0] == "forbidden"


def test_blocks_count_either_way_and_a_direct_conversation_has_one_other():
    assert send_rules.blocked_either_way(1, 2, {(2, 1)})
    assert not send_rules.blocked_either_way(1, 2, {(1, 3)})
    assert send_rules.other_member(PAIR, 1) == 2
    assert send_rules.other_member(GROUP, 1) is None
    assert send_rules.other_member(Place(11, True, frozenset({1})), 1) is None
