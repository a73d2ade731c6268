"""PostgreSQL's two search plans (a rare word's index, the walk through the user's
conversations) answer exactly what the plain query answers, page after page."""

import itertools

import pytest
from django.core.management import call_command
from django.db import connection

from messaging.domain import message_changes, search, search_walk, services
from tests.factories import UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services]
# The tests that only read the module's conversations: each in a transaction rolled back,
# so that the conversations, made once, stay for all of them.
reading_spread = pytest.mark.django_db

WORDS = ("alpha", "beta", "gamma")


@pytest.fixture(params=["indexed", "walk"])
def plan(request, monkeypatch):
    """Force one plan; the walk with windows of one conversation, then 2, 4, 8..."""
    if connection.vendor != "postgresql":
        pytest.skip("the plans are PostgreSQL's")
    if request.param == "indexed":
        monkeypatch.setattr(search_walk, "rarest_word", lambda cursor, words: words[-1])
    else:
        monkeypatch.setattr(search_walk, "rarest_word", lambda cursor, words: None)
        monkeypatch.setattr(search_walk, "WALK_FIRST", 1)
        monkeypatch.setattr(search_walk, "WALK_GROWTH", 2)
    return request.param


@pytest.fixture(scope="module")
def spread(django_db_setup, django_db_blocker):
    """Bob in eight conversations whose messages interleave, some hits in each.

    Made once for the module's 14 readings of it (120 messages sent through the services,
    two seconds each time), and removed after them.
    """
    with django_db_blocker.unblock():
        if connection.vendor != "postgresql":
            pytest.skip("the plans are PostgreSQL's")
        made = _spread()
    yield made
    with django_db_blocker.unblock():
        call_command("flush", interactive=False, verbosity=0)


def _spread():
    bob = UserFactory(username="bob")
    others = [UserFactory(username=f"friend{n}") for n in range(6)]
    group = services.conversation_create_group(creator=others[0], others=[bob, *others[1:3]])
    stranger = UserFactory(username="stranger")
    sent = []
    # Conversation by conversation in turn, then some go quiet: windows of every size.
    for n in range(60):
        speaker = others[n % 6] if n < 40 else others[n % 2]
        words = " ".join(w for i, w in enumerate(WORDS) if n % (i + 2) == 0) or "none"
        body = f"message {n} {words}"
        if n % 7 == 0:
            sent.append(
                services.message_send(
                    sender=others[n % 3], body=body, client_id=f"g{n}", conversation_id=group.pk
                ).message
            )
        else:
            sent.append(
                services.message_send(
                    sender=speaker, body=body, client_id=f"d{n}", to="bob"
                ).message
            )
        # Someone else's conversation holds the same words: never Bob's hits.
        services.message_send(sender=stranger, body=body, client_id=f"s{n}", to="friend5")
    message_changes.message_delete(actor=sent[12].sender, message_id=sent[12].pk)
    return bob, sent


def expected(user, query: str, before: int | None, limit: int) -> tuple[list[int], bool]:
    words = search.query_words(query)
    ids = list(
        search.matching(search.searchable(user, before), words)
        .order_by("-id")
        .values_list("id", flat=True)[: limit + 1]
    )
    return ids[:limit], len(ids) > limit


@reading_spread
@pytest.mark.parametrize("query", ["alpha", "beta", "gamma", "alpha beta", "gam", "missing"])
def test_each_plan_pages_through_the_same_hits_as_the_plain_query(plan, spread, query):
    bob, sent = spread
    befores = [None, *(message.pk for message in sent[::5]), sent[0].pk]
    for before, limit in itertools.product(befores, (1, 3, 50)):
        hits, more = search.message_search(user=bob, query=query, before=before, limit=limit)
        assert ([hit["id"] for hit in hits], more) == expected(bob, query, before, limit), (
            before,
            limit,
        )


@reading_spread
def test_every_page_in_turn_gives_every_hit_once(plan, spread):
    bob, _ = spread
    seen: list[int] = []
    before = None
    while True:
        hits, more = search.message_search(user=bob, query="alpha", before=before, limit=4)
        seen += [hit["id"] for hit in hits]
        if not more:
            break
        before = hits[-1]["id"]
    assert seen == expected(bob, "alpha", None, 1000)[0] and len(seen) == 29


def test_a_user_without_conversations_finds_nothing(plan, make_user):
    loner = make_user(username="loner")
    assert search.message_search(user=loner, query="alpha", before=None, limit=5) == ([], False)


@pytest.fixture
def sent_to_reader(make_user):
    """Send these bodies from one person to "reader" (PostgreSQL only); return the reader."""
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's statistics")

    def send(bodies: list[str]):
        sender, reader = make_user(username="sender"), make_user(username="reader")
        for n, body in enumerate(bodies):
            services.message_send(sender=sender, body=body, client_id=f"c{n}", to="reader")
        return reader

    return send


def test_the_statistics_pick_the_rare_word_and_no_common_one(sent_to_reader, monkeypatch):
    reader = sent_to_reader([f"common words {n}" for n in range(60)] + ["common unicorn"])
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE messaging_message")
        monkeypatch.setattr(search_walk, "RARE_ROWS", 5)
        assert search_walk.rarest_word(cursor, ["common", "unicorn"]) == "unicorn"
        assert search_walk.rarest_word(cursor, ["common"]) is None
        # A prefix counts every word it starts: "com" is as common as "common".
        assert search_walk.rarest_word(cursor, ["com"]) is None
    hits, more = search.message_search(user=reader, query="common uni", before=None, limit=5)
    assert [hit["body"] for hit in hits] == ["common unicorn"] and not more


def test_a_word_the_statistics_only_bound_is_counted_before_it_is_called_common(
    sent_to_reader, monkeypatch
):
    bodies = [f"common words {n}" for n in range(60)] + ["common unicorn"]
    reader = sent_to_reader(bodies + [f"common zebra {n}" for n in range(7)])
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE messaging_message")
        monkeypatch.setattr(search_walk, "RARE_ROWS", 5)
        # A loose bound, as on a big table: every word not listed may be in half the rows.
        monkeypatch.setattr(search_walk, "analyze_cutoff_share", lambda width, target: 0.5)
        monkeypatch.setattr(search_walk, "lexeme_shares", _without_rare_words)
        assert search_walk.rarest_word(cursor, ["common", "unicorn"]) == "unicorn"
        assert search_walk.rarest_word(cursor, ["zebra"]) is None
        assert search_walk.word_rows(cursor, "zebra", 100) == 7
        assert search_walk.word_rows(cursor, "zebra", 3) == 3
    hits, more = search.message_search(user=reader, query="unicorn", before=None, limit=5)
    assert [hit["body"] for hit in hits] == ["common unicorn"] and not more


def test_a_statistics_target_an_operator_set_on_a_word_index_is_the_one_bounded_by(
    sent_to_reader, monkeypatch
):
    sent_to_reader([f"words {n}" for n in range(20)])
    used = []
    monkeypatch.setattr(
        search_walk,
        "analyze_cutoff_share",
        lambda width, target: used.append(target) or 0.001,
    )
    with connection.cursor() as cursor:
        cursor.execute("SHOW default_statistics_target")
        default = int(cursor.fetchone()[0])
        cursor.execute(
            "ALTER TABLE messaging_message ALTER COLUMN search_vector SET STATISTICS 10"
        )
        try:
            cursor.execute("ANALYZE messaging_message")
            search_walk.rarest_word(cursor, ["zebra"])
        finally:
            cursor.execute(
                "ALTER TABLE messaging_message ALTER COLUMN search_vector SET STATISTICS -1"
            )
    # The stems' index has its own target (fewer lexemes kept: a wider bound); the written
    # words' index the database's.
    assert used == [10, default]


def _without_rare_words(lexemes, shares, avg_width=None, target=None):
    # As ANALYZE of millions of rows has it: only the common words listed.
    listed = search_walk.analyze_cutoff_share(avg_width, target)
    return {"common": 0.9, "word": 0.8, "": listed}


def test_a_share_is_estimated_from_the_stem_and_every_word_a_prefix_starts():
    stemmed = {"meet": 0.1, "": 0.001}
    written = {"meeting": 0.05, "meet": 0.02, "me": 0.3, "": 0.001}
    assert search_walk.estimated_share("meeting", "'meet'", stemmed, written) == 0.1 + 0.05
    assert search_walk.estimated_share("meet", "'meet'", stemmed, written) == 0.1 + 0.07
    # Neither listed: less than the smallest share listed, in each index.
    assert search_walk.estimated_share("zebra", "'zebra'", stemmed, written) == 0.002
    # A stop word has no stem: only the words it starts.
    assert search_walk.estimated_share("me", "", stemmed, written) == 0.3 + 0.05 + 0.02


def test_a_word_missing_from_a_short_list_is_taken_as_rare_as_analyze_lets_it_be():
    # A small vocabulary: ANALYZE listed all of its 3 lexemes (it keeps up to 1,000), the
    # smallest in 7 % of the rows; a word not listed is below its cut-off: with 9 lexemes a
    # row (46 bytes), at most 10 x 9.2 / 144,285 of the rows, about 6 in 10,000.
    shares = [0.9, 0.3, 0.07, 0.07, 0.9, 0.0]
    few = search_walk.lexeme_shares(["hello", "project", "lunch"], shares, 46, 100)
    assert few["project"] == 0.3
    assert few[""] == pytest.approx(10 * 9.2 / 144_285)
    # A full list says no more than its smallest share.
    full = search_walk.lexeme_shares(
        [f"w{n}" for n in range(1000)], [0.001] * 1000 + [0.001, 0.5, 0.0], 46, 100
    )
    assert full[""] == 0.001
