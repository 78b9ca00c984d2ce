"""Telegram's HTML parse mode: validation, the plain text shown and its message entities."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any, NoReturn

# Tags that map straight to one entity type.
_SIMPLE_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "code": "code",
    "pre": "pre",
}
# Telegram knows only these named entities; every numeric one is fine.
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}


class HtmlParseError(ValueError):
    """Markup Telegram refuses; str() is the reason that follows "can't parse entities: "."""


@dataclass
class FormattedText:
    """Text as Telegram shows it, with entity offsets in UTF-16 code units."""

    text: str
    entities: list[dict[str, Any]] = field(default_factory=list)


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the unit Telegram uses for entity offsets."""
    return len(text.encode("utf-16-le")) // 2


def parse_html(source: str) -> FormattedText:
    """Parse HTML-mode text like Telegram does; raises HtmlParseError on invalid markup."""
    parser = _TelegramHtmlParser(source)
    parser.feed(source)
    parser.close()
    return parser.result()


@dataclass
class _OpenTag:
    name: str
    entity: dict[str, Any] | None  # None when the tag adds no entity of its own
    start: int


class _TelegramHtmlParser(HTMLParser):
    def __init__(self, source: str) -> None:
        # Entity references must reach us unconverted so unknown ones can be refused.
        super().__init__(convert_charrefs=False)
        self._source = source
        self._line_starts = _line_starts(source)
        self._chunks: list[str] = []
        self._offset = 0
        self._open: list[_OpenTag] = []
        self._entities: list[dict[str, Any]] = []

    def result(self) -> FormattedText:
        if self._open:
            name = self._open[-1].name
            raise HtmlParseError(f'Can\'t find end tag corresponding to start tag "{name}"')
        entities = sorted(self._entities, key=lambda e: (e["offset"], -e["length"]))
        return FormattedText("".join(self._chunks), entities)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        entity = self._entity_for(tag, dict(attrs))
        self._open.append(_OpenTag(tag, entity, self._offset))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # Telegram has no void tags, so "<br/>" and friends are unsupported.
        self._unsupported_tag(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self._open:
            raise HtmlParseError(f"Unexpected end tag at byte offset {self._byte_offset()}")
        top = self._open.pop()
        if top.name != tag:
            raise HtmlParseError(
                f"Unmatched end tag at byte offset {self._byte_offset()}, "
                f'expected "</{top.name}>", found "</{tag}>"'
            )
        if top.entity is not None and self._offset > top.start:
            top.entity.update(offset=top.start, length=self._offset - top.start)
            self._entities.append(top.entity)

    def handle_data(self, data: str) -> None:
        # html.parser passes a "<" that starts no valid tag through as text; Telegram refuses it.
        if "<" in data:
            offset = self._byte_offset(data.index("<"))
            raise HtmlParseError(f"Unsupported start tag at byte offset {offset}")
        self._append(data)

    def handle_entityref(self, name: str) -> None:
        if name not in _NAMED_ENTITIES:
            raise HtmlParseError(f"Unsupported HTML entity at byte offset {self._byte_offset()}")
        self._append(_NAMED_ENTITIES[name])

    def handle_charref(self, name: str) -> None:
        try:
            code = int(name[1:], 16) if name[:1] in ("x", "X") else int(name)
            self._append(chr(code))
        except (ValueError, OverflowError):
            raise HtmlParseError(
                f"Invalid HTML entity at byte offset {self._byte_offset()}"
            ) from None

    def handle_comment(self, data: str) -> None:
        self._unsupported_tag("!--")

    def handle_decl(self, decl: str) -> None:
        self._unsupported_tag("!")

    def unknown_decl(self, data: str) -> None:
        self._unsupported_tag("!")

    def handle_pi(self, data: str) -> None:
        self._unsupported_tag("?")

    def _entity_for(self, tag: str, attrs: dict[str, str | None]) -> dict[str, Any] | None:
        if tag == "code" and self._open and self._open[-1].name == "pre":
            self._set_pre_language(attrs)
            return None
        if tag in _SIMPLE_TAGS:
            return {"type": _SIMPLE_TAGS[tag]}
        if tag == "a":
            href = attrs.get("href")
            return {"type": "text_link", "url": href} if href else None
        if tag == "span":
            if attrs.get("class") != "tg-spoiler":
                raise HtmlParseError('Tag "span" must have class "tg-spoiler"')
            return {"type": "spoiler"}
        if tag == "blockquote":
            expandable = "expandable" in attrs
            return {"type": "expandable_blockquote" if expandable else "blockquote"}
        if tag == "tg-emoji":
            emoji_id = attrs.get("emoji-id")
            if not emoji_id:
                raise HtmlParseError('Tag "tg-emoji" must have attribute "emoji-id"')
            return {"type": "custom_emoji", "custom_emoji_id": emoji_id}
        self._unsupported_tag(tag)

    def _set_pre_language(self, attrs: dict[str, str | None]) -> None:
        # <pre><code class="language-x"> is one pre entity with a language, not two entities.
        pre_entity = self._open[-1].entity
        css_class = attrs.get("class") or ""
        if pre_entity is not None and css_class.startswith("language-"):
            pre_entity["language"] = css_class.removeprefix("language-")

    def _unsupported_tag(self, tag: str) -> NoReturn:
        offset = self._byte_offset()
        raise HtmlParseError(f'Unsupported start tag "{tag}" at byte offset {offset}')

    def _append(self, text: str) -> None:
        self._chunks.append(text)
        self._offset += utf16_len(text)

    def _byte_offset(self, extra_chars: int = 0) -> int:
        # getpos() is the (line, column) where the current token starts, in characters.
        line, column = self.getpos()
        index = self._line_starts[line - 1] + column + extra_chars
        return len(self._source[:index].encode("utf-8"))


def _line_starts(source: str) -> list[int]:
    starts = [0]
    starts.extend(index + 1 for index, char in enumerate(source) if char == "\n")
    return starts
