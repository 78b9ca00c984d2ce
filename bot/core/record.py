"""The record ("zápis") of a held case conference as an editable Word document (.docx).

The coordinator gets the file to complete, print and have signed: who was invited and who came,
the summary of the situation, the agreed plan and the review conference, a confidentiality note,
and lines for the signatures. A draft (circulated for comments) is marked so on top; the final
record says which institutions commented. The page is A4 with 2.5 cm margins (the Czech office
norm); a table row never breaks across pages and a table's header repeats on every page.

Names stand in fields ("stands in for: …"), never inside a sentence, which Czech would decline.
The child's name is in it only when the coordinator asked for it, and never in the file's
metadata. Every string that comes from people passes through `_clean`, so a stray control
character cannot break the file.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from io import BytesIO
from typing import TYPE_CHECKING

from babel.dates import format_date

from bot.core.circulation_tables import Reply
from bot.core.i18n import Translator
from bot.core.method_record import MethodSection, add_method_section, child_attendance
from bot.core.models import TaskParty

if TYPE_CHECKING:
    from docx.document import Document as DocumentObject
    from docx.table import Table

AUTHOR = "Round Table"
TABLE_STYLE = "Table Grid"
# Word's language tags for the bot's locales; the proofing language of the whole document.
LANGUAGE_TAGS = {"cs": "cs-CZ", "en": "en-US", "uk": "uk-UA"}
# Room to sign on paper in each attendance row.
SIGNATURE_ROW_CM = 1.0
# A4 in twentieths of a point (Word's unit), and the margins of Czech office documents.
A4_TWIPS = (11906, 16838)
MARGIN_CM = 2.5
# What the extended properties (docProps/app.xml) say: the template's said "Microsoft Macintosh
# Word" and counted words of an empty page.
APP_XML = (
    "<?xml version='1.0' encoding='UTF-8' standalone='yes'?>\n"
    '<Properties xmlns="http://schemas.openxmlformats.org/officeDocument/2006/extended-properties">'
    "<Application>Round Table</Application><DocSecurity>0</DocSecurity></Properties>"
)
# Everything XML 1.0 does not allow (control characters other than tab, newline and carriage
# return, lone surrogates, U+FFFE and U+FFFF), and the control characters it merely discourages
# (DEL and C1), which no one means to type either.
_INVALID_XML = re.compile("[^\t\n\r\x20-\x7e\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class AttendanceLine:
    institution: str
    person: str | None
    present: bool
    instead_of: str | None = None
    guardian: int = 0  # a guardian's number (their name is not kept); 0 for an institution


@dataclass(frozen=True)
class TaskLine:
    title: str
    owner: str  # the member who answers for it
    due: dt.date
    party: TaskParty = TaskParty.MEMBER  # the child's or a guardian's: followed up by the owner


@dataclass(frozen=True)
class ReplyLine:
    """One institution's (or guardian's) answer to the circulated draft."""

    institution: str
    reply: Reply
    late: bool = False  # after the deadline for comments
    guardian: int = 0


@dataclass(frozen=True)
class RecordDocument:
    code: str
    starts_at: dt.datetime
    duration_minutes: int
    place: str
    coordinator: str
    attendance: Sequence[AttendanceLine]
    summary: str
    tasks: Sequence[TaskLine]
    review_at: dt.datetime | None = None
    review_by: dt.date | None = None
    review_polling: bool = False  # a poll for the review's date is running
    child_name: str | None = None
    method: MethodSection | None = None  # the kind, the goal and the child's voice
    district: str = ""  # the document's author; the bot's name when unknown
    draft: bool = False  # circulated for comments, not final yet
    comments_until: dt.datetime | None = None  # a draft's deadline for comments
    replies: Sequence[ReplyLine] | None = None  # the circulation's answers (None: none held)
    minute_taker: str | None = None  # None: a blank field to write the name in


def _clean(text: str) -> str:
    """The text without the characters an XML 1.0 document may not contain."""
    return _INVALID_XML.sub("", text)


def _paragraphs(text: str) -> list[str]:
    """The non-empty lines of a free text, each a paragraph of its own."""
    lines = _clean(text).replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return [line.strip() for line in lines if line.strip()]


def _row_flag(row: object, tag: str) -> None:
    """A row property that is on (`w:cantSplit`, `w:tblHeader`), in the schema's order."""
    from docx.oxml import OxmlElement  # noqa: PLC0415 - see record_docx
    from docx.oxml.ns import qn  # noqa: PLC0415

    properties = row._tr.get_or_add_trPr()  # type: ignore[attr-defined]
    flag = OxmlElement(tag)
    flag.set(qn("w:val"), "true")
    # CT_TrPr's sequence: ... cantSplit, trHeight, tblHeader, ...; Word and LibreOffice read
    # either order, the schema asks for this one.
    height = properties.find(qn("w:trHeight"))
    if tag == "w:cantSplit" and height is not None:
        height.addprevious(flag)
    else:
        properties.append(flag)


def _table(
    document: DocumentObject, rows: Sequence[Sequence[str]], *, header: Sequence[str] = ()
) -> Table:
    """A grid table whose rows never break across a page; a header, if any, is bold and
    repeats on every page the table spans. A value's lines are paragraphs of its cell."""
    columns = len(header) if header else len(rows[0])
    table: Table = document.add_table(rows=len(rows) + bool(header), cols=columns)
    table.style = document.styles[TABLE_STYLE]
    body = table.rows[1:] if header else table.rows[:]
    if header:
        _row_flag(table.rows[0], "w:tblHeader")
        for cell, text in zip(table.rows[0].cells, header, strict=True):
            cell.paragraphs[0].add_run(text).bold = True
    for row, values in zip(body, rows, strict=True):
        for cell, value in zip(row.cells, values, strict=True):
            cell.text = value
    for row in table.rows:
        _row_flag(row, "w:cantSplit")
    return table


def _set_page(document: DocumentObject) -> None:
    """A4, portrait, 2.5 cm margins (python-docx's template is US Letter)."""
    from docx.shared import Cm, Twips  # noqa: PLC0415 - see record_docx

    for section in document.sections:
        section.page_width, section.page_height = (Twips(size) for size in A4_TWIPS)
        section.top_margin = section.bottom_margin = Cm(MARGIN_CM)
        section.left_margin = section.right_margin = Cm(MARGIN_CM)


def _set_language(document: DocumentObject, locale: str) -> None:
    from docx.oxml.ns import qn  # noqa: PLC0415 - see record_docx

    tag = LANGUAGE_TAGS.get(locale, locale)
    document.core_properties.language = tag
    for lang in document.styles.element.xpath("w:docDefaults/w:rPrDefault/w:rPr/w:lang"):
        lang.set(qn("w:val"), tag)


def _set_properties(document: DocumentObject, record: RecordDocument, tr: Translator) -> None:
    """Metadata with nothing about the child: the case code and the day as the title, the
    district as the author, and no trace of the template (its author, description, dates,
    application and thumbnail)."""
    properties = document.core_properties
    author = _clean(record.district).strip() or AUTHOR
    properties.title = f"{_clean(record.code)}, {tr.date(record.starts_at)}"
    properties.author = author
    properties.last_modified_by = author
    for name in ("subject", "comments", "keywords", "category", "identifier", "version"):
        setattr(properties, name, "")
    properties.content_status = tr.gettext("Draft") if record.draft else ""
    properties.revision = 1
    ends_at = record.starts_at + dt.timedelta(minutes=record.duration_minutes)
    # Written as UTC ("...Z"), so the moment must be a naive UTC one.
    moment = ends_at.astimezone(dt.UTC).replace(tzinfo=None)
    properties.created = moment
    properties.modified = moment
    _set_language(document, tr.locale)
    package = document.part.package
    for part in package.iter_parts():
        if part.partname == "/docProps/app.xml":
            part._blob = APP_XML.encode()
    for rel_id, rel in list(package.rels.items()):
        if rel.reltype.endswith("/thumbnail"):
            package.rels.pop(rel_id)


def _review_text(record: RecordDocument, tr: Translator) -> str:
    _ = tr.gettext
    if record.review_at is not None:
        return tr.datetime(record.review_at)
    if record.review_by is not None:
        day = format_date(record.review_by, "medium", locale=tr.locale)
        if record.review_polling:
            return _("A poll for the date is running; at the latest by {date}.").format(date=day)
        return _("At the latest by {date}; the date is not set yet.").format(date=day)
    return _("Not set.")


def _person(line: AttendanceLine, tr: Translator) -> str:
    """Who came, and on the next line, as a field, whom they stood in for."""
    person = _clean(line.person) if line.person else ""
    if person and line.instead_of:
        other = tr.gettext("stands in for: {name}").format(name=_clean(line.instead_of))
        return f"{person}\n{other}"
    return person


def _institution(institution: str, guardian: int, tr: Translator) -> str:
    """An attendance's or an answer's first column: the institution, or the guardian's number."""
    if guardian:
        return tr.gettext("Guardian {number}").format(number=guardian)
    return _clean(institution)


def owner_label(party: TaskParty, owner: str, tr: Translator) -> str:
    """Whose task it is and who follows it up, in the document and in the bot's messages."""
    if party is TaskParty.CHILD:
        return tr.gettext("the child, followed up by {name}").format(name=owner)
    if party is TaskParty.GUARDIAN:
        return tr.gettext("a guardian, followed up by {name}").format(name=owner)
    return owner


def _reply_text(line: ReplyLine, tr: Translator) -> str:
    _ = tr.gettext
    text = {
        Reply.COMMENTED: _("commented"),
        Reply.NO_COMMENTS: _("no comments"),
        Reply.NONE: _("did not answer"),
    }[line.reply]
    late = _("(after the deadline)")
    return f"{text} {late}" if line.late else text


def _circulation(document: DocumentObject, record: RecordDocument, tr: Translator) -> None:
    """The final record: who commented on the draft, who had no comments, who did not answer."""
    if record.draft or record.replies is None:
        return
    _ = tr.gettext
    document.add_heading(_("Comments on the draft"), level=1)
    if not record.replies:
        document.add_paragraph(_("The draft went to no one: nobody who came uses the bot."))
        return
    rows = [
        (
            _institution(line.institution, line.guardian, tr),
            _reply_text(line, tr),
        )
        for line in record.replies
    ]
    _table(document, rows, header=(_("Institution"), _("Answer")))


def _signatures(document: DocumentObject, record: RecordDocument, tr: Translator) -> None:
    """The confidentiality note, and fields to sign on paper: the coordinator (the key worker)
    and the one who took the minutes, each with the date."""
    _ = tr.gettext
    document.add_heading(_("Confidentiality"), level=1)
    document.add_paragraph(
        _(
            "What was said at the case conference and this record are confidential. "
            "Participants keep them to themselves and use them only for the child's protection "
            "within their own institution's duties."
        )
    )
    document.add_heading(_("Signatures"), level=1)
    line = "_" * 15
    rows = [
        (_("Coordinator (key worker)"), _clean(record.coordinator), line, line),
        (_("Minute-taker"), _clean(record.minute_taker or ""), line, line),
    ]
    table = _table(document, rows, header=(_("Role"), _("Name"), _("Signature"), _("Date")))
    from docx.shared import Cm  # noqa: PLC0415 - see record_docx

    for row in table.rows[1:]:
        row.height = Cm(SIGNATURE_ROW_CM * 1.5)


def record_docx(record: RecordDocument, tr: Translator) -> bytes:
    """The record as a .docx file in the translator's language and time zone."""
    # python-docx (and lxml) are loaded when the first record is made, not with the bot: 6 MB
    # the bot does not hold while nobody writes a record.
    from docx import Document  # noqa: PLC0415
    from docx.enum.text import WD_ALIGN_PARAGRAPH  # noqa: PLC0415
    from docx.shared import Cm  # noqa: PLC0415

    _ = tr.gettext
    document = Document()
    _set_page(document)
    _set_properties(document, record, tr)

    if record.draft:
        # On every page, in its header: a page of the draft is never taken for the final.
        for section in document.sections:
            mark = section.header.paragraphs[0]
            mark.text = f"{_('DRAFT')} – {_clean(record.code)}"
            mark.alignment = WD_ALIGN_PARAGRAPH.RIGHT
            for run in mark.runs:
                run.bold = True
        document.add_heading(_("DRAFT"), level=0)
        if record.comments_until is not None:
            document.add_paragraph(
                _("For comments until {when}; the final record may differ.").format(
                    when=tr.datetime(record.comments_until)
                )
            )
    document.add_heading(_("Case conference record"), level=0)
    document.add_paragraph(_clean(record.code), style="Subtitle")

    ends_at = record.starts_at + dt.timedelta(minutes=record.duration_minutes)
    details = (
        (_("Date"), tr.date(record.starts_at)),
        (_("Time"), f"{tr.time(record.starts_at)}–{tr.time(ends_at)}"),
        (_("Place"), _clean(record.place)),
        (_("Coordinator"), _clean(record.coordinator)),
        (_("Minute-taker"), _clean(record.minute_taker or "")),
    )
    table = _table(document, details)
    for row in table.rows:
        for run in row.cells[0].paragraphs[0].runs:
            run.bold = True

    child = _clean(record.child_name or "").strip()
    if child:
        document.add_paragraph(_("Child: {name}").format(name=child))
    if record.method is not None:
        add_method_section(document, record.method, tr, _paragraphs)

    document.add_heading(_("Attendance"), level=1)
    attendance = [
        (
            _institution(line.institution, line.guardian, tr),
            _person(line, tr),
            _("yes") if line.present else _("no"),
            "",
        )
        for line in record.attendance
    ]
    attendance += child_attendance(record.method, child or None, tr)
    header = (_("Institution"), _("Name"), _("Present"), _("Signature"))
    table = _table(document, attendance, header=header)
    for row in table.rows[1:]:
        row.height = Cm(SIGNATURE_ROW_CM)

    document.add_heading(_("Summary of the situation"), level=1)
    for paragraph in _paragraphs(record.summary) or [""]:
        document.add_paragraph(paragraph)

    document.add_heading(_("Plan"), level=1)
    if record.tasks:
        plan = [
            (
                _clean(task.title),
                owner_label(task.party, _clean(task.owner), tr),
                format_date(task.due, "medium", tr.locale),
            )
            for task in record.tasks
        ]
        _table(document, plan, header=(_("Task"), _("Owner"), _("Due date")))
    else:
        document.add_paragraph(_("No tasks were agreed."))

    document.add_heading(_("Review conference"), level=1)
    document.add_paragraph(_review_text(record, tr))

    _circulation(document, record, tr)
    _signatures(document, record, tr)

    output = BytesIO()
    document.save(output)
    return output.getvalue()


def record_filename(record: RecordDocument) -> str:
    """An ASCII file name from the case code and the conference's day (UTC):
    "PK-2026-0001-2026-12-03.docx"."""
    code = _UNSAFE_FILENAME.sub("-", record.code).strip("-.") or "record"
    day = record.starts_at.astimezone(dt.UTC).date().isoformat()
    return f"{code}-{day}.docx"
