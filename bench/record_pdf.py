"""The record document as a word processor lays it out: a sample record (its draft and its
final, in Czech) converted to PDF by LibreOffice and to one PNG per page by pdftoppm, for a
person to look at. Not part of the test suite (`make record-pdf`; see docs/operations.md).

    python -m bench.record_pdf [OUTPUT_DIRECTORY]

Needs Debian's `libreoffice-writer-nogui` (or `libreoffice-writer`) and `poppler-utils`.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from bot.core.circulation_tables import Reply
from bot.core.i18n import Translator
from bot.core.method_record import MethodSection
from bot.core.method_tables import ChildPart, ConferenceKind
from bot.core.models import TaskParty
from bot.core.record import AttendanceLine, RecordDocument, ReplyLine, TaskLine, record_docx

PRAGUE = ZoneInfo("Europe/Prague")
OWNERS = ("Petr Dvořák (Policie ČR)", "Hana Králová (ZŠ Hradební)", "Eva Malá (OSPOD Cheb)")
# Enough tasks that the plan runs onto the next page: its header must repeat there, and no row
# may be split between the pages.
TASKS = 40


def sample() -> RecordDocument:
    starts = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
    tasks = [
        TaskLine(
            f"Úkol {n}: pravidelná kontrola docházky a domluva s třídní učitelkou o dalším postupu",
            OWNERS[n % len(OWNERS)],
            date(2026, 12, 17) + timedelta(days=n),
            TaskParty.GUARDIAN if n % 7 == 3 else TaskParty.MEMBER,
        )
        for n in range(1, TASKS + 1)
    ]
    return RecordDocument(
        code="PK-2026-0042",
        starts_at=starts,
        duration_minutes=90,
        place="OSPOD Cheb, zasedací místnost 12",
        coordinator="Jana Svobodová",
        attendance=(
            AttendanceLine("Policie ČR, obvodní oddělení Cheb", "Petr Dvořák", True),
            AttendanceLine("ZŠ Hradební", "Petr Novák", True, instead_of="Hana Králová"),
            AttendanceLine("PPP Karlovarského kraje", "Lucie Bílá", True),
            AttendanceLine("Probační a mediační služba", None, False),
            AttendanceLine("", "", True, guardian=1),
            AttendanceLine("", None, False, guardian=2),
        ),
        summary=(
            "Chlapec od září často chybí ve škole, zejména v pondělí.\n"
            "Rodina souhlasí se spoluprací a s doučováním."
        ),
        tasks=tasks,
        review_by=date(2027, 3, 3),
        district="Cheb",
        minute_taker="Eva Malá",
        method=MethodSection(
            kind=ConferenceKind.INITIAL,
            goal="Domluvit, jak škola a rodina ukončí pondělní absence a jak chlapce ochránit.",
            child_part=ChildPart.SUPPORTED,
            support="školní metodik prevence, kterému důvěřuje",
            child_view="Ve třídě se mi líbí, ale o přestávkách se bojím starších kluků.",
            child_present=True,
        ),
        replies=(
            ReplyLine("Policie ČR, obvodní oddělení Cheb", Reply.COMMENTED),
            ReplyLine("ZŠ Hradební", Reply.NO_COMMENTS),
            ReplyLine("PPP Karlovarského kraje", Reply.COMMENTED, late=True),
            ReplyLine("", Reply.NONE, guardian=1),
        ),
    )


def render(output: Path) -> list[Path]:
    """The draft and the final as .docx, .pdf and one PNG per page in `output`."""
    office = shutil.which("libreoffice") or shutil.which("soffice")
    pdftoppm = shutil.which("pdftoppm")
    if office is None or pdftoppm is None:
        raise SystemExit(
            "needs LibreOffice and pdftoppm: apt-get install libreoffice-writer-nogui poppler-utils"
        )
    output.mkdir(parents=True, exist_ok=True)
    czech = Translator("cs", PRAGUE)
    final = sample()
    draft = dataclasses.replace(
        final, draft=True, comments_until=datetime(2026, 12, 8, 15, 0, tzinfo=UTC), replies=None
    )
    pages: list[Path] = []
    for name, record in (("record-final", final), ("record-draft", draft)):
        docx = output / f"{name}.docx"
        docx.write_bytes(record_docx(record, czech))
        with tempfile.TemporaryDirectory() as profile:
            subprocess.run(
                [
                    office,
                    f"-env:UserInstallation=file://{profile}",
                    "--headless",
                    "--convert-to",
                    "pdf",
                    "--outdir",
                    str(output),
                    str(docx),
                ],
                check=True,
                capture_output=True,
                timeout=180,
            )
        pdf = output / f"{name}.pdf"
        subprocess.run(
            [pdftoppm, "-r", "50", "-png", str(pdf), str(output / name)],
            check=True,
            timeout=120,
        )
        pages += sorted(output.glob(f"{name}-*.png"))
    return pages


def main() -> None:
    output = Path(sys.argv[1] if len(sys.argv) > 1 else "record-pdf")
    for page in render(output):
        print(page)


if __name__ == "__main__":
    main()
