"""Who a group message names: `@username` of a member, found in its text."""

from __future__ import annotations

import re
from collections.abc import Iterable

from messaging.domain.send_rules import Person

# An @ that starts a word (not the middle of an address such as bob@example.org), then
# the characters a username may hold.
_MENTION = re.compile(r"(?<![\w@.+-])@([\w.@+-]{1,150})")
# A name may be followed by punctuation that is not part of it: "thanks @bob."
_TRAILING = ".@+-"


def mentioned(body: str, members: Iterable[Person], sender_id: int) -> list[int]:
    """Return the ids of the members, other than the sender, named as @username, in order."""
    if "@" not in body:
        return []
    by_name = {person.username.casefold(): person.id for person in members}
    by_name = {name: user for name, user in by_name.items() if user != sender_id}
    found: list[int] = []
    for match in _MENTION.finditer(body):
        name = match.group(1)
        user_id = by_name.get(name.casefold())
        while user_id is None and name and name[-1] in _TRAILING:
            name = name[:-1]
            user_id = by_name.get(name.casefold())
        if user_id is not None and user_id not in found:
            found.append(user_id)
    return found
