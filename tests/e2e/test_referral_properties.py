"""Property-based: random traffic at the referral dialog, through the real running bot.

A referrer and a coordinator of the same district send random traffic (tests/e2e/properties.py:
hostile texts, years, commands, media, presses, forged and garbage callback data), mixed with runs
of cooperative answers so that referrals get sent, asked about, accepted and declined. Besides
the shared properties (every update answered, nothing reaches the error handler or the log):

3. the database stays consistent: one draft per referrer at most; every sent referral has a
   code R-YYYY-NNNN, unique, submitted_at, urgency, and the child's details complete; every
   accepted referral has exactly one case, no other referral has any;
4. a message sent while the bot's latest word is a prompt of the person's draft is taken by the
   dialog (it is noted, to be deleted after sending: it may name the child);
5. a /refer dialog at a step is at the step its draft is at.

Each example brings a new referrer and coordinator; earlier referrals are the other people's ids
to forge, and the coordinator's queue.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from hypothesis import strategies as st
from sqlalchemy import func, select

from bot.core.models import (
    AuditEntry,
    Case,
    Institution,
    Member,
    Referral,
    ReferralStatus,
    Role,
)
from bot.sandbox import Person
from bot.services import drafting, leavers
from handlers.referral import RESUME
from handlers.referral_texts import REPLY
from handlers.triage import TYPING
from tests.e2e.conftest import RunningBot
from tests.e2e.properties import (
    Action,
    Data,
    Driver,
    Handled,
    Key,
    Media,
    Single,
    Text,
    action_lists,
    actions_of,
    callback_datas,
    examples,
    flood_limits,  # noqa: F401 - the stand-in without flood limits
    garbage_data,
    join,
    run_properties,
)

SCHOOL = "ZŠ Hradební"
EXAMPLES = examples(40)
MAX_ACTIONS = 12
HELPFUL_STEPS = 16  # a run of cooperative answers: enough to fill in and send a referral
CODE = re.compile(r"R-(\d{4})-\d{4}")

YEARS = (
    "2015",
    "2006",
    "2023",
    "２０１５",
    "٢٠١٥",
    "2015.0",
    "-2015",
    " 2015 ",
    "20 15",
    "0",
    "99999",
    "2015\n",
    "1e3",
)
COMMANDS = ("/refer", "/myreferrals", "/refer now", "/Refer")
COORDINATOR_COMMANDS = ("/referrals", "/cases")
ID_TEMPLATES = (
    "rf:r:{}",
    "rf:o:{}",
    "rf:a:{}",
    "rf:d:{}",
    "rf:q:{}",
    "ref:school:{}",
    "rq:p:{}",
    "cs:p:{}",
)
VALUES = (
    "yes",
    "no",
    "done",
    "skip",
    "agree",
    "disagree",
    "not_asked",
    "not_informed",
    "routine",
    "week",
    "urgent",
    *drafting.CATEGORIES,
    drafting.OTHER,
    "1",
    "",
)
STEP_NAMES = (*drafting.STEPS, "sent", "bogus", "")
FIXED_DATA = (
    "ref:send",
    "ref:x",
    "ref:xx",
    "ref:new",
    "ref:resume",
    "ref:fresh",
    "ref:rx",
    "rf:x",
    "ref:",
    "ref::",
    "ref:go:",
    "rf:o:-1",
    "rf:o:99999999999999999999",
    "rf:o:1:2",
    "rf:r:",
    "rf:a:١",  # Arabic-Indic digit: isdecimal() is true
    "ref:urgency:URGENT",
    "ref:concerns:__proto__",
    "rq:p:-1",
    "cs:p:x",
    "lang:xx",
)
AUDITED = ("referral.asked", "referral.answered", "referral.declined", "referral.accepted")
LEAVING = ("ref:x", "ref:xx", "ref:resume", "ref:fresh")  # not buttons of a step


def callback_data() -> st.SearchStrategy[str]:
    return st.one_of(
        garbage_data(FIXED_DATA),
        st.builds("ref:{}:{}".format, st.sampled_from(STEP_NAMES), st.sampled_from(VALUES)),
        st.builds("ref:{}:{}".format, st.sampled_from(("go", "edit")), st.sampled_from(STEP_NAMES)),
    )


def referral_actions(who: str) -> st.SearchStrategy[Action]:
    commands = COMMANDS + (COORDINATOR_COMMANDS if who == "coordinator" else ())
    return actions_of(
        who,
        commands=commands,
        templates=ID_TEMPLATES,
        sources=("referral", "referral", "others", "institution"),
        data=callback_data(),
        helpful_steps=HELPFUL_STEPS,
        extra_texts=YEARS,
    )


ACTIONS = action_lists(referral_actions, ("referrer", "referrer", "coordinator"), MAX_ACTIONS)


@dataclass
class ReferralDriver(Driver):
    NOTHING_TO_PRESS = "ref:new"  # the home message's button

    async def ids(self, person: Person, source: str) -> list[int]:
        async with self.bot.runtime.database.transaction() as session:
            if source == "institution":
                query = select(Institution.id)
            else:
                query = select(Referral.id).join(Member, Referral.referrer_id == Member.id)
                if source == "others":
                    query = query.where(Member.telegram_user_id != person.user_id)
            return list(await session.scalars(query))

    async def check(self) -> None:
        await self.check_database()
        await self.check_dialogs()

    async def before_message(self, person: Person) -> object:
        return await self.prompted(person)

    async def after_message(
        self, person: Person, action: Text | Media, message_id: int, before: object
    ) -> None:
        if before and not (isinstance(action, Text) and action.text.startswith("/")):
            row = await self.draft_of(person)
            taken = row is not None and any(ref[0] == message_id for ref in row.message_refs)
            assert taken, self.failure(
                f"the bot's latest message to {person.first_name} was a prompt of her draft, but "
                "the /refer dialog did not take her answer (nor note it for deletion)"
            )

    async def newcomers(self, number: int) -> dict[str, Person]:
        """A coordinator and a referrer who join the district for this example. The previous
        example's coordinator leaves, so that the district has one coordinator at a time (each
        referral is announced to every coordinator)."""
        if "coordinator" in self.people:
            runtime = self.bot.runtime
            async with runtime.database.transaction() as session:
                leaver = await session.scalar(
                    select(Member.id).where(
                        Member.telegram_user_id == self.people["coordinator"].user_id
                    )
                )
                assert leaver is not None
                await leavers.deactivate_member(session, None, leaver, now=runtime.clock.now())
        coordinator = await join(
            self.bot,
            10_000 + 2 * number,
            "Hana",
            Role.COORDINATOR,
            institution="OSPOD Cheb",
            district="Cheb",
        )
        referrer = await join(
            self.bot,
            10_001 + 2 * number,
            "Jana",
            Role.REFERRER,
            institution=SCHOOL,
            district="Cheb",
        )
        return {"referrer": referrer, "coordinator": coordinator}

    async def helpful(self, who: str, variant: int) -> Single:
        """The right kind of answer for the step the person's draft is at; first back into the
        dialog, as a person would, if it is not going on."""
        person = self.people[who]
        if who == "coordinator" and (deciding := await self.deciding(person, variant)):
            return deciding
        row = await self.draft_of(person)
        state = await self.dialog_state(person, "refer")
        waiting = await self.referrals_of(person, ReferralStatus.NEEDS_INFO)
        if waiting and state != REPLY and variant % 2:
            return Data(who, f"rf:r:{waiting[variant % len(waiting)]}")
        if state == RESUME:
            return Data(who, "ref:resume")
        if state == REPLY:
            return Text(who, "He missed twelve days in November. <b>&</b>")
        if row is None or state != row.step:
            return Text(who, "/refer")
        shown = callback_datas(person.last_bot_message())
        schools = [data for data in shown if data.startswith("ref:school:")] or [
            "ref:go:school_name"
        ]
        chosen = self.bot.runtime.cipher.decrypt_json(row.sealed).get("categories", [])
        match row.step:
            case "danger":
                return Data(who, "ref:danger:yes" if variant % 5 == 0 else "ref:danger:no")
            case "name":
                return Text(who, ("Kryštof Dvořák", "Ева <b>Петрова</b>")[variant % 2])
            case "year":
                return Text(who, str(2006 + variant % 18))
            case "class":
                return Text(who, "5.B") if variant % 4 else Data(who, "ref:go:school")
            case "school":
                return Data(who, schools[variant % len(schools)])
            case "school_name":
                return Text(who, "ZŠ Nová & <Stará>")
            case "concerns":
                if chosen and variant % 3:
                    return Data(who, "ref:concerns:done")
                categories = (*drafting.CATEGORIES, drafting.OTHER)
                return Data(who, f"ref:concerns:{categories[variant % len(categories)]}")
            case "other":
                return Text(who, "Sleeps in class")
            case "description":
                return Text(who, "Since October he misses Mondays. X\r\nBEGIN:VEVENT")
            case "tried":
                return Data(who, "ref:tried:skip") if variant % 2 else Text(who, "A talk")
            case "guardians":
                choices = ("agree", "disagree", "not_asked", "not_informed")
                return Data(who, f"ref:guardians:{choices[variant % 4]}")
            case "urgency":
                return Data(who, f"ref:urgency:{('routine', 'week', 'urgent')[variant % 3]}")
            case "summary":
                return Data(who, "ref:send" if variant % 4 else "ref:edit:description")
        return Data(who, "ref:resume")

    async def deciding(self, coordinator: Person, variant: int) -> Single | None:
        """A coordinator's share: open, accept, decline or ask about a referral waiting for a
        decision, and type the reason or the question when asked for it."""
        who: str = "coordinator"
        if await self.dialog_state(coordinator, "triage") == TYPING:
            reasons = (
                "Not for us: <b>no</b> & X\r\nBEGIN:VEVENT",
                "How often? '; DROP TABLE cases",
            )
            return Text(who, reasons[variant % 2])
        waiting = await self.referrals_of(
            coordinator, ReferralStatus.SUBMITTED, ReferralStatus.NEEDS_INFO, district=True
        )
        if not waiting or variant % 7 == 6:
            return None  # the coordinator reports a concern instead
        what = "oadqq"[variant % 5]
        chosen = waiting[-1] if variant % 3 else waiting[variant % len(waiting)]  # mostly newest
        return Data(who, f"rf:{what}:{chosen}")

    async def referrals_of(
        self, person: Person, *statuses: ReferralStatus, district: bool = False
    ) -> list[int]:
        """The ids of the person's referrals (or their district's) in these statuses."""
        async with self.bot.runtime.database.transaction() as session:
            member = await session.scalar(
                select(Member).where(Member.telegram_user_id == person.user_id)
            )
            assert member is not None
            query = select(Referral.id).where(Referral.status.in_(statuses))
            if district:
                place = await session.get_one(Institution, member.institution_id)
                query = query.where(Referral.district_id == place.district_id)
            else:
                query = query.where(Referral.referrer_id == member.id)
            return sorted(await session.scalars(query.order_by(Referral.id)))

    async def prompted(self, person: Person) -> bool:
        """Whether the bot's latest word to the person (the message it last sent or edited) is
        a prompt of their /refer draft: its Cancel and another dialog button. A message sent
        then is an answer to the draft, which may name the child."""
        latest = None
        for event in reversed(person.events):
            if event.kind in ("sent", "edited") and event.message is not None:
                latest = person.messages[event.message.message_id]
                break
        if latest is None or latest.deleted:
            return False
        datas = callback_datas(latest)
        others = [d for d in datas if d.startswith("ref:") and d not in LEAVING]
        return "ref:x" in datas and bool(others) and await self.draft_of(person) is not None

    async def draft_of(self, person: Person) -> Referral | None:
        async with self.bot.runtime.database.transaction() as session:
            row: Referral | None = await session.scalar(
                select(Referral)
                .join(Member, Referral.referrer_id == Member.id)
                .where(
                    Member.telegram_user_id == person.user_id,
                    Referral.status == ReferralStatus.DRAFT,
                )
            )
        return row

    async def check_dialogs(self) -> None:
        """A /refer dialog at a step is at the step its draft is at (the database leads)."""
        for person in self.people.values():
            state = await self.dialog_state(person, "refer")
            if state not in drafting.STEPS:
                continue
            row = await self.draft_of(person)
            step = None if row is None else row.step
            assert step == state, self.failure(
                f"{person.first_name}'s dialog is at {state!r}, the draft at {step!r}"
            )

    async def check_database(self) -> None:
        cipher = self.bot.runtime.cipher
        async with self.bot.runtime.database.transaction() as session:
            rows = list(await session.scalars(select(Referral).order_by(Referral.id)))
            cases = list(await session.scalars(select(Case)))
            done = await session.execute(
                select(AuditEntry.action, func.count())
                .where(AuditEntry.action.in_(AUDITED))
                .group_by(AuditEntry.action)
            )
        drafts = Counter(row.referrer_id for row in rows if row.status is ReferralStatus.DRAFT)
        assert all(n <= 1 for n in drafts.values()), self.failure(f"several drafts: {drafts}")
        sent = [row for row in rows if row.status is not ReferralStatus.DRAFT]
        for row in sent:
            problem = incomplete(row, cipher.decrypt_json(row.sealed))
            assert problem is None, self.failure(f"referral {row.id} ({row.code}): {problem}")
        codes = [row.code for row in rows if row.code is not None]
        assert len(codes) == len(set(codes)), self.failure(f"duplicate codes: {codes}")
        per_referral = Counter(case.referral_id for case in cases)
        for row in sent:
            expected = 1 if row.status is ReferralStatus.ACCEPTED else 0
            assert per_referral[row.id] == expected, self.failure(
                f"{row.code} is {row.status.value} with {per_referral[row.id]} cases"
            )
        for status in ReferralStatus:  # how far the traffic got, as the database now says
            self.tally[status.value] = sum(row.status is status for row in rows)
        self.tally["cases"] = len(cases)
        for action, count in done:
            self.tally[action] = count


def incomplete(row: Referral, sealed: dict[str, object]) -> str | None:
    """What is wrong with a sent referral, or None."""
    found = CODE.fullmatch(row.code or "")
    if found is None:
        return f"code {row.code!r}"
    if row.submitted_at is None:
        return "no submitted_at"
    if int(found.group(1)) != row.submitted_at.year:
        return f"code {row.code} but sent in {row.submitted_at.year}"
    if row.urgency is None or row.danger is None or row.guardians_consent is None:
        return "urgency, danger or the guardians' consent missing"
    for key in ("name", "class_name", "school", "description"):
        value = sealed.get(key)
        if not isinstance(value, str) or not value.strip():
            return f"{key} missing"
    if not isinstance(sealed.get("birth_year"), int):
        return "birth_year missing"
    categories = sealed.get("categories")
    if not isinstance(categories, list) or not categories:
        return "no categories"
    return None


async def referrer_elsewhere(bot: RunningBot, handled: Handled) -> Person:
    """A referrer of another district, with one referral sent: someone else's ids to forge."""
    person = await join(bot, 3, "Petr", Role.REFERRER, institution="ZŠ Sokolov", district="Sokolov")
    script: list[tuple[str, str]] = [
        ("text", "/refer"),
        ("data", "ref:danger:no"),
        ("text", "Anna Nováková"),
        ("text", "2012"),
        ("text", "7.A"),
        ("data", "ref:concerns:bullying"),
        ("data", "ref:concerns:done"),
        ("text", "Other children take her lunch."),
        ("data", "ref:tried:skip"),
        ("data", "ref:guardians:agree"),
        ("data", "ref:urgency:week"),
        ("data", "ref:send"),
    ]
    for kind, value in script:
        since = handled.mark()
        if kind == "text":
            key: Key = ("message", person.chat_id, str(await person.send_text(value)))
        else:
            await person.press_data(value)
            key = ("callback", person.user_id, value)
        await handled.wait_for(key, since)
    assert "Your referral code is R-2026-0001." in person.transcript(), person.transcript()
    return person


async def test_random_traffic_is_always_answered_and_keeps_the_database_consistent(
    bot: RunningBot,
) -> None:
    driver = ReferralDriver(bot)
    await bot.invite_code(Role.REFERRER, SCHOOL, district="Cheb")
    await bot.invite_code(Role.REFERRER, "ZŠ Komenského", district="Cheb")  # a second school
    await referrer_elsewhere(bot, driver.handled)
    await run_properties(driver, ACTIONS, EXAMPLES, "referral")
