"""The record document's page and properties, read from its XML: A4 with Czech margins, rows that
never break across a page, headers that repeat, the metadata, the draft's mark and the final's
list of who commented, the confidentiality note and the lines to sign."""

from __future__ import annotations

import dataclasses
import io
import zipfile
from datetime import UTC, datetime

import docx
from docx.document import Document as DocumentObject
from docx.oxml.ns import qn

from bot.core.i18n import Translator
from bot.core.method_record import MethodSection
from bot.core.record import (
    AttendanceLine,
    Reply,
    ReplyLine,
    TaskLine,
    record_docx,
)
from tests.bot.test_record import ENGLISH, PRAGUE, RECORD

CZECH = Translator("cs", PRAGUE)
UKRAINIAN = Translator("uk", PRAGUE)
FINAL = dataclasses.replace(
    RECORD,
    district="Cheb",
    replies=(
        ReplyLine("Policie Cheb", Reply.COMMENTED),
        ReplyLine("ZŠ Cheb", Reply.NO_COMMENTS, late=True),
        ReplyLine("", Reply.NONE, guardian=1),
    ),
)
DRAFT = dataclasses.replace(
    RECORD,
    district="Cheb",
    draft=True,
    comments_until=datetime(2026, 12, 8, 15, 0, tzinfo=UTC),
)


def _open(data: bytes) -> DocumentObject:
    return docx.Document(io.BytesIO(data))


def _xml(data: bytes, name: str) -> str:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return archive.read(name).decode()


def _texts(document: DocumentObject) -> list[str]:
    cells = [c.text for t in document.tables for row in t.rows for c in row.cells]
    return [p.text for p in document.paragraphs] + cells


def test_the_page_is_a4_with_czech_margins() -> None:
    data = record_docx(RECORD, ENGLISH)
    body = _open(data).element.body
    [section] = body.findall(qn("w:sectPr"))
    size = section.find(qn("w:pgSz"))
    assert (size.get(qn("w:w")), size.get(qn("w:h"))) == ("11906", "16838")
    margins = section.find(qn("w:pgMar"))
    for side in ("w:top", "w:bottom", "w:left", "w:right"):
        assert margins.get(qn(side)) == "1417", side  # 2.5 cm = 1417 twips


def test_no_row_breaks_across_a_page_and_headers_repeat() -> None:
    # 150 tasks: the plan runs over several pages.
    many = dataclasses.replace(
        FINAL,
        tasks=[TaskLine(f"Task {n}", "Petr Novák", RECORD.tasks[0].due) for n in range(150)],
    )
    document = _open(record_docx(many, ENGLISH))
    assert len(document.tables) == 5  # details, attendance, plan, answers, signatures
    for table in document.tables:
        rows = table._tbl.findall(qn("w:tr"))
        for row in rows:
            properties = row.find(qn("w:trPr"))
            assert properties is not None
            assert properties.find(qn("w:cantSplit")) is not None
    headed = [t for t in document.tables if t.rows[0].cells[0].text != "Date"]
    for table in headed:
        first, *rest = table._tbl.findall(qn("w:tr"))
        assert first.find(qn("w:trPr")).find(qn("w:tblHeader")) is not None
        assert all(row.find(qn("w:trPr")).find(qn("w:tblHeader")) is None for row in rest)
    plan = next(t for t in document.tables if t.rows[0].cells[0].text == "Task")
    assert len(plan.rows) == 151


def test_the_properties_are_the_case_the_day_the_district_and_the_language() -> None:
    data = record_docx(FINAL, CZECH)
    properties = _open(data).core_properties
    assert properties.title == "PK-2026-0001, 3. 12. 2026"
    assert properties.author == "Cheb"
    assert properties.last_modified_by == "Cheb"
    assert properties.language == "cs-CZ"
    assert properties.comments == properties.subject == properties.keywords == ""
    assert properties.content_status == ""
    app = _xml(data, "docProps/app.xml")
    assert "Round Table" in app and "Microsoft" not in app
    core = _xml(data, "docProps/core.xml")
    assert "python-docx" not in core
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert not [n for n in archive.namelist() if "thumbnail" in n]
        rels = archive.read("_rels/.rels").decode()
    assert "thumbnail" not in rels


def test_a_draft_is_marked_and_the_final_is_not() -> None:
    draft = _open(record_docx(DRAFT, ENGLISH))
    paragraphs = [p.text for p in draft.paragraphs]
    assert paragraphs[0] == "DRAFT"
    assert paragraphs[1].startswith("For comments until Dec 8, 2026")
    assert draft.core_properties.content_status == "Draft"
    assert [s.header.paragraphs[0].text for s in draft.sections] == ["DRAFT – PK-2026-0001"]
    assert "Comments on the draft" not in paragraphs
    final = _open(record_docx(FINAL, ENGLISH))
    assert "DRAFT" not in [p.text for p in final.paragraphs]
    assert final.core_properties.content_status == ""
    assert all(not p.text for s in final.sections for p in s.header.paragraphs)
    czech = _open(record_docx(DRAFT, CZECH))
    assert czech.paragraphs[0].text == "NÁVRH"
    assert _open(record_docx(DRAFT, UKRAINIAN)).paragraphs[0].text == "ПРОЄКТ"


def test_the_final_says_who_commented_who_had_none_and_who_did_not_answer() -> None:
    document = _open(record_docx(FINAL, ENGLISH))
    table = next(t for t in document.tables if t.rows[0].cells[1].text == "Answer")
    assert [[c.text for c in row.cells] for row in table.rows] == [
        ["Institution", "Answer"],
        ["Policie Cheb", "commented"],
        ["ZŠ Cheb", "no comments (after the deadline)"],
        ["Guardian 1", "did not answer"],
    ]
    nobody = _open(record_docx(dataclasses.replace(FINAL, replies=()), ENGLISH))
    assert "The draft went to no one" in "\n".join(_texts(nobody))


def test_the_note_the_signatures_and_the_minute_taker() -> None:
    record = dataclasses.replace(FINAL, minute_taker="Eva Malá")
    document = _open(record_docx(record, ENGLISH))
    texts = _texts(document)
    assert any(t.startswith("What was said at the case conference") for t in texts)
    signatures = document.tables[-1]
    rows = [[c.text for c in row.cells] for row in signatures.rows]
    assert rows[0] == ["Role", "Name", "Signature", "Date"]
    assert rows[1][:2] == ["Coordinator (key worker)", "Jana Svobodová"]
    assert rows[2][:2] == ["Minute-taker", "Eva Malá"]
    assert all(row[2].startswith("___") and row[3].startswith("___") for row in rows[1:])
    assert ["Minute-taker", "Eva Malá"] in [
        [c.text for c in r.cells] for r in document.tables[0].rows
    ]


def test_czech_names_stand_in_fields_not_in_sentences() -> None:
    record = dataclasses.replace(
        RECORD,
        attendance=(AttendanceLine("ZŠ Cheb", "Petr Dvořák", True, instead_of="Hana Králová"),),
    )
    document = _open(record_docx(record, CZECH))
    text = "\n".join(_texts(document))
    assert "Petr Dvořák\nzastupuje: Hana Králová" in text
    assert "(místo" not in text
    for label in ("Koordinace (klíčová osoba případu)", "Vyhotovení zápisu", "Mlčenlivost"):
        assert label in text, label


def test_the_answers_are_in_the_readers_language() -> None:
    document = _open(record_docx(FINAL, CZECH))
    table = next(t for t in document.tables if t.rows[0].cells[1].text == "Odpověď")
    assert [[c.text for c in row.cells] for row in table.rows][1:] == [
        ["Policie Cheb", "s vyjádřením"],
        ["ZŠ Cheb", "bez výhrad (po uplynutí lhůty)"],
        ["Zákonný zástupce 1", "bez odpovědi"],
    ]


def test_the_child_and_the_guardians_are_on_the_attendance_sheet() -> None:
    record = dataclasses.replace(
        RECORD,
        attendance=(
            AttendanceLine("", None, present=True, guardian=1),
            AttendanceLine("Policie Cheb", "Petr Novák", present=True),
        ),
        method=MethodSection(child_present=True),  # the coordinator marked that the child came
    )
    document = _open(record_docx(record, CZECH))
    table = next(t for t in document.tables if t.rows[0].cells[0].text == "Instituce")
    assert [[c.text for c in row.cells][:3] for row in table.rows][1:] == [
        ["Zákonný zástupce 1", "", "ano"],
        ["Policie Cheb", "Petr Novák", "ano"],
        ["Dítě", "", "ano"],
    ]
