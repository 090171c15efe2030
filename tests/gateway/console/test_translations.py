"""The console's catalogs against its templates and modules (no browser, no stack).

Every string a template or console module marks with ``_()`` (or ``N_``, ``ngettext``) must have an
entry in every catalog, translated in every language but English (the source), with the same
``%(name)s`` placeholders; and no template may hold words outside ``_()`` (text between tags, and
the ``aria-label``, ``title`` and ``placeholder`` attributes people read). `make translations`
adds what is missing (docs/console.md, "Languages").
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.checkers import python_format
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from services.gateway.console.i18n import LANGUAGES

GATEWAY = Path(__file__).resolve().parents[3] / "services" / "gateway"
TEMPLATES = GATEWAY / "console" / "templates"
CATALOGS = GATEWAY / "translations"
METHOD_MAP = [("console/**.py", "python"), ("console/templates/**.html", "jinja2")]
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None, "lazy_gettext": None}


def marked_strings() -> dict[str, str]:
    """msgid -> where it was found, for every marked string of the console."""
    found = {}
    for filename, line, message, _comments, _context in extract_from_dir(
        str(GATEWAY), method_map=METHOD_MAP, keywords=KEYWORDS, comment_tags=(), strip_comment_tags=True
    ):
        msgid = message[0] if isinstance(message, tuple) else message
        if msgid:
            found.setdefault(msgid, f"{filename}:{line}")
    return found


def catalog(language: str):
    with open(CATALOGS / language / "LC_MESSAGES" / "messages.po", "rb") as handle:
        return read_po(handle, locale=language)


def test_the_console_marks_strings_and_every_language_has_a_catalog():
    assert len(marked_strings()) > 500
    assert sorted(path.name for path in CATALOGS.iterdir() if path.is_dir()) == sorted(LANGUAGES)


@pytest.mark.parametrize("language", sorted(LANGUAGES))
def test_every_marked_string_has_an_entry_translated_in_the_catalog(language):
    entries = catalog(language)
    missing = [f"{msgid!r} ({where})" for msgid, where in marked_strings().items() if msgid not in entries]
    assert not missing, f"{len(missing)} strings without an entry in {language}: run `make translations`\n" + "\n".join(
        missing[:20]
    )
    if language == "en":
        return  # the source language: an empty msgstr shows the msgid
    untranslated, fuzzy, bad_format = [], [], []
    for message in entries:
        if not message.id:
            continue
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if not all(strings):
            untranslated.append(message.id)
        if message.fuzzy:
            fuzzy.append(message.id)
        try:
            python_format(entries, message)
        except Exception as error:  # babel's TranslationError: placeholders differ
            bad_format.append(f"{message.id!r}: {error}")
    assert not untranslated, f"untranslated in {language}: {untranslated[:20]}"
    assert not fuzzy, f"fuzzy in {language} (check and clear the flag): {fuzzy[:20]}"
    assert not bad_format, f"placeholders differ in {language}: {bad_format[:10]}"


JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.S)
COMMENT = re.compile(r"\{#.*?#\}", re.S)
TAG = re.compile(r"<[^>]*>")
READ_ATTRIBUTES = re.compile(r'\b(?:aria-label|title|placeholder)="([^"]*)"')
WORD = re.compile(r"[A-Za-z]{2,}")


def test_no_template_holds_words_outside_the_catalogs():
    """A word typed into a template without _() would show in English on every language's page."""
    bare = []
    for path in sorted(TEMPLATES.rglob("*.html")):
        text = COMMENT.sub("", path.read_text(encoding="utf-8"))
        for value in READ_ATTRIBUTES.findall(text):
            if WORD.search(JINJA.sub("", value).replace("UTC", "")):
                bare.append(f"{path.relative_to(TEMPLATES)}: attribute {value!r}")
        outside = TAG.sub(" ", JINJA.sub(" ", text.replace("<!doctype html>", "")))
        for line in outside.splitlines():
            if WORD.search(line) and line.strip() not in ("UTC",):
                bare.append(f"{path.relative_to(TEMPLATES)}: {line.strip()!r}")
    assert not bare, "words outside _():\n" + "\n".join(bare)
