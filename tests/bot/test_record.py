"""The .docx record of a held case conference: its content, its privacy and its robustness."""

from __future__ import annotations

import dataclasses
import io
import zipfile
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import docx
import pytest
from docx.document import Document as DocumentObject
from docx.table import Table

from bot.core.i18n import Translator
from bot.core.models import TaskParty
from bot.core.record import AttendanceLine, RecordDocument, TaskLine, record_docx, record_filename

PRAGUE = ZoneInfo("Europe/Prague")
ENGLISH = Translator("en", PRAGUE)
CHILD = "Anička Dvořáková"
# Thursday 3 December 2026, 10:00–11:30 in Prague.
RECORD = RecordDocument(
    code="PK-2026-0001",
    starts_at=datetime(2026, 12, 3, 9, 0, tzinfo=UTC),
    duration_minutes=90,
    place="OSPOD Cheb, room 12",
    coordinator="Jana Svobodová",
    attendance=(
        AttendanceLine("Policie Cheb", "Petr Novák", present=True),
        AttendanceLine("ZŠ Cheb", "Marie Malá", present=True, instead_of="Karel Velký"),
        AttendanceLine("Pediatr", "Lucie Bílá", present=False),
        AttendanceLine("", None, present=False, guardian=1),
    ),
    summary="The child misses school often.\n\nThe mother asked for help.\nShe works nights.",
    tasks=(
        TaskLine("Talk to the class teacher", "Petr Novák (Policie Cheb)", date(2026, 12, 17)),
        TaskLine("Visit the family", "Eva Malá", date(2027, 1, 8), party=TaskParty.GUARDIAN),
        TaskLine("Join the football club", "Petr Novák", date(2027, 1, 9), party=TaskParty.CHILD),
    ),
)


def _open(data: bytes) -> DocumentObject:
    return docx.Document(io.BytesIO(data))


def _paragraphs(document: DocumentObject) -> list[str]:
    return [paragraph.text for paragraph in document.paragraphs]


def _rows(table: Table) -> list[list[str]]:
    return [[cell.text for cell in row.cells] for row in table.rows]


def _all_text(document: DocumentObject) -> str:
    """Every paragraph, every table cell and every core property of the document."""
    texts = _paragraphs(document)
    for table in document.tables:
        texts.extend(text for row in _rows(table) for text in row)
    properties = document.core_properties
    texts.extend(_metadata(document))
    texts.extend(
        [
            properties.identifier,
            properties.content_status,
            properties.language,
            properties.version,
        ]
    )
    return "\n".join(texts)


def _metadata(document: DocumentObject) -> list[str]:
    """The core properties a word processor shows as the document's title, author and the
    like."""
    properties = document.core_properties
    return [
        properties.title,
        properties.subject,
        properties.author,
        properties.last_modified_by,
        properties.comments,
        properties.keywords,
        properties.category,
    ]


def _table_with_header(document: DocumentObject, first: str) -> Table:
    return next(table for table in document.tables if table.rows[0].cells[0].text == first)


def test_the_record_has_the_meeting_and_its_details() -> None:
    document = _open(record_docx(RECORD, ENGLISH))
    paragraphs = _paragraphs(document)
    assert paragraphs[0] == "Case conference record"
    assert paragraphs[1] == "PK-2026-0001"
    details = _rows(document.tables[0])
    assert details == [
        ["Date", "Dec 3, 2026"],
        ["Time", "10:00\u202fAM–11:30\u202fAM"],
        ["Place", "OSPOD Cheb, room 12"],
        ["Coordinator", "Jana Svobodová"],
        ["Minute-taker", ""],
    ]
    headings = [
        p.text for p in document.paragraphs if p.style is not None and p.style.name == "Heading 1"
    ]
    assert headings == [
        "Attendance",
        "Summary of the situation",
        "Plan",
        "Review conference",
        "Confidentiality",
        "Signatures",
    ]


def test_the_attendance_table_has_everyone_and_room_to_sign() -> None:
    document = _open(record_docx(RECORD, ENGLISH))
    table = _table_with_header(document, "Institution")
    assert _rows(table) == [
        ["Institution", "Name", "Present", "Signature"],
        ["Policie Cheb", "Petr Novák", "yes", ""],
        ["ZŠ Cheb", "Marie Malá\nstands in for: Karel Velký", "yes", ""],
        ["Pediatr", "Lucie Bílá", "no", ""],
        ["Guardian 1", "", "no", ""],
    ]
    assert table.style is not None
    assert table.style.name == "Table Grid"
    assert all(run.bold for cell in table.rows[0].cells for run in cell.paragraphs[0].runs)
    assert all(row.height is not None and row.height > 0 for row in table.rows[1:])


def test_guardians_and_parties_are_named_in_the_coordinators_language() -> None:
    document = _open(record_docx(RECORD, Translator("cs", PRAGUE)))
    attendance = _rows(_table_with_header(document, "Instituce"))
    assert attendance[-1][0] == "Zákonný zástupce 1"
    plan = _rows(_table_with_header(document, "Úkol"))
    assert [row[1] for row in plan[2:]] == [
        "zákonný zástupce; dohlíží: Eva Malá",
        "dítě; dohlíží: Petr Novák",
    ]


def test_the_summary_keeps_its_paragraphs() -> None:
    paragraphs = _paragraphs(_open(record_docx(RECORD, ENGLISH)))
    start = paragraphs.index("Summary of the situation") + 1
    assert paragraphs[start : start + 3] == [
        "The child misses school often.",
        "The mother asked for help.",
        "She works nights.",
    ]
    assert paragraphs[start + 3] == "Plan"


def test_the_plan_lists_every_task_with_its_owner_and_due_date() -> None:
    document = _open(record_docx(RECORD, ENGLISH))
    table = _table_with_header(document, "Task")
    assert _rows(table) == [
        ["Task", "Owner", "Due date"],
        ["Talk to the class teacher", "Petr Novák (Policie Cheb)", "Dec 17, 2026"],
        ["Visit the family", "a guardian, followed up by Eva Malá", "Jan 8, 2027"],
        ["Join the football club", "the child, followed up by Petr Novák", "Jan 9, 2027"],
    ]
    assert table.style is not None
    assert table.style.name == "Table Grid"
    assert "No tasks were agreed." not in _paragraphs(document)


def test_a_plan_without_tasks_says_so() -> None:
    document = _open(record_docx(dataclasses.replace(RECORD, tasks=()), ENGLISH))
    assert "No tasks were agreed." in _paragraphs(document)
    assert all(table.rows[0].cells[0].text != "Task" for table in document.tables)


@pytest.mark.parametrize(
    ("review_at", "review_by", "polling", "expected"),
    [
        (datetime(2027, 3, 4, 8, 0, tzinfo=UTC), None, False, "Mar 4, 2027, 9:00\u202fAM"),
        (
            None,
            date(2027, 3, 31),
            True,
            "A poll for the date is running; at the latest by Mar 31, 2027.",
        ),
        (
            None,
            date(2027, 3, 31),
            False,
            "At the latest by Mar 31, 2027; the date is not set yet.",
        ),
        (None, None, False, "Not set."),
    ],
)
def test_the_review_conference_line(
    review_at: datetime | None, review_by: date | None, polling: bool, expected: str
) -> None:
    record = dataclasses.replace(
        RECORD, review_at=review_at, review_by=review_by, review_polling=polling
    )
    paragraphs = _paragraphs(_open(record_docx(record, ENGLISH)))
    assert paragraphs[paragraphs.index("Review conference") + 1] == expected


def test_the_childs_name_is_nowhere_unless_asked_for() -> None:
    data = record_docx(RECORD, ENGLISH)
    document = _open(data)
    assert CHILD not in _all_text(document)
    assert not any(line.startswith("Child:") for line in _paragraphs(document))
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for name in archive.namelist():
            assert CHILD.encode() not in archive.read(name), name
    assert "Dvo" not in record_filename(RECORD)


def test_the_childs_name_is_in_the_text_but_not_the_metadata_when_asked_for() -> None:
    record = dataclasses.replace(RECORD, child_name=CHILD)
    data = record_docx(record, ENGLISH)
    document = _open(data)
    assert f"Child: {CHILD}" in _paragraphs(document)
    properties = document.core_properties
    assert properties.title == "PK-2026-0001, Dec 3, 2026"
    assert properties.author == "Round Table"
    metadata = _metadata(document)
    assert not any(CHILD in text for text in metadata)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for name in archive.namelist():
            if name.startswith("docProps/"):
                assert CHILD.encode() not in archive.read(name), name
    assert record_filename(record) == record_filename(RECORD)


def test_the_metadata_names_the_bot_and_the_language() -> None:
    properties = _open(record_docx(RECORD, ENGLISH)).core_properties
    assert properties.title == "PK-2026-0001, Dec 3, 2026"
    assert properties.author == "Round Table"
    assert properties.last_modified_by == "Round Table"
    assert properties.comments == ""
    assert properties.language == "en-US"


def test_control_characters_do_not_break_the_file() -> None:
    record = dataclasses.replace(
        RECORD,
        summary="First\x00 line\x0b\r\n\r\nSecond\x1f line\ud800\x7f\x85",
        place="Room\x01 12",
        coordinator="Jana\x08 Svobodová",
        attendance=(AttendanceLine("Policie\x0c Cheb", "Petr\x1b Novák", present=True),),
        tasks=(TaskLine("Call\x02 the school", "Eva\x03", date(2026, 12, 17)),),
        child_name="Anička\x00",
    )
    document = _open(record_docx(record, ENGLISH))
    paragraphs = _paragraphs(document)
    start = paragraphs.index("Summary of the situation") + 1
    assert paragraphs[start : start + 2] == ["First line", "Second line"]
    assert "Child: Anička" in paragraphs
    assert ["Place", "Room 12"] in _rows(document.tables[0])
    assert ["Coordinator", "Jana Svobodová"] in _rows(document.tables[0])
    assert ["Policie Cheb", "Petr Novák", "yes", ""] in _rows(
        _table_with_header(document, "Institution")
    )
    assert ["Call the school", "Eva", "Dec 17, 2026"] in _rows(_table_with_header(document, "Task"))


def test_a_control_character_in_the_code_does_not_break_the_file() -> None:
    record = dataclasses.replace(RECORD, code="PK-2026\x00-0001")
    document = _open(record_docx(record, ENGLISH))
    assert document.core_properties.title == "PK-2026-0001, Dec 3, 2026"
    assert "PK-2026-0001" in _paragraphs(document)


def test_the_czech_record_is_a_file_too() -> None:
    czech = Translator("cs", PRAGUE)
    record = dataclasses.replace(RECORD, review_by=date(2027, 3, 31))
    document = _open(record_docx(record, czech))
    paragraphs = _paragraphs(document)
    assert "PK-2026-0001" in paragraphs
    assert any("31. 3. 2027" in text for text in paragraphs)
    assert document.core_properties.language == "cs-CZ"
    assert _rows(document.tables[0])[0][1] == czech.date(RECORD.starts_at)


def test_the_file_name_is_ascii_and_has_the_code() -> None:
    assert record_filename(RECORD) == "PK-2026-0001-2026-12-03.docx"
    odd = dataclasses.replace(RECORD, code="PK/2026 č\x00-7")
    name = record_filename(odd)
    assert name.isascii()
    assert name.endswith("-2026-12-03.docx")
    assert "/" not in name
    assert " " not in name
