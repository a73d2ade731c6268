"""Who a group message names, read from its text."""

from messaging.domain.mentions import mentioned
from messaging.domain.send_rules import Person

MEMBERS = [Person(1, True, "ann"), Person(2, True, "ben.k"), Person(3, True, "Cleo")]


def test_members_named_with_an_at_sign_in_the_order_named_once_each():
    assert mentioned("@cleo and @ben.k, then @cleo again", MEMBERS, sender_id=1) == [3, 2]


def test_punctuation_after_a_name_is_not_part_of_it():
    assert mentioned("thanks @ben.k.", MEMBERS, sender_id=1) == [2]
    assert mentioned("(@Cleo)", MEMBERS, sender_id=1) == [3]


def test_addresses_strangers_and_the_sender_are_not_mentions():
    assert mentioned("mail ann@example.org", MEMBERS, sender_id=2) == []
    assert mentioned("@nobody", MEMBERS, sender_id=1) == []
    assert mentioned("note to @ann", MEMBERS, sender_id=1) == []
    assert mentioned("no at sign", MEMBERS, sender_id=1) == []
