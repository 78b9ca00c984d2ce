"""The catalogs follow docs/glossary.md: no Czech or Ukrainian translation uses a variant the
glossary forbids, except where its table of allowed uses says why one message needs it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from bot.core.i18n import LOCALES_DIR

GLOSSARY = Path(__file__).resolve().parent.parent / "docs" / "glossary.md"
CHECKED = ("cs", "uk")


@dataclass(frozen=True)
class Forbidden:
    lang: str
    pattern: str
    instead: str
    scope: re.Pattern[str] | None  # only in translations of msgids that match

    @property
    def regex(self) -> re.Pattern[str]:
        """The pattern, at a word's edge where it begins or ends with a letter."""
        head = r"(?<!\w)" if self.pattern[0].isalpha() else ""
        ends_in_word = self.pattern[-1].isalpha() or self.pattern.endswith((r"\w*", r"\w+"))
        return re.compile(head + f"(?:{self.pattern})" + (r"(?!\w)" if ends_in_word else ""), re.I)


def _rows(name: str) -> list[list[str]]:
    """The cells of the table between <!-- name:start --> and <!-- name:end -->, header off."""
    text = GLOSSARY.read_text(encoding="utf-8")
    found = re.search(f"<!-- {name}:start -->(.*?)<!-- {name}:end -->", text, re.S)
    assert found, f"docs/glossary.md has no {name} table"
    rows = []
    for line in found.group(1).strip().splitlines()[2:]:
        cells = re.split(r"(?<!\\)\|", line.strip().strip("|"))
        rows.append([cell.strip().replace(r"\|", "|") for cell in cells])
    return rows


def _code(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def forbidden() -> list[Forbidden]:
    found = []
    for lang, patterns, instead, scope in _rows("forbidden"):
        where = None if scope == "–" else re.compile(_code(scope)[0], re.I)
        found += [Forbidden(lang, pattern, instead, where) for pattern in _code(patterns)]
    return found


def allowed() -> set[tuple[str, str, str]]:
    return {
        (lang, _code(msgid)[0], _code(pattern)[0]) for lang, msgid, pattern, _ in _rows("allowed")
    }


def translations(lang: str) -> list[tuple[str, str]]:
    """(msgid, each translated form) of a catalog."""
    with (LOCALES_DIR / lang / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        catalog = read_po(handle, locale=lang)
    pairs = []
    for message in catalog:
        if not message.id:
            continue
        msgid = message.id if isinstance(message.id, str) else message.id[0]
        forms = message.string if isinstance(message.string, tuple | list) else (message.string,)
        pairs += [(msgid, str(form)) for form in forms]
    return pairs


def test_the_glossary_lists_forbidden_variants_for_both_languages() -> None:
    rules = forbidden()
    assert {rule.lang for rule in rules} == set(CHECKED)
    assert any(rule.pattern == r"podnět\w*" for rule in rules)
    assert any(rule.pattern == r"повідомлен\w*" and rule.scope for rule in rules)


def test_the_patterns_find_what_they_forbid() -> None:
    """The matching itself: word edges, case, endings and scopes."""
    rules = {rule.pattern: rule for rule in forbidden()}
    assert rules[r"anket\w*"].regex.search("Nová Anketa")
    assert not rules[r"anket\w*"].regex.search("banketu")
    assert rules["«"].regex.search("Případ «X»")
    assert rules["mě"].regex.search("na mě")
    assert not rules["mě"].regex.search("změnit")
    assert rules[r"(?<!кримінальні )правопорушен\w*"].regex.search("правопорушення")
    assert not rules[r"(?<!кримінальні )правопорушен\w*"].regex.search("кримінальні правопорушення")
    scope = rules[r"повідомлен\w*"].scope
    assert scope is not None and scope.search("Your referral {code}")
    assert not scope.search("I deleted your message")


@pytest.mark.parametrize("lang", CHECKED)
def test_no_translation_uses_a_forbidden_variant(lang: str) -> None:
    allow = allowed()
    rules = [rule for rule in forbidden() if rule.lang == lang]
    found = [
        f"{msgid!r}: {text!r} uses {rule.pattern!r} (use: {rule.instead})"
        for msgid, text in translations(lang)
        for rule in rules
        if (rule.scope is None or rule.scope.search(msgid))
        and (lang, msgid, rule.pattern) not in allow
        and rule.regex.search(text)
    ]
    assert found == []


def test_every_allowed_use_is_still_needed() -> None:
    """An allowed use whose message no longer needs it is taken off the list."""
    rules = {(rule.lang, rule.pattern): rule for rule in forbidden()}
    for lang, msgid, pattern in allowed():
        texts = [text for mid, text in translations(lang) if mid == msgid]
        assert texts, f"{msgid!r} is no longer in the {lang} catalog"
        assert any(rules[lang, pattern].regex.search(text) for text in texts), (lang, msgid)
