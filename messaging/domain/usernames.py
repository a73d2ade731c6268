"""Which new usernames are accepted: none that hide characters, impersonate or are reserved.

People address each other by username, so a name must not pass for another one. A new
name is refused when it holds characters that show nothing, when it mixes the scripts
whose letters look alike (`alice` spelt with a Cyrillic a), when it looks like a name already
taken (same skeleton), or when it looks like a reserved name (`admin`, `Support`, ...).
Names taken before these rules keep working; only new ones are checked.

The skeleton follows the idea of Unicode's UTS #39 with a small map of its own: the
Cyrillic and Greek letters that look like Latin ones or digits, in both cases, plus the
digit/letter and letter-pair confusions most used to impersonate someone. It catches the
common tricks, not every one the full Unicode confusables table lists.
"""

from __future__ import annotations

import unicodedata

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db.models.functions import Length

# Cyrillic, Greek and unusual Latin letters that look like a plain Latin letter or digit,
# and what they pass for. They are named, not written: here too they would be as hard to
# tell from the Latin ones as in a username.
_LOOK_ALIKE_NAMES = """
CYRILLIC CAPITAL LETTER A                        A
CYRILLIC CAPITAL LETTER VE                       B
CYRILLIC CAPITAL LETTER IE                       E
CYRILLIC CAPITAL LETTER ZE                       3
CYRILLIC CAPITAL LETTER BYELORUSSIAN-UKRAINIAN I I
CYRILLIC CAPITAL LETTER JE                       J
CYRILLIC CAPITAL LETTER KA                       K
CYRILLIC CAPITAL LETTER EM                       M
CYRILLIC CAPITAL LETTER EN                       H
CYRILLIC CAPITAL LETTER O                        O
CYRILLIC CAPITAL LETTER ER                       P
CYRILLIC CAPITAL LETTER ES                       C
CYRILLIC CAPITAL LETTER TE                       T
CYRILLIC CAPITAL LETTER HA                       X
CYRILLIC CAPITAL LETTER DZE                      S
CYRILLIC CAPITAL LETTER STRAIGHT U               Y
CYRILLIC CAPITAL LETTER SHHA                     H
CYRILLIC CAPITAL LETTER QA                       Q
CYRILLIC CAPITAL LETTER WE                       W
CYRILLIC CAPITAL LETTER SOFT SIGN                b
CYRILLIC LETTER PALOCHKA                         l
CYRILLIC SMALL LETTER A                          a
CYRILLIC SMALL LETTER IE                         e
CYRILLIC SMALL LETTER ZE                         3
CYRILLIC SMALL LETTER BYELORUSSIAN-UKRAINIAN I   i
CYRILLIC SMALL LETTER JE                         j
CYRILLIC SMALL LETTER O                          o
CYRILLIC SMALL LETTER ER                         p
CYRILLIC SMALL LETTER ES                         c
CYRILLIC SMALL LETTER U                          y
CYRILLIC SMALL LETTER HA                         x
CYRILLIC SMALL LETTER DZE                        s
CYRILLIC SMALL LETTER STRAIGHT U                 y
CYRILLIC SMALL LETTER SHHA                       h
CYRILLIC SMALL LETTER KOMI DE                    d
CYRILLIC SMALL LETTER QA                         q
CYRILLIC SMALL LETTER WE                         w
CYRILLIC SMALL LETTER SOFT SIGN                  b
CYRILLIC SMALL LETTER PALOCHKA                   l
GREEK CAPITAL LETTER ALPHA                       A
GREEK CAPITAL LETTER BETA                        B
GREEK CAPITAL LETTER EPSILON                     E
GREEK CAPITAL LETTER ZETA                        Z
GREEK CAPITAL LETTER ETA                         H
GREEK CAPITAL LETTER IOTA                        I
GREEK CAPITAL LETTER KAPPA                       K
GREEK CAPITAL LETTER MU                          M
GREEK CAPITAL LETTER NU                          N
GREEK CAPITAL LETTER OMICRON                     O
GREEK CAPITAL LETTER RHO                         P
GREEK CAPITAL LETTER TAU                         T
GREEK CAPITAL LETTER UPSILON                     Y
GREEK CAPITAL LETTER CHI                         X
GREEK CAPITAL LUNATE SIGMA SYMBOL                C
GREEK CAPITAL LETTER YOT                         J
GREEK SMALL LETTER ALPHA                         a
GREEK SMALL LETTER ETA                           n
GREEK SMALL LETTER IOTA                          i
GREEK SMALL LETTER KAPPA                         k
GREEK SMALL LETTER MU                            u
GREEK SMALL LETTER NU                            v
GREEK SMALL LETTER OMICRON                       o
GREEK SMALL LETTER RHO                           p
GREEK SMALL LETTER UPSILON                       u
GREEK SMALL LETTER CHI                           x
GREEK LUNATE SIGMA SYMBOL                        c
GREEK LETTER YOT                                 j
LATIN SMALL LETTER DOTLESS I                     i
LATIN SMALL LETTER DOTLESS J                     j
LATIN SMALL LETTER ALPHA                         a
LATIN SMALL LETTER SCRIPT G                      g
"""
_LOOK_ALIKES = {
    unicodedata.lookup(name.strip()): latin
    for name, latin in (line.rsplit(" ", 1) for line in _LOOK_ALIKE_NAMES.strip().splitlines())
}
_LOOK_ALIKE_TABLE = str.maketrans(_LOOK_ALIKES)
# After case folding: digits read as letters, and letter pairs read as one.
_DIGITS_AS_LETTERS = str.maketrans({"0": "o", "1": "l"})
_PAIRS = (("rn", "m"), ("vv", "w"))

# Characters that show as nothing, or as blank space, without being in a category that
# says so (those are refused by category below): Hangul fillers, the blank Braille
# pattern, the combining grapheme joiner, Khmer inherent vowels, variation selectors.
_BLANK_CHARACTERS = frozenset(
    "\u115f\u1160\u3164\uffa0\u2800\u034f\u17b4\u17b5\u180b\u180c\u180d\u180f"
    + "".join(chr(code) for code in range(0xFE00, 0xFE10))
)
# Control, format (zero-width and direction marks), unassigned, private use, surrogates,
# and every kind of space or separator.
_BLANK_CATEGORIES = frozenset({"Cc", "Cf", "Cn", "Co", "Cs", "Zs", "Zl", "Zp"})

# Scripts with many letters that look alike: one name may use only one of them (it may
# still mix one of them with others, such as Latin letters with Japanese kana and kanji).
_CONFUSABLE_SCRIPTS = frozenset({"LATIN", "CYRILLIC", "GREEK"})
# The first word of a letter's Unicode name that is not the name of a script.
_NOT_SCRIPTS = frozenset({"MODIFIER", "FULLWIDTH", "HALFWIDTH", "SMALL", "CAPITAL"})


def normalize(username: str) -> str:
    """Return the username in NFKC form, as Django's user model stores it."""
    return unicodedata.normalize("NFKC", username)


def skeleton(username: str) -> str:
    """Return what the username looks like: two names with one skeleton pass for each other."""
    folded = normalize(username).translate(_LOOK_ALIKE_TABLE).casefold()
    folded = folded.translate(_DIGITS_AS_LETTERS)
    for pair, letter in _PAIRS:
        folded = folded.replace(pair, letter)
    return folded


def _scripts(username: str) -> set[str]:
    scripts = set()
    for character in username:
        if unicodedata.category(character).startswith("L"):
            script = unicodedata.name(character, "").split(" ")[0]
            if script and script not in _NOT_SCRIPTS:
                scripts.add(script)
    return scripts


def _has_blank(username: str) -> bool:
    return any(
        character in _BLANK_CHARACTERS or unicodedata.category(character) in _BLANK_CATEGORIES
        for character in username
    )


def _mixes_scripts_confusably(username: str) -> bool:
    """Tell whether the name mixes two of the scripts whose letters pass for each other."""
    return len(_scripts(username) & _CONFUSABLE_SCRIPTS) > 1


def _reserved_skeletons() -> set[str]:
    return {skeleton(name.strip()) for name in settings.CHAT_RESERVED_USERNAMES if name.strip()}


def _looks_like_someone(username: str) -> bool:
    """Tell whether an existing user's name has the same skeleton as this one."""
    wanted = skeleton(username)
    # A skeleton is at most three times (case folding) and at least half (letter pairs) as
    # long as its name: only names of those lengths are read, and only their text.
    candidates = (
        get_user_model()
        .objects.annotate(name_length=Length("username"))
        .filter(name_length__gte=(len(wanted) + 2) // 3, name_length__lte=2 * len(wanted))
        .values_list("username", flat=True)
    )
    return any(skeleton(name) == wanted for name in candidates.iterator(chunk_size=2000))


def validate_new_username(username: str) -> None:
    """Refuse a name for a new account that hides characters, impersonates or is reserved.

    Raise ValidationError with one message that says which rule the name broke.
    """
    username = normalize(username)
    if _has_blank(username):
        raise ValidationError(
            "A username cannot contain invisible, blank or control characters.",
            code="invisible_characters",
        )
    if _mixes_scripts_confusably(username):
        raise ValidationError(
            "A username cannot mix Latin, Cyrillic and Greek letters: many of them look alike.",
            code="mixed_scripts",
        )
    if skeleton(username) in _reserved_skeletons():
        raise ValidationError("This username is reserved.", code="reserved")
    if _looks_like_someone(username):
        raise ValidationError(
            "This username looks too much like someone else's. Please choose another.",
            code="confusable",
        )
