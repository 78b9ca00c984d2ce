"""Splitting long texts for Telegram: whole lines only, never a tag or an entity cut."""

from __future__ import annotations

from bot.sandbox.html_text import parse_html
from handlers.common import chunks, clip


def test_lines_that_fit_stay_one_text() -> None:
    assert chunks(["a", "b", "c"], limit=5) == ["a\nb\nc"]


def test_texts_break_between_lines_and_each_fits() -> None:
    lines = [f"• line {n:02} &amp; <b>more</b>" for n in range(40)]
    texts = chunks(lines, limit=100)
    assert len(texts) > 1
    assert all(len(text) <= 100 for text in texts)
    assert "\n".join(texts) == "\n".join(lines)  # nothing lost, nothing cut
    for text in texts:
        parse_html(text)


def test_paragraphs_keep_their_blank_line() -> None:
    assert chunks(["head", "one", "two"], limit=9, separator="\n\n") == ["head\n\none", "two"]


def test_a_line_too_long_alone_is_cut_with_an_ellipsis_outside_tags_and_entities() -> None:
    line = "<b>" + "x" * 5 + "&amp;" + "y" * 20 + "</b>"
    for limit in range(6, len(line)):
        cut = clip(line, limit)
        assert len(cut) <= limit and "…" in cut
        parse_html(cut)  # well-formed: no broken entity, every tag closed
    assert chunks([line, "next"], limit=12) == [clip(line, 12), "next"]
    assert clip("short", 10) == "short"
