"""Property-based: random traffic at triage, cases, planning and the date poll, through the bot.

A coordinator and two participants (police, counselling centre) of one district send random
traffic (tests/e2e/properties.py: hostile texts, commands, media, presses of what they see,
forged and garbage callback data), mixed with runs of cooperative moves: the coordinator
triages a referral waiting in the queue, plans a conference for an open case (invites the
institutions, sets the place, sends the poll), watches the board, decides, confirms a time;
the participants tap times and send their answers. Besides the shared properties (every update
answered, nothing reaches the error handler or the log), the database stays consistent:

- an accepted referral has exactly one case, no other referral has any;
- a case has at most one conference being planned or set (polling or scheduled);
- a scheduled conference has its time and decision; a polling one has neither, and slots;
- an institution is invited to a conference once; an invitation's slot answers are for slots of
  its own conference (forged buttons name other polls' times), with valid votes, and an
  answered invitation's answer covers every time of the round it answered (never partial);
- the answers stored ("conference.answered" in the audit) are exactly the Sends the
  participants saw thanked.

Each example brings a new coordinator and new participants (the previous ones leave), a new
referral waiting for triage and a new open case; earlier cases, conferences, invitations and
slots stay, as the ids to forge.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from hypothesis import strategies as st
from sqlalchemy import func, select

from bot.core.models import (
    AuditEntry,
    Case,
    Conference,
    ConferenceSlot,
    ConferenceStatus,
    Consent,
    Institution,
    Invitation,
    Member,
    Referral,
    ReferralStatus,
    SlotAnswer,
)
from bot.sandbox import Person
from bot.sandbox.models import CallbackAnswer
from handlers.plan import PLACE, PLANNING
from handlers.triage import TYPING
from scheduling.finder import Vote
from tests.e2e.conftest import RunningBot
from tests.e2e.properties import (
    TEAM,
    Action,
    Data,
    Driver,
    Press,
    Single,
    Text,
    action_lists,
    actions_of,
    examples,
    flood_limits,  # noqa: F401 - the stand-in without flood limits
    garbage_data,
    run_properties,
)
from tests.rows import case_from, sent_referral

EXAMPLES = examples(30)
MAX_ACTIONS = 10
HELPFUL_STEPS = 12
THANKED = "Thank you, your answer was sent."
COMMANDS = ("/referrals", "/cases", "/agenda", "/refer", "/myreferrals", "/invite")
TEMPLATES = (
    "rf:o:{}",
    "rf:a:{}",
    "rf:d:{}",
    "rf:q:{}",
    "cf:n:{}",
    "cf:o:{}",
    "cf:a:{}",
    "cf:w:{}",
    "cf:b:{}",
    "cf:m:{}",
    "pe:{}",
    "pv:{}:1",
    "ps:{}:1",
    "cs:p:{}",
    "rq:p:{}",
    "pl:{}:s",
    "pl:{}:i:1",
    "rc:o:{}",
    "ca:x:{}",
)
PAIRS = (  # two ids: an invitation and a slot, a conference and a slot
    "pv:{}:{}",
    "cf:c:{}:{}",
    "ps:{}:{}",
)
FIXED_DATA = (
    "pl:1:s",
    "pl:1:p",
    "pl:x:x",
    "pl:1:g:link",
    "pl:1:g:x",
    "pl:1:i:-1",
    "pl:1:r:99999999999",
    "pl::",
    "cf:n:",
    "cf:c:1",
    "cf:c:1:2:3",
    "pv:1",
    "pv:١:١",
    "ps:1:x",
    "pe:0",
    "bt:x",
    "rf:x",
    "rq:p:-1",
    "cs:p:99999999999999999999",
)
SOURCES = ("referral", "case", "conference", "invitation", "slot", "institution")


def pair_data() -> st.SearchStrategy[str]:
    number = st.one_of(st.integers(0, 200), st.integers(0, 10**12))
    return st.builds(
        lambda template, a, b: template.format(a, b), st.sampled_from(PAIRS), number, number
    )


def case_actions(who: str) -> st.SearchStrategy[Action]:
    return actions_of(
        who,
        commands=COMMANDS if who == "coordinator" else ("/tasks", "/agenda"),
        templates=TEMPLATES,
        sources=SOURCES,
        data=st.one_of(garbage_data(FIXED_DATA), pair_data()),
        helpful_steps=HELPFUL_STEPS,
        extra_texts=("Zasedačka OSPOD, 2. patro", "Room <b>7</b> & '; DROP TABLE cases"),
    )


ACTIONS = action_lists(case_actions, ("coordinator", "coordinator", "police", "ppp"), MAX_ACTIONS)


@dataclass
class CaseDriver(Driver):
    referral_id: int = 0
    case_id: int = 0

    async def newcomers(self, number: int) -> dict[str, Person]:
        """New people for the example (the previous ones leave, so that polls and
        announcements do not fan out to everyone who ever joined), a referral waiting for
        triage and an open case."""
        people = await self.replace_people(TEAM, 10_000 + 10 * number)
        self.referral_id, self.case_id = await self.referral_and_case(people, number)
        if number % 2 == 0:  # every other example begins with the poll on its way
            self.people = people
            await self.poll_sent()
        return people

    async def poll_sent(self) -> None:
        """The coordinator plans the case's conference with both institutions and sends it."""
        async with self.bot.runtime.database.transaction() as session:
            invited = await session.scalars(
                select(Institution.id).where(Institution.name.in_(("Policie Cheb", "PPP Cheb")))
            )
            places = sorted(invited)
        steps = [f"cf:n:{self.case_id}"]
        steps += [f"pl:{self.case_id}:i:{place}" for place in places]
        steps.append(f"pl:{self.case_id}:s")
        for data in steps:
            await self.perform(Data("coordinator", data))

    async def referral_and_case(self, people: dict[str, Person], number: int) -> tuple[int, int]:
        runtime = self.bot.runtime
        now = runtime.clock.now()
        async with runtime.database.transaction() as session:
            coordinator = await session.scalar(
                select(Member).where(Member.telegram_user_id == people["coordinator"].user_id)
            )
            referrer = await session.scalar(
                select(Member).where(Member.telegram_user_id == people["police"].user_id)
            )
            assert coordinator is not None and referrer is not None
            institution = await session.get_one(Institution, referrer.institution_id)
            rows = []
            for status, code in ((ReferralStatus.SUBMITTED, "A"), (ReferralStatus.ACCEPTED, "B")):
                row = await sent_referral(
                    session,
                    f"R-2026-{code}{number:03d}",
                    institution.district_id,
                    referrer,
                    status,
                    runtime.cipher.encrypt_json(
                        {
                            "name": "Test Child",
                            "birth_year": 2014,
                            "class_name": "5.B",
                            "school": "ZŠ Hradební",
                            "description": "Misses Mondays.",
                            "categories": ["truancy"],
                        }
                    ),
                    sent=now,
                    guardians_informed=True,
                    guardians_consent=Consent.YES,
                )
                rows.append(row)
            case = await case_from(
                session, rows[1], f"PK-2026-T{number:03d}", coordinator.id, now=now
            )
            return rows[0].id, case.id

    async def helpful(self, who: str, variant: int) -> Single:
        if who != "coordinator":
            return await self.answering(who, variant)
        person = self.people[who]
        if await self.dialog_state(person, "triage") == TYPING:
            return Text(
                who, ("Not for us: <b>no</b> & X\r\nBEGIN:VEVENT", "How often?")[variant % 2]
            )
        plan = await self.dialog_state(person, "plan")
        if plan == PLACE:
            return Text(
                who, ("Zasedačka OSPOD", "Room <b>7</b> & '; DROP TABLE cases")[variant % 2]
            )
        if plan == PLANNING:
            newest = self.newest_buttons(person)
            invite = [d for d in newest if d.startswith(f"pl:{self.case_id}:i:")]
            if variant % 4 == 0 and invite:
                return Data(who, invite[variant % len(invite)])
            if variant % 4 == 1:
                return Data(who, f"pl:{self.case_id}:s")
            return Press(who, variant)
        status = await self.referral_status()
        if status in (ReferralStatus.SUBMITTED, ReferralStatus.NEEDS_INFO) and variant % 3 == 0:
            return Data(who, f"rf:{'oadq'[variant % 4]}:{self.referral_id}")
        conference = await self.conference_of_case()
        if conference is None and variant % 2:
            return Data(who, f"cf:n:{self.case_id}")
        if conference is not None and variant % 5 == 0:
            return Data(who, f"cf:o:{conference}")  # decide now: the offer of the best time
        return Press(who, variant)

    async def answering(self, who: str, variant: int) -> Single:
        """A participant taps times of their newest poll, and sends the answer now and then."""
        newest = self.newest_buttons(self.people[who])
        sends = [data for data in newest if data.startswith("ps:")]
        if sends and variant % 3 == 0:
            return Data(who, sends[0])
        return Press(who, variant)

    async def referral_status(self) -> ReferralStatus:
        async with self.bot.runtime.database.transaction() as session:
            row = await session.get_one(Referral, self.referral_id)
            return row.status

    async def conference_of_case(self) -> int | None:
        async with self.bot.runtime.database.transaction() as session:
            return await session.scalar(
                select(Conference.id).where(
                    Conference.case_id == self.case_id,
                    Conference.status.in_((ConferenceStatus.POLLING, ConferenceStatus.SCHEDULED)),
                )
            )

    async def ids(self, person: Person, source: str) -> list[int]:
        table = {
            "referral": Referral.id,
            "case": Case.id,
            "conference": Conference.id,
            "invitation": Invitation.id,
            "slot": ConferenceSlot.id,
            "institution": Institution.id,
        }[source]
        async with self.bot.runtime.database.transaction() as session:
            return list(await session.scalars(select(table)))

    async def after_press(self, person: Person, data: str, answer: CallbackAnswer) -> None:
        if answer.text == THANKED:
            self.tally["answers thanked"] += 1

    async def check(self) -> None:
        async with self.bot.runtime.database.transaction() as session:
            referrals = list(await session.scalars(select(Referral)))
            cases = list(await session.scalars(select(Case)))
            conferences = list(await session.scalars(select(Conference)))
            invitations = list(await session.scalars(select(Invitation)))
            slots = {slot.id: slot for slot in await session.scalars(select(ConferenceSlot))}
            answers = list(await session.scalars(select(SlotAnswer)))
            answered = await session.scalar(
                select(func.count())
                .select_from(AuditEntry)
                .where(AuditEntry.action == "conference.answered")
            )
            moves = await session.scalars(
                select(AuditEntry)
                .where(AuditEntry.action == "conference.rescheduled")
                .order_by(AuditEntry.id)
            )
            moved_to = {int(entry.subject_id or 0): entry.details["starts_at"] for entry in moves}
        per_referral = Counter(case.referral_id for case in cases)
        for row in referrals:
            expected = 1 if row.status is ReferralStatus.ACCEPTED else 0
            assert per_referral[row.id] == expected, self.failure(
                f"{row.code} is {row.status.value} with {per_referral[row.id]} cases"
            )
        live = Counter(
            conference.case_id
            for conference in conferences
            if conference.status in (ConferenceStatus.POLLING, ConferenceStatus.SCHEDULED)
        )
        assert all(n <= 1 for n in live.values()), self.failure(f"live conferences: {live}")
        by_id = {conference.id: conference for conference in conferences}
        for conference in conferences:
            self.check_conference(conference, slots, moved_to.get(conference.id))
        invited = Counter(
            (invitation.conference_id, invitation.institution_id)
            for invitation in invitations
            if invitation.institution_id is not None
        )
        twice = [key for key, n in invited.items() if n > 1]
        assert not twice, self.failure(f"institutions invited twice: {twice}")
        of_invitation: dict[int, set[int]] = {}
        invitation_by_id = {invitation.id: invitation for invitation in invitations}
        for row in answers:
            invitation = invitation_by_id[row.invitation_id]
            slot = slots[row.slot_id]
            assert slot.conference_id == invitation.conference_id, self.failure(
                f"invitation {invitation.id} of conference {invitation.conference_id} has an "
                f"answer for slot {slot.id} of conference {slot.conference_id}"
            )
            assert row.vote in {vote.value for vote in Vote}, self.failure(f"vote {row.vote!r}")
            of_invitation.setdefault(row.invitation_id, set()).add(row.slot_id)
        for invitation_id, answered_slots in of_invitation.items():
            conference = by_id[invitation_by_id[invitation_id].conference_id]
            rounds = {slots[slot].round for slot in answered_slots}
            for round_ in rounds:
                whole = {
                    s.id
                    for s in slots.values()
                    if s.conference_id == conference.id and s.round == round_
                }
                assert whole <= answered_slots, self.failure(
                    f"invitation {invitation_id} answered only part of round {round_}"
                )
        assert answered == self.tally["answers thanked"], self.failure(
            f"{answered} answers stored, {self.tally['answers thanked']} thanked for"
        )
        for status in ConferenceStatus:
            self.tally[f"conferences {status.value}"] = sum(c.status is status for c in conferences)
        self.tally["cases"] = len(cases)
        self.tally["slot answers"] = len(answers)

    def check_conference(
        self, conference: Conference, slots: dict[int, ConferenceSlot], moved_to: str | None
    ) -> None:
        """A scheduled conference is at one of its times, or at the new time it was last moved
        to (the coordinator's "new date" offers times outside the poll)."""
        own = [slot for slot in slots.values() if slot.conference_id == conference.id]
        if conference.status is ConferenceStatus.SCHEDULED:
            assert conference.starts_at is not None and conference.decided_at is not None, (
                self.failure(f"conference {conference.id} is scheduled without a time")
            )
            at = conference.starts_at
            assert at.isoformat() == moved_to or any(s.starts_at == at for s in own), self.failure(
                f"conference {conference.id} is set for {at}, none of its times"
            )
        if conference.status is ConferenceStatus.POLLING:
            assert conference.starts_at is None and own, self.failure(
                f"conference {conference.id} polls with a time set or without times"
            )


async def test_triage_planning_and_polls_keep_the_database_consistent(bot: RunningBot) -> None:
    driver = CaseDriver(bot)
    tally = await run_properties(driver, ACTIONS, EXAMPLES, "case, plan and poll")
    assert tally["callbacks answered"] > 0
