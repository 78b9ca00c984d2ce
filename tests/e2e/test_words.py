"""Issue 25's words and screens, end to end: the record is one message however many tasks are
added, its Finish button says what it does, the admin sees what each role may do, the concerns
are full width, and the Czech a teacher and an admin read follows docs/glossary.md."""

from __future__ import annotations

from datetime import timedelta

from bot.core.clock import FakeClock
from bot.core.models import InstitutionKind, Role
from bot.sandbox import Person
from tests.e2e.conftest import RunningBot, text_of
from tests.e2e.speed import flood_limits  # noqa: F401 - answers at machine speed
from tests.e2e.test_conferences import until
from tests.e2e.test_invitations import team
from tests.e2e.test_referrals import CHILD, CODE, fill_in
from tests.e2e.test_referrals import team as referral_team
from tests.e2e.test_tasks import due_date_asked, record_opened, summary_written

RECORD = "Record of the case conference PK-2026-0001"


def screens(person: Person, fragment: str) -> list[str]:
    """The messages still in the chat that show `fragment`."""
    return [
        m.text or ""
        for m in person.messages.values()
        if not m.deleted and fragment in (m.text or "")
    ]


async def class_typed(teacher: Person, no: str) -> None:
    """/refer, the child not in danger (the button `no`), then the child's name, year of birth
    and class typed, each after the bot's question; the concerns are asked next."""
    await teacher.send_text("/refer")
    await text_of(teacher)
    await teacher.press(no)
    for typed in (CHILD, "2015", "5.B"):
        await text_of(teacher)
        await teacher.send_text(typed)


async def test_the_record_stays_one_message_while_tasks_are_added(
    bot: RunningBot, clock: FakeClock
) -> None:
    """Item 8: every step edits the one record screen, or replaces it below what was typed."""
    people = await team(bot)
    hana, petr = people["hana"], people["petr"]
    await record_opened(bot, clock, people)

    # The summary: typed, deleted from the chat, and the record shows it is written.
    await summary_written(hana, "The boy misses school on Mondays.")
    await bot.settle()
    assert len(screens(hana, RECORD)) == 1
    assert screens(hana, "Type the summary") == []

    # A task with a quick due date: the screen above the typed title goes, the record
    # replaces the "By when?" question in place.
    await due_date_asked(hana, "Check attendance weekly", "Petr (Policie Cheb)")
    await hana.press("1 week")
    await until(hana, "Plan: 1 task.")
    await bot.settle()
    assert len(screens(hana, RECORD)) == 1
    assert screens(hana, "What is the task?") == screens(hana, "By when?") == []

    # A task with a typed date: the record comes below the date, and nothing above stays.
    await due_date_asked(hana, "Arrange tutoring", "Jana (ZŠ Hradební)")
    await hana.press("📅 A date…")
    await until(hana, "Type the due date")
    due = (clock.now() + timedelta(days=20)).strftime("%d.%m.%Y")
    await hana.send_text(due)
    record = await until(hana, "Plan: 2 tasks.")
    await bot.settle()
    assert [text for text in screens(hana, RECORD)] == [record.text]
    assert screens(hana, "Type the due date") == screens(hana, "Who owns it?") == []

    # Finish says what it does: the owners get their tasks (the record document is the
    # coordinator's alone).
    labels = [label for row in record.buttons() for label, _ in row]
    assert "✅ Finish: send the tasks to their owners" in labels
    await hana.press("✅ Finish: send the tasks to their owners")
    await until(hana, "The record of PK-2026-0001: only you have it")
    assert "Check attendance weekly" in (await until(petr, "A task for you")).text  # type: ignore[operator]
    assert len(screens(hana, RECORD)) == 1


async def test_the_admin_sees_what_each_role_may_do_above_its_button(bot: RunningBot) -> None:
    """Item 9: one line per role in the message above the role buttons, in the admin's
    language; the buttons stay the roles' names."""
    admin = await bot.join(
        1,
        "Alena",
        Role.ADMIN,
        institution="Městský úřad Cheb",
        kind=InstitutionKind.SOCIAL_DEPARTMENT,
        language="Čeština",
    )
    await admin.send_text("/invite")
    await admin.next_message()
    await admin.press("Městský úřad Cheb")
    roles = await admin.next_message()
    assert (roles.text or "").splitlines() == [
        "Jakou roli bude mít?",
        "",
        "• administrátor: registruje instituce a lidi a odebírá přístup těm, kdo odešli.",
        "• koordinátor: rozhoduje o oznámeních, zakládá případy, plánuje případové konference"
        " a hlídá plnění plánu.",
        "• oznamovatel: oznamuje obavy o dítě a sleduje, co se s oznámením děje.",
        "• účastník: za svou instituci odpovídá na výběr termínu, dostává pozvánky a"
        " připomenutí a hlásí plnění úkolů.",
    ]
    labels = [label for row in roles.buttons() for label, _ in row]
    assert labels[:4] == ["administrátor", "koordinátor", "oznamovatel", "účastník"]
    await admin.press("koordinátor")
    link = await admin.next_message()
    # A role as a field: Czech cannot put a placeholder into "v roli …" or "pro roli …".
    assert "Odkaz s pozvánkou – role: koordinátor, instituce: Městský úřad Cheb." in (
        link.text or ""
    )

    # The members' list is of users (uživatelé), not "členové".
    await admin.send_text("/members")
    assert (await admin.next_message()).text.startswith("Uživatelé (1)")  # type: ignore[union-attr]


async def test_the_concerns_are_full_width_and_the_referral_takes_as_many_taps(
    bot: RunningBot,
) -> None:
    """Item 9: each concern on its own row, so a long name is not cut on a phone; the
    referral still takes eleven actions after /refer (tapping a concern is still one tap)."""
    _coordinator, teacher = await referral_team(bot)
    await class_typed(teacher, "No")
    concerns = await teacher.next_message()
    rows = concerns.buttons()
    concern_rows = [row for row in rows if row[0][1].startswith("ref:concerns:")]
    assert all(len(row) == 1 for row in concern_rows)
    assert len(concern_rows) == 19  # 17 named, "other…" and Done
    assert concern_rows[-1][0][0] == "Done"
    assert ("netolism (excessive screen time)", "ref:concerns:netolism") in [r[0] for r in rows]
    # Another teacher's whole referral: as many actions as before the rows changed.
    other = await bot.join(3, "Eva", Role.REFERRER)
    assert await fill_in(other) == 11


async def test_a_czech_teacher_reads_oznameni_quotes_and_the_concerns_heading(
    bot: RunningBot,
) -> None:
    """Words: the teacher's summary says "Důvody obav" (not "Rizikové chování"), the
    coordinator's question comes as a question from OSPOD with an "Odpovědět" button (the
    button's own context, not the note's "Odpověď")."""
    coordinator = await bot.join(
        1, "Hana", Role.COORDINATOR, institution="OSPOD Cheb", kind=InstitutionKind.OSPOD
    )
    teacher = await bot.join(2, "Jana", Role.REFERRER, language="Čeština")
    await class_typed(teacher, "Ne")
    await text_of(teacher)
    await teacher.press("záškoláctví")
    await text_of(teacher)
    await teacher.press("Hotovo")
    await text_of(teacher)
    await teacher.send_text("Od října chybí skoro každé pondělí.")
    for label in ("Přeskočit", "Informováni, souhlasí", "Běžné"):
        await text_of(teacher)
        await teacher.press(label)
    summary = await text_of(teacher)
    assert "Důvody obav: záškoláctví" in summary and "Rizikové chování" not in summary
    await teacher.press("Odeslat")
    sent = await text_of(teacher)
    code = CODE.search(sent)
    assert code and "Koordinace o něm už ví." in sent and "dáme vám vědět" in sent

    await coordinator.next_message()
    await coordinator.press(f"Open {code.group(0)}")
    await coordinator.next_message()
    await coordinator.press("Ask the referrer")
    await coordinator.next_message()
    await coordinator.send_text("Does he have older siblings?")
    question = await until(teacher, "Dotaz z OSPOD k vašemu oznámení")
    assert [label for row in question.buttons() for label, _ in row] == ["Odpovědět", "🔎 Zobrazit"]
