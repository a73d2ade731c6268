"""Languages: every text a person reads comes from the catalogues, in their language.

The pages follow the browser's Accept-Language (or the language chosen in the settings);
English stays the default; Arabic pages run right to left.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import polib
import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from tests.factories import UserFactory

TEMPLATES = Path(settings.BASE_DIR) / "templates"
# Attributes a person reads or hears.
READ_ATTRIBUTES = {"aria-label", "title", "placeholder", "alt", "data-label", "data-hint"}
# Template syntax that yields translated or dynamic text, removed before looking for text left.
TRANSLATED = re.compile(
    r"\{% block body_class %\}.*?\{% endblock %\}"
    r"|\{% blocktranslate.*?%\}.*?\{% endblocktranslate %\}"
    r"|\{% translate .*?%\}|\{\{.*?\}\}|\{#.*?#\}|\{%.*?%\}",
    re.S,
)
# Words that are the same in every language: code, headers and letters drawn as icons.
UNTRANSLATED = {"C", "·", "· UTC"}


class _Texts(HTMLParser):
    """Collect the text nodes and read attributes outside scripts, styles and drawings."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in {"script", "style", "svg"}:
            self._skip += 1
        for name, value in attrs:
            if name in READ_ATTRIBUTES and value:
                self.found.append(value)

    def handle_endtag(self, tag: str) -> None:
        if tag in {"script", "style", "svg"}:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.found.append(data)


def untranslated_texts(source: str) -> list[str]:
    """Return the words of a template that no translate tag covers."""
    parser = _Texts()
    parser.feed(TRANSLATED.sub("", source))
    texts = (" ".join(text.split()) for text in parser.found)
    return [
        text
        for text in texts
        if re.search(r"[^\W\d_]", text) and text not in UNTRANSLATED and "<" not in text
    ]


def _templates(suffix: str) -> list[Path]:
    return sorted(TEMPLATES.rglob(f"*.{suffix}"))


@pytest.mark.parametrize("template", _templates("html"), ids=lambda p: p.name)
def test_every_text_in_a_page_is_in_the_catalogues(template: Path) -> None:
    assert untranslated_texts(template.read_text()) == []


@pytest.mark.parametrize("template", _templates("txt"), ids=lambda p: p.name)
def test_every_line_of_a_plain_text_email_is_in_the_catalogues(template: Path) -> None:
    left = TRANSLATED.sub("", template.read_text())
    # What stays is the message list: names, times and bodies drawn from the data.
    assert set(re.findall(r"[^\W\d_]{2,}", left)) <= {"UTC"}


def test_the_check_catches_a_sentence_outside_the_catalogues() -> None:
    source = '<p>{% translate "Hello" %}</p><button aria-label="Close">Send now</button>'
    assert untranslated_texts(source) == ["Close", "Send now"]


def test_each_shipped_language_has_a_compiled_catalogue() -> None:
    for code, _name in settings.LANGUAGES:
        if code == "en":
            continue
        assert (Path(settings.BASE_DIR) / "locale" / code / "LC_MESSAGES" / "django.mo").exists()


@pytest.mark.django_db
def test_the_login_page_speaks_the_browsers_language() -> None:
    page = Client(HTTP_ACCEPT_LANGUAGE="de-DE,de;q=0.9,en;q=0.5").get(reverse("login"))
    html = page.content.decode()
    assert '<html lang="de" dir="ltr" ' in html
    assert "Bei Chat anmelden" in html


@pytest.mark.django_db
def test_english_stays_the_default() -> None:
    for header in ("en-US,en;q=0.9", "fi-FI", ""):
        html = Client(HTTP_ACCEPT_LANGUAGE=header).get(reverse("login")).content.decode()
        assert '<html lang="en" dir="ltr" ' in html
        assert "Log in to Chat" in html


@pytest.mark.django_db
def test_arabic_pages_run_right_to_left() -> None:
    client = Client(HTTP_ACCEPT_LANGUAGE="ar")
    client.force_login(UserFactory())
    html = client.get(reverse("inbox")).content.decode()
    assert '<html lang="ar" dir="rtl" ' in html
    assert "لا توجد محادثات بعد" in html


@pytest.mark.django_db
def test_a_language_chosen_in_the_settings_wins_over_the_browsers() -> None:
    client = Client(HTTP_ACCEPT_LANGUAGE="de")
    client.force_login(UserFactory())
    chosen = client.post(reverse("set_language"), {"language": "es", "next": reverse("settings")})
    assert chosen.status_code == 302
    html = client.get(reverse("settings")).content.decode()
    assert '<html lang="es" dir="ltr" ' in html
    assert "Ajustes" in html


@pytest.mark.django_db
def test_a_form_error_is_in_the_chosen_language() -> None:
    page = Client(HTTP_ACCEPT_LANGUAGE="es").post(
        reverse("signup"), {"username": "ana", "password1": "x", "password2": "y"}
    )
    assert "Correo electrónico (opcional)" in page.content.decode()


@pytest.mark.django_db
def test_the_problem_page_is_translated() -> None:
    client = Client(HTTP_ACCEPT_LANGUAGE="de")
    client.force_login(UserFactory())
    page = client.get(reverse("direct", args=["nobody-here"]))
    assert page.status_code == 404
    assert "nobody-here" in page.content.decode()
    assert "Das hat nicht geklappt" in page.content.decode()


@pytest.mark.django_db
def test_the_client_texts_come_in_the_pages_language() -> None:
    catalog = Client(HTTP_ACCEPT_LANGUAGE="ar").get(reverse("json-catalog")).json()["catalog"]
    assert catalog["Connection lost. Reconnecting…"] == "انقطع الاتصال. جارٍ إعادة الاتصال…"
    assert len(catalog["%(count)s file"]) == 6


CLIENT = Path(settings.BASE_DIR) / "static" / "messaging"
# A string literal with words in it, where a person reads it: put on the page or returned.
SHOWN_LITERAL = re.compile(
    r"""(?:textContent|title|placeholder|ariaLabel)\s*=\s*["'`][^"'`]*[A-Za-z]"""
    r"""|setAttribute\(\s*"(?:aria-label|title|placeholder)",\s*["'`][^"'`]*[A-Za-z]"""
    r"""|(?:\btext|\btitle|"aria-label"|placeholder):\s*["'`][^"'`]*[A-Za-z]"""
    r"""|return\s+["'`][A-Z][a-z]"""
    r"""|(?:showNotice|announce|status)\(\s*["'`][^"'`]*[A-Za-z]"""
)
LITERAL = re.compile(r"""(["'`])((?:(?!\1).)*)\1""")


def _glued_words(code: str) -> bool:
    """Tell whether a line glues words in a literal to another piece of a sentence."""
    for match in LITERAL.finditer(code):
        words = match.group(2)
        glued = code[: match.start()].rstrip().endswith("+") or code[
            match.end() :
        ].lstrip().startswith("+")
        if (
            glued
            and re.search(r"[A-Za-z]{2}", words)
            and (" " in words or re.match(r"[A-Z][a-z]", words))
        ):
            return True
    return False


def client_texts_outside_gettext(source: str) -> list[str]:
    """Return the lines of a client module that show a literal text not from the catalogue."""
    found = []
    for line in source.splitlines():
        # Class names say nothing to a person; the rest of their line may.
        code = re.sub(r"""class:\s*(["'`])[^"'`]*\1""", "", line.split("//")[0])
        # Comments, texts from the catalogue, selectors, errors for the console.
        if code.lstrip().startswith(("*", "/*")) or re.search(
            r"gettext\(|new Error\(|querySelector", code
        ):
            continue
        if SHOWN_LITERAL.search(code) or _glued_words(code):
            found.append(line.strip())
    return found


def _client_modules() -> list[Path]:
    return sorted(CLIENT.rglob("*.js"))


@pytest.mark.parametrize(
    "module", _client_modules(), ids=lambda p: p.relative_to(CLIENT).as_posix()
)
def test_the_client_shows_no_text_outside_the_catalogues(module: Path) -> None:
    assert client_texts_outside_gettext(module.read_text()) == []


def test_the_client_check_catches_a_sentence_put_together() -> None:
    source = (
        'node.textContent = "Hello";\nlabel = name + " is typing";\nok = gettext("Hi");\n'
        'el("ul", { class: "chips", "aria-label": "Chosen people" });\n'
        'el("ul", { class: "chips", "aria-label": gettext("Chosen people") });\n'
        'app.notices.showNotice("You are offline.");'
    )
    assert client_texts_outside_gettext(source) == [
        'node.textContent = "Hello";',
        'label = name + " is typing";',
        'el("ul", { class: "chips", "aria-label": "Chosen people" });',
        'app.notices.showNotice("You are offline.");',
    ]


@pytest.mark.django_db
def test_the_apis_field_errors_are_in_the_callers_language() -> None:
    client = Client(HTTP_ACCEPT_LANGUAGE="es")
    client.force_login(UserFactory())
    delay = client.patch(
        "/api/me/settings/", {"email_delay_minutes": 0}, content_type="application/json"
    )
    assert delay.status_code == 400
    assert delay.json()["errors"] == {"email_delay_minutes": ["Debe estar entre 1 y 1440."]}
    address = client.put(
        "/api/me/email/", {"email": "not an address"}, content_type="application/json"
    )
    assert address.status_code == 400
    assert address.json()["errors"] == {"email": ["Escribe una dirección de correo válida."]}


CATALOGUES = sorted((Path(settings.BASE_DIR) / "locale").glob("*/LC_MESSAGES/*.po"))


def _catalogue_id(path: Path) -> str:
    return f"{path.parts[-3]}/{path.name}"


@pytest.mark.parametrize("catalogue", CATALOGUES, ids=_catalogue_id)
def test_every_text_is_translated_with_each_plural_form_its_language_has(catalogue: Path) -> None:
    source = polib.pofile(str(catalogue))
    forms = int(re.search(r"nplurals\s*=\s*(\d+)", source.metadata["Plural-Forms"]).group(1))
    assert [entry.msgid for entry in source.untranslated_entries()] == []
    assert [entry.msgid for entry in source.fuzzy_entries()] == []
    # A plural text short of a form shows English for the counts of that form.
    short = [
        entry.msgid
        for entry in source
        if entry.msgid_plural and sum(1 for text in entry.msgstr_plural.values() if text) != forms
    ]
    assert short == []


@pytest.mark.parametrize("catalogue", CATALOGUES, ids=_catalogue_id)
def test_the_compiled_catalogue_says_what_its_source_says(catalogue: Path) -> None:
    def texts(entries) -> dict:
        return {
            (entry.msgctxt, entry.msgid): (entry.msgstr, dict(entry.msgstr_plural))
            for entry in entries
            if entry.msgid and not entry.obsolete
        }

    compiled = polib.mofile(str(catalogue.with_suffix(".mo")))
    assert texts(compiled) == texts(polib.pofile(str(catalogue)).translated_entries())
