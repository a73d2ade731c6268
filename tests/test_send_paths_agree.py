"""The batch and the single path answer, store and stamp the same sends the same way.

Each generated mix builds a world (people, direct conversations, groups with members
removed, messages sent and deleted before, blocks, deactivated accounts, a conversation
limit) and a list of sends cut into batches. The sends run once through
services.message_send one by one and once through the batch (messages_send_many, as the
send queue calls it), each on a fresh database, and the two runs must give the same
answers, the same rows and memberships, and every member the same stamp chain.

Sends the batch hands to the single path (replies and sends with files among them) are
stored after the batch's own, in commit order: that is the one difference allowed, and the
chains must show exactly it. Asking the rules costs the batch no round trip (the last test).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from messaging.domain import blocks, groups, message_changes, services, uploads
from messaging.domain.events import collecting
from messaging.models import ChangeStream, Conversation, Membership, Message
from messaging.protocol import ChatError
from messaging.sending import batch as send_batch
from messaging.sending.batch import SendRequest, messages_send_many
from messaging.singletons import reset_all

User = get_user_model()

NAMES = ["ann", "ben", "cat", "dan"]
BODIES = ["hi", "hello", "  ", "x" * 4001]
CLIENT_IDS = ["c0", "c1", "c2"]
PAIRS = [(a, b) for a in range(len(NAMES)) for b in range(a + 1, len(NAMES))]
MAX_EXAMPLES = 80
MAX_EARLIER = 3


@dataclass(frozen=True)
class Send:
    """One generated send: a sender, a place, a body, a client_id, what it quotes and carries.

    `place` is ("to", name index), ("to", None) for a name nobody has, ("conversation",
    index into the world's conversations) or ("conversation", None) for one that is not
    there. `reply_to` indexes the messages sent before (one past them: a message that is
    not there); `files` is how many files of the sender's, uploaded just before, it carries.
    """

    sender: int
    place: tuple[str, int | None]
    body: str
    client_id: str
    reply_to: int | None = None
    files: int = 0


@dataclass(frozen=True)
class Mix:
    """A world and the sends to run in it, cut into batches."""

    directs: list[tuple[int, int]]
    groups: list[tuple[int, frozenset[int], int | None]]  # creator, others, who leaves
    earlier: list[tuple[Send, bool]]  # sent before (by the single path), deleted or not
    blocks: list[tuple[int, int]]
    inactive: frozenset[int]
    conversation_limit: int
    sends: list[Send]
    cuts: frozenset[int] = field(default_factory=frozenset)


@st.composite
def mixes(draw) -> Mix:
    """Draw a world and a list of sends in it."""
    people = st.integers(0, len(NAMES) - 1)
    directs = draw(st.lists(st.sampled_from(PAIRS), unique=True, max_size=4))
    # Mostly between people who talk, so that a block meets their sends.
    blocked_pairs = st.sampled_from(directs) if directs else st.sampled_from(PAIRS)
    blocks_between = st.tuples(blocked_pairs | st.sampled_from(PAIRS), st.booleans()).map(
        lambda pair_and_way: pair_and_way[0][:: -1 if pair_and_way[1] else 1]
    )
    group_list = draw(
        st.lists(
            st.tuples(
                people,
                st.frozensets(people, min_size=2, max_size=4),
                st.none() | people,
            ).filter(lambda g: len(g[1] - {g[0]}) >= 2),
            max_size=2,
        )
    )
    members = [set(pair) for pair in directs] + [
        others | {creator} for creator, others, _ in group_list
    ]
    # Mostly plain text, as people write; a reply or a file now and then.
    replies = st.none() | st.none() | st.integers(0, MAX_EARLIER)
    files = st.sampled_from([0, 0, 0, 1, 2])
    sends = st.builds(
        Send,
        sender=people,
        place=st.tuples(st.just("to"), st.none() | people),
        body=st.sampled_from(BODIES),
        client_id=st.sampled_from(CLIENT_IDS),
        reply_to=replies,
        files=files,
    )
    if members:
        # Mostly by someone who is (or was) in the conversation.
        sends |= st.integers(0, len(members) - 1).flatmap(
            lambda place: st.builds(
                Send,
                sender=st.sampled_from(sorted(members[place])) | people,
                place=st.just(("conversation", place)),
                body=st.sampled_from(BODIES),
                client_id=st.sampled_from(CLIENT_IDS),
                reply_to=replies,
                files=files,
            )
        )
    sends |= st.builds(
        Send,
        sender=people,
        place=st.just(("conversation", None)),
        body=st.just("hi"),
        client_id=st.sampled_from(CLIENT_IDS),
    )
    send_list = draw(st.lists(sends, min_size=1, max_size=10))
    return Mix(
        directs=directs,
        groups=group_list,
        earlier=draw(st.lists(st.tuples(sends, st.booleans()), max_size=MAX_EARLIER)),
        blocks=draw(st.lists(blocks_between, max_size=2)),
        inactive=draw(st.frozensets(people, max_size=2)),
        conversation_limit=draw(st.sampled_from([1, 2, 1000])),
        sends=send_list,
        cuts=draw(st.frozensets(st.integers(1, len(send_list) - 1), max_size=3))
        if len(send_list) > 1
        else frozenset(),
    )


# One mix that surely stores a reply and a message with files, each followed by plain
# sends of the same sender that the batch must hold back behind them; the generated mixes
# store a few more.
QUOTES_AND_FILES = Mix(
    directs=[(0, 1)],
    groups=[(0, frozenset({1, 2}), None)],
    earlier=[(Send(0, ("conversation", 0), "hi", "c0"), False)],
    blocks=[],
    inactive=frozenset(),
    conversation_limit=1000,
    sends=[
        Send(1, ("conversation", 0), "hello", "c1", reply_to=0),
        Send(1, ("conversation", 0), "hi", "c2"),
        Send(0, ("conversation", 1), "", "c1", files=2),
        Send(0, ("conversation", 1), "hello", "c2"),
        Send(2, ("conversation", 1), "hi", "c0"),
    ],
)


class World:
    """The people and conversations of one run, built from a mix on an empty database."""

    def __init__(self, mix: Mix) -> None:
        self.users = [User.objects.create_user(username=name) for name in NAMES]
        self.conversations: list[int] = []
        self.earlier: list[int] = []  # ids of the messages sent before, in order
        for first, second in mix.directs:
            conversation, _ = services.conversation_open_direct(
                user=self.users[first], other=self.users[second]
            )
            self.conversations.append(conversation.pk)
        for number, (creator, others, leaving) in enumerate(mix.groups):
            group = services.conversation_create_group(
                creator=self.users[creator],
                others=[self.users[other] for other in others - {creator}],
                title=f"group {number}",
            )
            self.conversations.append(group.pk)
            if leaving is not None and leaving in others | {creator}:
                groups.group_remove(
                    actor=self.users[leaving], conversation_id=group.pk, username=NAMES[leaving]
                )
        for send, deleted in mix.earlier:
            self._send_before(send, deleted)
        for blocker, blocked in mix.blocks:
            blocks.block_create(blocker=self.users[blocker], username=NAMES[blocked])
        User.objects.filter(username__in=[NAMES[i] for i in mix.inactive]).update(is_active=False)

    def _send_before(self, send: Send, deleted: bool) -> None:
        try:
            result = services.message_send(**self.request(send, fresh_sender=False))
        except ChatError:
            return
        if result.created:
            self.earlier.append(result.message.pk)
        if deleted and result.created:
            message_changes.message_delete(
                actor=self.users[send.sender], message_id=result.message.pk
            )

    def request(self, send: Send, *, fresh_sender: bool = True) -> dict:
        """Name the send's place as a socket would; a deactivated sender keeps their socket."""
        kind, target = send.place
        sender = self.users[send.sender]
        if fresh_sender:
            sender = User.objects.get(pk=sender.pk)
            sender.is_active = True  # as the socket holds them, from its handshake
        where: dict = {}
        if kind == "to":
            where["to"] = NAMES[target] if target is not None else "nobody"
        else:
            where["conversation_id"] = (
                self.conversations[target] if target is not None else 10**9 + 7
            )
        if send.reply_to is not None:
            where["reply_to"] = (
                self.earlier[send.reply_to] if send.reply_to < len(self.earlier) else 10**9 + 7
            )
        if send.files:
            where["attachments"] = [
                uploads.store_upload(
                    self.users[send.sender], SimpleUploadedFile(f"note{n}.txt", b"see you")
                ).pk
                for n in range(send.files)
            ]
        return {"sender": sender, "body": send.body, "client_id": send.client_id, **where}


def _wipe() -> None:
    Message.objects.all().delete()
    Conversation.objects.all().delete()
    User.objects.all().delete()
    ChangeStream.objects.all().delete()


def _conversation_name(conversation_id: int) -> str:
    conversation = Conversation.objects.get(pk=conversation_id)
    if conversation.kind == Conversation.Kind.GROUP:
        return conversation.title
    return "direct " + "+".join(
        sorted(
            User.objects.filter(
                pk__in=[int(part) for part in conversation.direct_key.split(":")]
            ).values_list("username", flat=True)
        )
    )


@dataclass
class Run:
    """What one path made of the sends: answers, rows, and everyone's stamps."""

    answers: list[tuple]
    rows: list[tuple]
    memberships: list[tuple]
    # username -> the messages they see, (sender, client_id, seq), in stamp order
    chains: dict[str, list[tuple]]
    last_seqs: dict[str, int]
    # (sender, client_id) -> the order it was committed in: (batch, stored alone, position)
    commit_order: dict[tuple[str, str], tuple[int, bool, int]]
    any_alone_stored: bool
    # Messages of the sends that quote one or carry files.
    with_parts: int = 0


def _answer(outcome_result, error) -> tuple:
    if error is not None:
        return ("refused", error.code, error.detail, error.client_id)
    message = outcome_result.message
    return (
        "acked",
        outcome_result.created,
        message.sender.username,
        message.client_id,
        message.body,
        _conversation_name(message.conversation_id),
    )


def _batches(mix: Mix) -> list[list[tuple[int, Send]]]:
    batches: list[list[tuple[int, Send]]] = [[]]
    for index, send in enumerate(mix.sends):
        if index in mix.cuts:
            batches.append([])
        batches[-1].append((index, send))
    return batches


def _run(mix: Mix, *, batched: bool, monkeypatch) -> Run:
    """Build the mix's world on an empty database and run its sends through one path."""
    _wipe()
    reset_all()
    world = World(mix)
    first_seqs = dict(ChangeStream.objects.values_list("user_id", "last_seq"))
    last_before = Message.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    answers: list[tuple] = [()] * len(mix.sends)
    pushes: list = []
    commit_order: dict[tuple[str, str], tuple[int, bool, int]] = {}
    alone: set[int] = set()
    with override_settings(
        CHAT_CONVERSATION_RATE=f"{mix.conversation_limit}/86400s",
        CHAT_RATE_LIMIT_PREFIX=f"paths-{uuid.uuid4().hex}",
    ):
        for number, batch in enumerate(_batches(mix)):
            requests = [_send_request(world.request(send)) for _, send in batch]
            if batched:
                outcomes, events = _send_batch(requests, monkeypatch, alone, offset=batch[0][0])
                pairs = [(o.result, o.error, o.events) for o in outcomes]
                pushes += events
            else:
                pairs = [_send_alone(request) for request in requests]
                pushes += [event for _, _, events in pairs for event in events]
            for (index, _), (result, error, _) in zip(batch, pairs, strict=True):
                answers[index] = _answer(result, error)
                if result is not None and result.created:
                    key = (result.message.sender.username, result.message.client_id)
                    commit_order[key] = (number, index in alone, index)
    any_alone = any(stored_alone for _, stored_alone, _ in commit_order.values())
    return _observe(world, answers, pushes, first_seqs, last_before, commit_order, any_alone)


def _send_request(request: dict) -> SendRequest:
    return SendRequest(**{**request, "attachments": tuple(request.get("attachments", ()))})


def _send_batch(requests, monkeypatch, alone: set[int], *, offset: int) -> tuple[list, list]:
    """Store one batch as the send queue does; note which sends it handed on alone."""
    send_alone = send_batch._send_alone

    def noted(request):
        # By identity: a retry equals the send it repeats.
        alone.add(offset + next(i for i, sent in enumerate(requests) if sent is request))
        return send_alone(request)

    monkeypatch.setattr(send_batch, "_send_alone", noted)
    outcomes, delivery = messages_send_many(requests)
    monkeypatch.setattr(send_batch, "_send_alone", send_alone)
    return outcomes, delivery.events


def _send_alone(request: SendRequest) -> tuple:
    with collecting() as events:
        try:
            result = services.message_send(
                sender=request.sender,
                body=request.body,
                client_id=request.client_id,
                to=request.to,
                conversation_id=request.conversation_id,
                reply_to=request.reply_to,
                attachments=list(request.attachments),
            )
        except ChatError as error:
            return None, error, []
    return result, None, list(events)


def _observe(world, answers, pushes, first_seqs, last_before, commit_order, any_alone) -> Run:
    names = dict(User.objects.values_list("pk", "username"))
    rows = sorted(
        (
            names[m.sender_id],
            _conversation_name(m.conversation_id),
            m.kind,
            m.body,
            m.client_id if m.kind == Message.Kind.TEXT else "",
            m.deleted_at is not None,
            m.sent_hash == (Message.hash_body(m.body) if m.sent_hash else ""),
            # What it quotes, by who sent that and as what; the names of its files.
            (names[m.reply_to.sender_id], m.reply_to.client_id) if m.reply_to_id else None,
            tuple(sorted(m.attachments.values_list("name", flat=True))),
        )
        for m in Message.objects.select_related("reply_to")
    )
    memberships = sorted(
        (_conversation_name(conversation_id), names[user_id], shown)
        for conversation_id, user_id, shown in Membership.objects.values_list(
            "conversation_id", "user_id", "visible_to_members"
        )
    )
    chains = {}
    for user in world.users:
        seen = Message.objects.filter(
            pk__gt=last_before, conversation__memberships__user=user
        ).order_by("seq")
        chains[user.username] = [(names[m.sender_id], m.client_id, m.seq) for m in seen]
        _check_pushes(user, pushes, chains[user.username], first_seqs.get(user.pk, 0))
    for conversation in Conversation.objects.filter(messages__pk__gt=last_before).distinct():
        newest = conversation.messages.order_by("-created_at").first()
        assert conversation.last_activity_at == newest.created_at
    # A stream not made yet is one at 0: the batch makes those of people it may open with.
    streams = ChangeStream.objects.exclude(last_seq=0).values_list("user_id", "last_seq")
    last_seqs = {names[user_id]: seq for user_id, seq in streams}
    sent = Message.objects.filter(pk__gt=last_before)
    with_parts = (
        sent.filter(reply_to__isnull=False).count()
        + sent.filter(attachments__isnull=False).distinct().count()
    )
    return Run(answers, rows, memberships, chains, last_seqs, commit_order, any_alone, with_parts)


def _check_pushes(user, pushes, chain: list[tuple], first_seq: int) -> None:
    """Check the user was pushed each message they see, once, prev_seq linking the stamps."""
    frames = [
        payload["frame"]
        for group, payload in pushes
        if group == f"user.{user.pk}" and payload["frame"]["type"] == "message.new"
    ]
    previous = first_seq
    for frame in frames:
        assert frame["prev_seq"] == previous, (user.username, frame)
        previous = frame["message"]["seq"]
    assert [frame["message"]["seq"] for frame in frames] == [seq for *_, seq in chain]


def _assert_agree(single: Run, batched: Run) -> None:
    assert batched.answers == single.answers
    assert batched.rows == single.rows
    assert batched.memberships == single.memberships
    for name, chain in single.chains.items():
        keys = [(sender, client_id) for sender, client_id, _ in batched.chains[name]]
        assert sorted(keys) == sorted((s, c) for s, c, _ in chain), name
        # The batch commits its own sends in the order they came, then those it handed on.
        assert keys == sorted(keys, key=batched.commit_order.__getitem__), name
    if not batched.any_alone_stored:
        assert batched.chains == single.chains
        assert batched.last_seqs == single.last_seqs


@pytest.mark.django_db(transaction=True)
def test_the_batch_and_the_single_path_answer_store_and_stamp_alike(monkeypatch, tmp_path):
    examples = []
    with_parts = []

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(mix=mixes())
    @example(mix=QUOTES_AND_FILES)
    def both_paths_agree(mix: Mix) -> None:
        examples.append(mix)
        single = _run(mix, batched=False, monkeypatch=monkeypatch)
        batched = _run(mix, batched=True, monkeypatch=monkeypatch)
        _assert_agree(single, batched)
        with_parts.append(batched.with_parts)

    with override_settings(MEDIA_ROOT=str(tmp_path / "media")):
        both_paths_agree()
    print(
        f"\n{len(examples)} mixes of sends ran through both paths, "
        f"storing {sum(with_parts)} replies and messages with files"
    )
    assert len(examples) >= MAX_EXAMPLES // 2
    assert sum(with_parts) >= 2, "no reply or file was stored"


def _round_trips(requests: list[SendRequest]) -> tuple[int, list]:
    """Store a batch; return how many queries it sent (one a round trip) and its answers."""
    with CaptureQueriesContext(connection) as queries:
        outcomes, _ = messages_send_many(requests)
    answers = [o.error.code if o.error else o.result.created for o in outcomes]
    return len(queries.captured_queries), answers


@pytest.mark.django_db(transaction=True)
def test_asking_the_rules_costs_the_batch_no_round_trip(make_user):
    users = [make_user(username=f"p{number}") for number in range(20)]
    pairs = []
    for first, second in zip(users[::2], users[1::2], strict=True):
        services.message_send(sender=first, body="hi", client_id="c-0", to=second.username)
        services.message_send(sender=second, body="hi", client_id="c-0", to=first.username)
        pairs.append(Conversation.direct_key_for(first.pk, second.pk))
    conversations = dict(Conversation.objects.values_list("direct_key", "pk"))
    blocks.block_create(blocker=users[1], username=users[0].username)

    one, one_answers = _round_trips(
        [SendRequest(users[2], "one", "c-1", conversation_id=conversations[pairs[1]])]
    )
    ten, ten_answers = _round_trips(
        [
            SendRequest(users[2 * n], "ten", "c-2", conversation_id=conversations[pairs[n]])
            for n in range(1, 10)
        ]
        + [SendRequest(users[0], "blocked", "c-2", conversation_id=conversations[pairs[0]])]
    )

    assert one_answers == [True] and ten_answers == [True] * 9 + ["cannot_send"]
    # The refusal is answered inside the batch's own trips, not by a send of its own.
    assert ten == one
    if connection.vendor == "postgresql":
        assert one == 2  # BEGIN and the reads under lock; the writes, COMMIT, the routes
