"""`make run` without a token: the demo plays the whole story and writes the transcripts."""

from __future__ import annotations

import os
import re
from datetime import datetime
from email import message_from_bytes, policy
from pathlib import Path
from zoneinfo import ZoneInfo

import docx
import icalendar
from docx.document import Document

from bot.demo import CHILD_VIEW, GOAL, SUPPORT
from tests.conftest import run_roundtable

CHILD = re.compile(r"\b(?:Kryštof|Dvořák)\b")  # not the admin, Alena Dvořáková


def numbered(out: Path, pattern: str) -> list[Path]:
    """The documents `role-N-name` matching the pattern, in the order the person got them."""
    found = [(int(path.name.split("-")[1]), path) for path in out.glob(pattern)]
    return [path for _number, path in sorted(found)]


def table(document: Document, header: str) -> list[list[str]]:
    """The rows (after the header) of the document's first table whose first cell is
    `header`."""
    found = next(t for t in document.tables if t.rows[0].cells[0].text == header)
    return [[cell.text for cell in row.cells] for row in found.rows[1:]]


def after(document: Document, heading: str) -> list[str]:
    """The paragraphs after a heading."""
    texts = [paragraph.text for paragraph in document.paragraphs]
    return texts[texts.index(heading) + 1 :]


def _environment(tmp_path: Path) -> dict[str, str]:
    """No Telegram token; settings meant for the real bot, which must not pull the demo into
    real data."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ROUNDTABLE_")}
    environment["ROUNDTABLE_DATABASE_URL"] = f"sqlite:///{tmp_path / 'production.sqlite3'}"
    environment["ROUNDTABLE_ENCRYPTION_KEY_FILE"] = str(tmp_path / "production.key")
    return environment


def test_run_without_a_token_says_so_and_plays_the_demo(tmp_path: Path) -> None:
    result = run_roundtable(_environment(tmp_path), tmp_path, "run", "--or-demo")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == (
        "ROUNDTABLE_TOKEN is not set, so this runs the built-in demo instead of the bot."
    )
    assert "===== Olena (psychologist) =====" in result.stdout
    assert sorted(path.name for path in tmp_path.iterdir()) == []  # nothing left behind


def test_the_demo_writes_each_persons_transcript_calendar_files_and_records(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    written = run_roundtable(_environment(tmp_path), tmp_path, "demo", "--out", str(out))
    assert written.returncode == 0, written.stderr
    assert sorted(path.name for path in out.glob("*.txt")) == [
        "admin.txt",
        "coordinator.txt",
        "paediatrician.txt",
        "police.txt",
        "psychologist.txt",
        "stranger.txt",
        "teacher.txt",
        "web-pages.txt",
    ]
    # The coordinator's documents, numbered in the order she got them: two invitations, the
    # record, the review's invitation, the record again (with the review's date), the CANCEL.
    assert sorted(path.name for path in out.glob("coordinator-*")) == [
        "coordinator-1-PK-2026-0001.ics",
        "coordinator-2-PK-2026-0001.ics",
        "coordinator-3-PK-2026-0001-2026-11-26.docx",
        "coordinator-4-PK-2026-0001.ics",
        "coordinator-5-PK-2026-0001-2026-11-26.docx",
        "coordinator-6-PK-2026-0001.ics",
    ]
    # Each participant's calendar files: the invitation and the new time (one event), then the
    # review conference (another event) and its cancellation when the case is closed.
    review = datetime(2027, 2, 15, 10, 0, tzinfo=ZoneInfo("Europe/Prague"))
    for role in ("coordinator", "police", "psychologist", "teacher"):
        files = numbered(out, f"{role}-*-PK-2026-0001.ics")
        events = []
        for path in files:
            calendar = icalendar.Calendar.from_ical(path.read_bytes())
            (event,) = calendar.walk("VEVENT")
            events.append((str(calendar["METHOD"]), int(str(event["SEQUENCE"])), event))
        assert [method for method, _s, _e in events] == ["REQUEST", "REQUEST", "REQUEST", "CANCEL"]
        assert [sequence for _m, sequence, _e in events[:3]] == [0, 1, 0]
        assert events[3][1] >= 1
        uids = [str(event["UID"]) for _m, _s, event in events]
        assert uids[0] == uids[1] != uids[2] == uids[3]
        assert [event.decoded("DTSTART") for _m, _s, event in events[2:]] == [review, review]
        assert not CHILD.search("".join(path.read_text(encoding="utf-8") for path in files))

    # The record: who came, the plan's three tasks, the review; never the child's name.
    first, final = (docx.Document(str(path)) for path in numbered(out, "coordinator-*.docx"))
    for record in (first, final):
        attendance = table(record, "Institution")
        assert [row[:3] for row in attendance] == [
            ["Pediatrie Cheb", "", "yes"],  # invited by e-mail, accepted in her calendar
            ["ZŠ Hradební", "Jana Malá", "yes"],
            ["Policie ČR Cheb", "Tomáš Beneš", "yes"],
            ["PPP Cheb", "", "no"],  # she did not come after all
            ["The child", "", "yes"],  # he came, with a support person; never named
        ]
        assert after(record, "The child's voice")[:3] == [
            "How the child takes part: present with a support person",
            f"Support person: {SUPPORT}",
            "The child's view in their own words:",
        ]
        assert CHILD_VIEW in [p.text for p in record.paragraphs]
        assert "Kind: initial conference" in [p.text for p in record.paragraphs]
        assert f"Goal: {GOAL}" in [p.text for p in record.paragraphs]
        assert sorted(row[0] for row in table(record, "Task")) == [
            "Arrange tutoring",
            "Assessment at the counselling centre",
            "Talk to the older boys",
        ]
        cells = [c.text for t in record.tables for row in t.rows for c in row.cells]
        text = "\n".join([p.text for p in record.paragraphs] + cells)
        assert "The boy misses school on Mondays" in text
        assert not CHILD.search(text)
    # Sent when she finished, before the review's date was fixed; then asked for again.
    assert after(first, "Review conference")[0] == (
        "At the latest by Feb 26, 2027; the date is not set yet."
    )
    fixed = after(final, "Review conference")[0]
    assert fixed.startswith("Feb 15, 2027, 10:00")
    # The first was the draft, circulated for comments; the final says who commented.
    assert first.paragraphs[0].text == "DRAFT"
    assert final.paragraphs[0].text != "DRAFT"
    answers = [t for t in final.tables if t.rows[0].cells[-1].text == "Answer"]
    assert [[c.text for c in row.cells] for row in answers[0].rows[1:]] == [
        ["ZŠ Hradební", "no comments"],
        ["Policie ČR Cheb", "commented"],
    ]

    # The paediatric practice, not on Telegram: the poll's times by mail with a personal link
    # (the doctor answered on the page), then each invitation as a calendar event in a mail that
    # a mail program opens (.eml), a reminder, and the review's cancellation; every answer
    # given with the calendar's buttons, read back onto the coordinator's board.
    mails = [
        message_from_bytes(path.read_bytes(), policy=policy.default)
        for path in numbered(out, "paediatrician-*-mail.eml")
    ]
    assert all(m["To"] == "Pediatrie Cheb <ordinace@pediatrie-cheb.example.cz>" for m in mails)
    assert all(m["From"] == "Round Table Cheb <konference@cheb.example.cz>" for m in mails)
    invitations = []
    for mail in mails:
        parts = {part.get_content_type(): part for part in mail.walk()}
        assert "text/plain" in parts and "text/html" in parts
        if "text/calendar" in parts:
            calendar = icalendar.Calendar.from_ical(parts["text/calendar"].get_content())
            (event,) = calendar.walk("VEVENT")
            invitations.append((str(calendar["METHOD"]), int(str(event["SEQUENCE"]))))
            real = [str(a) for a in event.get("ATTENDEE") if not str(a).endswith(".invalid")]
            assert real == ["mailto:ordinace@pediatrie-cheb.example.cz"]
    assert invitations == [("REQUEST", 0), ("REQUEST", 1), ("REQUEST", 0), ("CANCEL", 1)]
    paediatrician = (out / "paediatrician.txt").read_text(encoding="utf-8")
    assert "Na své osobní stránce prosím do 26. 11. 2026 8:00 označte" in paediatrician
    assert "https://kulatystul.cheb.example.cz/p/" in paediatrician
    assert "Termín se změnil: nově 26. 11. 2026 8:00, původně 27. 11. 2026 8:00." in paediatrician
    assert not CHILD.search(paediatrician)

    # The doctor's page before and after Send; the psychologist's grid in the Mini App.
    pages = (out / "web-pages.txt").read_text(encoding="utf-8").split("\n\n")
    assert [next(line for line in page.splitlines() if "PK-" in line) for page in pages] == [
        "Případová konference PK-2026-0001",
        "Případová konference PK-2026-0001",
        "Кейс-конференція PK-2026-0001",
        "Кейс-конференція PK-2026-0001",
    ]
    assert "Děkujeme, odpověď byla odeslána." in pages[1]
    assert "pá 27. 11. 8:00\n    (•) Ano" in pages[1]
    assert "Дякуємо, вашу відповідь надіслано." in pages[3]
    assert not CHILD.search("".join(pages))
    psychologist = (out / "psychologist.txt").read_text(encoding="utf-8")
    assert "Ви приєдналися до установи PPP Cheb" in psychologist
    assert "▦ Відповісти в таблиці" in psychologist  # the Mini App's button on her poll
    stranger = (out / "stranger.txt").read_text(encoding="utf-8")
    assert "Tento odkaz s pozvánkou už byl použit." in stranger
    admin = (out / "admin.txt").read_text(encoding="utf-8")
    assert "Uživatelé (5)" in admin
    teacher = (out / "teacher.txt").read_text(encoding="utf-8")
    # The goal: the poll and the invitation say only that it is in the bot.
    assert "Cíl konference je v botovi: klepněte na 🎯 Cíl konference." in teacher
    assert "Druh: úvodní konference" in teacher
    assert GOAL not in teacher
    assert "Kód vašeho oznámení je R-2026-0001." in teacher
    assert "Vaše oznámení R-2026-0001 bylo přijato: případ PK-2026-0001." in teacher
    coordinator = (out / "coordinator.txt").read_text(encoding="utf-8")
    assert "Bot: New referral R-2026-0001 from ZŠ Hradební.\n    Urgency: routine\n" in coordinator
    assert "You accepted R-2026-0001. Case PK-2026-0001 is open" in coordinator
    police = (out / "police.txt").read_text(encoding="utf-8")
    assert "R-2026-0001" not in police
    assert "Tomáš Beneš) declined the case conference PK-2026-0001" in coordinator
    assert "Ten den mám celý den soud." in coordinator  # the reason, to the coordinator only
    assert "Accepted 4 · tentative 0 · declined 0 · no answer 0" in coordinator
    assert "    ✅ ☆ ✉ Pediatrie Cheb\n" in coordinator.split("Accepted 4")[1]
    assert "⏰ Připomenutí" in teacher
    # The draft record, for comments: the teacher has none, the officer comments; the
    # coordinator reads it on request; the final goes to both.
    assert "Jana pressed [👍 Bez výhrad]" in teacher
    assert "Tomáš pressed [💬 Vyjádřit se]" in police
    assert "Hana pressed [🗒 Read the comment]" in coordinator
    assert "Doplňte prosím, že se škola domluví" in coordinator
    for chat in (teacher, police):
        assert "Návrh zápisu z případové konference PK-2026-0001" in chat
        assert "Konečný zápis z případové konference PK-2026-0001" in chat
    assert "Návrh zápisu" not in psychologist  # she did not come

    # After the table: the record, and each owner's task in their language.
    assert "The case conference PK-2026-0001 has ended." in coordinator
    tapped = coordinator.split("Hana pressed [✅ PPP Cheb: Olena Koval]\n")[1]
    assert "[❌ PPP Cheb]" in tapped.split("Hana pressed")[0]  # one tap: she did not come
    assert "Attendance: 3 of 4 came." in coordinator
    assert "The review conference PK-2026-0001 is set: Feb 15, 2027, 10:00" in coordinator
    assert "Bot: 📌 Úkol pro vás z případové konference:" in teacher
    assert "Bot: 📌 Úkol pro vás z případové konference:" in police
    assert "Bot: 📌 Завдання для вас із кейс-конференції:" in psychologist
    # The teacher is done early, with a note; she is never nudged.
    assert "„Arrange tutoring“" in teacher  # Czech quotes
    assert "Bot: ✅ Označeno jako hotové. Děkujeme!" in teacher
    assert "Připomenutí vašeho úkolu" not in teacher
    assert "✅ Jana Malá has done PK-2026-0001 «Arrange tutoring»." in coordinator
    assert (
        "Hana pressed [🗒 Read the notes]\nBot: 🗒 Notes on PK-2026-0001 «Arrange tutoring»:\n"
        "    ✅ Jana Malá, Dec 2, 2026"
    ) in coordinator
    assert "    Doučování domluveno: úterý a čtvrtek po vyučování" in coordinator
    # The psychologist asks for two more weeks and is given them.
    assert "Olena pressed [+2 тижні]" in psychologist
    assert "Olena Koval asks for more time: PK-2026-0001 «Assessment at the" in coordinator
    assert "Hana pressed [✅ Give it]" in coordinator
    assert "Строк продовжено: «Assessment at the counselling centre» тепер до" in psychologist
    # The officer lets his slip: nudged 3 days before, on the day, the day after; a week
    # overdue the coordinator is alerted and reminds him again; then he is done.
    assert police.count("⏰ Připomenutí vašeho úkolu:") == 4
    assert "⚠️ po lhůtě od" in police
    assert "Bot: A task is a week overdue:" in coordinator
    assert "[🔔 Remind again] [👤 Reassign]\nHana pressed [🔔 Remind again]" in coordinator
    assert "Tomáš pressed [✅ Hotovo bez poznámky]" in police
    assert "✅ Tomáš Beneš has done PK-2026-0001 «Talk to the older boys»." in coordinator
    # The Monday digests: his task due that week, then overdue.
    digest = "Bot: 🗓 Your week\n    Tasks {}:\n    • PK-2026-0001 «Talk to the older boys»"
    assert digest.format("due this week (1)") in coordinator
    assert digest.format("overdue (1)") in coordinator
    # Closing the case: the review is cancelled (the calendars above), and so is the
    # psychologist's open task; weeks later she has not been nudged about it.
    assert "The case PK-2026-0001 is closed: Handed to another authority." in coordinator
    assert "Завдання PK-2026-0001 «Assessment at the counselling centre» скасовано" in psychologist
    assert "Нагадування про ваше завдання" not in psychologist
    # Everyone who took part hears that it is closed and how; the teacher, who reported it, that
    # her referral's case is closed (each once).
    closed = "Případ PK-2026-0001 je uzavřen. Výsledek: Předáno jinému orgánu."
    assert police.count(closed) == 1
    assert (
        psychologist.count("Випадок PK-2026-0001 закрито. Результат: Передано іншому органу.") == 1
    )
    assert closed not in teacher
    assert (
        teacher.count(
            "Případ PK-2026-0001 vzniklý z vašeho oznámení R-2026-0001 je uzavřen. "
            "Výsledek: Předáno jinému orgánu."
        )
        == 1
    )

    # The child's name is where the teacher typed it and the coordinator triaged the referral,
    # and nowhere after the table.
    assert CHILD.search(teacher) and CHILD.search(coordinator)
    for role, transcript in {
        "admin": admin,
        "police": police,
        "psychologist": psychologist,
        "stranger": stranger,
        "teacher": teacher.split("Úkol pro vás")[1],
        "coordinator": coordinator.split("has ended")[1],
    }.items():
        assert not CHILD.search(transcript), role
