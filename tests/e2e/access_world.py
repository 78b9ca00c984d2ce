"""Two districts in one database, each with institutions, people in every role and objects in
every state, for the access matrix and the district isolation tests.

Everything is written straight into the database (as the services leave it) rather than
through dialogs: the matrix presses about 1,500 buttons, and building its objects through the
bot would take longer than pressing them. What is tested then goes through the running bot.

Every object carries `secrets`: the words that identify it (codes, the child's name, a place, a
task's title). A refused person must never see one of them. Every name in district B contains
"Sokolov", so one word tells whether anything of B reached a person of A.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.core.crypto import Cipher
from bot.core.models import (
    Conference,
    ConferenceSlot,
    ConferenceStatus,
    Consent,
    District,
    Institution,
    InstitutionKind,
    Invitation,
    InvitationKind,
    Member,
    NoteKind,
    RecordCirculation,
    RecordComment,
    RecordReply,
    Referral,
    ReferralNote,
    ReferralStatus,
    Role,
    Rsvp,
    SlotAnswer,
    Task,
    TaskNote,
    TaskStatus,
)
from bot.core.runtime import Runtime
from bot.sandbox import BotApiSandbox, Person
from bot.services import confidentiality
from tests.rows import case_from, sent_referral

DISTRICTS = {"A": "Cheb", "B": "Sokolov"}
INSTITUTIONS = {
    "OSPOD": InstitutionKind.OSPOD,
    "School": InstitutionKind.SCHOOL,
    "Police": InstitutionKind.POLICE,
    "Town": InstitutionKind.SOCIAL_DEPARTMENT,
}
# key, institution, role. K is the police's case manager: a coordinator outside OSPOD.
PEOPLE = (
    ("C1", "OSPOD", Role.COORDINATOR),
    ("C2", "OSPOD", Role.COORDINATOR),
    ("K", "Police", Role.COORDINATOR),
    ("R1", "School", Role.REFERRER),
    ("R2", "School", Role.REFERRER),
    ("P1", "Police", Role.PARTICIPANT),
    ("P2", "Police", Role.PARTICIPANT),
    ("A1", "Town", Role.ADMIN),
    ("A2", "Town", Role.ADMIN),
    ("D", "Police", Role.PARTICIPANT),  # has left: deactivated
    # Spares, whom an admin may deactivate without taking anybody else's objects away.
    ("S-OSPOD", "OSPOD", Role.PARTICIPANT),
    ("S-School", "School", Role.PARTICIPANT),
    ("S-Police", "Police", Role.PARTICIPANT),
    ("S-Town", "Town", Role.PARTICIPANT),
)
COLLEAGUE = {"OSPOD": "C2", "School": "R2", "Police": "P2", "Town": "A2"}
UNKNOWN_USER = 999
# Who holds the objects of each kind, in the order objects are looked for (see World.pick).
REFERRERS = ("R1", "R2", "C1", "C2", "K")
CHAIRS = ("C1", "C2", "K")
OWNERS = ("R1", "R2", "P1", "P2", "C1", "C2", "A1", "A2", "K")
# Which kind of object each pool holds.
POOLS = {
    "referral": "referral",
    "referral-accept": "referral",
    "referral-question": "referral",
    "case": "case",
    "case-close-f": "case",
    "case-close-h": "case",
    "case-close-o": "case",
    "poll": "conference",
    "poll-invitation": "invitation",
    "poll-confirm": "conference",
    "poll-window": "conference",
    "scheduled": "conference",
    "scheduled-invitation": "invitation",
    "handover": "invitation",
    "move": "conference",
    "cancel": "conference",
    "held": "conference",
    "circulated": "conference",
    "circulated-invitation": "invitation",
    "comment": "comment",
    "task": "task",
    "task-done": "task",
    "task-grant": "task",
    "task-refuse": "task",
    "task-cancel": "task",
    "task-reassign": "task",
    "member": "member",
    "member-do": "member",
}
RELATIONS = ("own", "institution", "district", "other")


@dataclass(frozen=True)
class Who:
    """The test's own model of a person: what the rules are stated in."""

    label: str  # the role as the matrix names it
    key: str | None  # "A.R1"; None for a stranger
    district: str | None
    institution: str | None  # "A.School"
    role: Role | None
    active: bool
    user_id: int

    @property
    def registered(self) -> bool:
        return self.key is not None and self.active


@dataclass
class Thing:
    """An object the matrix presses buttons about."""

    kind: str
    id: int
    district: str
    holder: str | None  # referrer, case manager, chair, task owner, member; who holds an invitation
    institution: str  # the holder's institution; for an invitation, the invited institution
    chair: str | None = None  # the conference's coordinator
    secrets: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def relation(self, who: Who) -> str:
        """own, institution, district or other: what the object is to the person."""
        if who.district is None:  # a stranger: everything is someone else's
            return "district" if self.district == "A" else "other"
        if self.district != who.district:
            return "other"
        if self.holder is not None and self.holder == who.key:
            return "own"
        if self.institution == who.institution:
            return "institution"
        return "district"


@dataclass
class World:
    members: dict[str, Member] = field(default_factory=dict)  # "A.R1" → row
    institutions: dict[str, Institution] = field(default_factory=dict)  # "A.School" → row
    pools: dict[str, list[Thing]] = field(default_factory=dict)
    people: dict[int, Person] = field(default_factory=dict)  # by Telegram user id

    def member_id(self, key: str) -> int:
        return self.members[key].id

    def name(self, key: str) -> str:
        return self.members[key].display_name

    def pick(self, pool: str, who: Who, relation: str) -> Thing | None:
        """The first object of the pool that is `relation` to the person, if there is one."""
        return next((t for t in self.pools[pool] if t.relation(who) == relation), None)

    def things(self) -> Iterator[Thing]:
        for pool in self.pools.values():
            yield from pool

    def secrets_of(self, district: str) -> set[str]:
        return {s for t in self.things() if t.district == district for s in t.secrets}


def who(world: World, label: str, key: str | None) -> Who:
    if key is None:
        return Who(label, None, None, None, None, False, UNKNOWN_USER)
    member = world.members[key]
    district, local = key.split(".")
    institution = next(i for k, i, _r in PEOPLE if k == local)
    return Who(
        label,
        key,
        district,
        f"{district}.{institution}",
        member.role,
        member.active,
        member.telegram_user_id,
    )


class Builder:
    """Writes the world in one transaction; codes, names and times are all distinct."""

    def __init__(self, runtime: Runtime, sandbox: BotApiSandbox) -> None:
        self.runtime = runtime
        self.sandbox = sandbox
        self.cipher: Cipher = runtime.cipher
        self.now = runtime.clock.now()
        self.world = World()
        self._numbers = itertools.count(1)
        self._future = itertools.count(0)
        self._past = itertools.count(0)
        self.session: AsyncSession

    async def build(self) -> World:
        async with self.runtime.database.transaction() as session:
            self.session = session
            for letter, town in DISTRICTS.items():
                await self._district(letter, town)
            for letter in DISTRICTS:
                await self._objects(letter)
            # Everyone has confirmed confidentiality, as joining through the bot asks them to.
            await confidentiality.record_seeded(session, now=self.now)
        world = self.world
        for member in world.members.values():
            world.people[member.telegram_user_id] = self.sandbox.person(
                member.telegram_user_id, member.display_name, language_code="en"
            )
        world.people[UNKNOWN_USER] = self.sandbox.person(
            UNKNOWN_USER, "Stranger", language_code="en"
        )
        return world

    # People and places.

    async def _district(self, letter: str, town: str) -> None:
        district = District(name=town, created_at=self.now)
        self.session.add(district)
        await self.session.flush()
        for name, kind in INSTITUTIONS.items():
            institution = Institution(
                district_id=district.id, name=f"{name} {town}", kind=kind, created_at=self.now
            )
            self.session.add(institution)
            await self.session.flush()
            self.world.institutions[f"{letter}.{name}"] = institution
        for number, (key, institution_key, role) in enumerate(PEOPLE, start=1):
            user_id = (100 if letter == "A" else 200) + number
            member = Member(
                telegram_user_id=user_id,
                chat_id=user_id,
                display_name=f"{town} {key}",
                institution_id=self.world.institutions[f"{letter}.{institution_key}"].id,
                role=role,
                locale="en",
                active=key != "D",
                reachable=True,
                joined_at=self.now - timedelta(days=60),
                deactivated_at=self.now - timedelta(days=1) if key == "D" else None,
            )
            self.session.add(member)
            self.world.members[f"{letter}.{key}"] = member
        await self.session.flush()

    def _town(self, letter: str) -> str:
        return DISTRICTS[letter]

    def _number(self) -> int:
        return next(self._numbers)

    def _later(self) -> datetime:
        """A future time no other conference or candidate has (4 hours apart: a conference
        moved by 2 hours still keeps clear of the next one)."""
        return self.now + timedelta(days=5, hours=4 * next(self._future))

    def _earlier(self) -> datetime:
        return self.now - timedelta(days=40) + timedelta(hours=6 * next(self._past))

    def _held(
        self,
        kind: str,
        row_id: int,
        holder: str,
        *,
        chair: str | None = None,
        secrets: tuple[str, ...] = (),
        extra: dict[str, Any] | None = None,
    ) -> Thing:
        """A thing a person holds: its district and institution are the holder's."""
        return Thing(
            kind,
            row_id,
            holder.split(".", maxsplit=1)[0],
            holder,
            self._institution_of(holder),
            chair=chair,
            secrets=secrets,
            extra=extra or {},
        )

    def _institution_of(self, key: str) -> str:
        letter, local = key.split(".")
        return f"{letter}.{next(i for k, i, _r in PEOPLE if k == local)}"

    # Objects.

    async def _objects(self, letter: str) -> None:
        pools = self.world.pools
        for name in POOLS:
            pools.setdefault(name, [])
        for pool in ("referral", "referral-accept"):
            for key in REFERRERS:
                pools[pool].append(await self._referral(letter, key, ReferralStatus.SUBMITTED))
        for key in REFERRERS:
            pools["referral-question"].append(
                await self._referral(letter, key, ReferralStatus.NEEDS_INFO)
            )
        for pool in ("case", "case-close-f", "case-close-h", "case-close-o"):
            for key in CHAIRS:
                case, _referral = await self._case(letter, key)
                pools[pool].append(case)
        for pool in ("poll", "poll-confirm", "poll-window"):
            for conference in await self._conference_set(letter, ConferenceStatus.POLLING):
                pools[pool].append(conference)
                if pool == "poll":
                    pools["poll-invitation"] += conference.extra["invitations"]
        for pool in ("scheduled", "handover", "move", "cancel"):
            for conference in await self._conference_set(letter, ConferenceStatus.SCHEDULED):
                if pool == "scheduled":
                    pools["scheduled-invitation"] += conference.extra["invitations"]
                if pool == "handover":
                    pools["handover"] += conference.extra["invitations"]
                else:
                    pools[pool].append(conference)
        for conference in await self._conference_set(letter, ConferenceStatus.HELD):
            pools["held"].append(conference)
        for conference in await self._conference_set(letter, ConferenceStatus.HELD):
            pools["circulated"].append(conference)
            invitations, comment = await self._circulated(letter, conference)
            pools["circulated-invitation"] += invitations
            pools["comment"].append(comment)
        homes = [await self._conference(letter, key, ConferenceStatus.HELD, {}) for key in CHAIRS]
        for pool in ("task", "task-done", "task-grant", "task-refuse", "task-cancel"):
            for index, key in enumerate(OWNERS):
                pools[pool].append(await self._task(letter, key, homes[index % len(homes)], pool))
        for index, key in enumerate(OWNERS):
            pools["task-reassign"].append(
                await self._task(letter, key, homes[index % len(homes)], "task-reassign")
            )
        for key, _institution, _role in PEOPLE:
            if key != "D":
                pools["member"].append(self._member_thing(f"{letter}.{key}"))
        # Spares first: an admin's press on a colleague or another institution's member then
        # takes a spare out, never someone the other rows need.
        spares = [f"{letter}.{k}" for k, _i, _r in PEOPLE if k.startswith("S-")]
        pools["member-do"] += [self._member_thing(key) for key in spares]
        pools["member-do"] += [
            self._member_thing(f"{letter}.{k}")
            for k, _i, _r in PEOPLE
            if k in ("R1", "P1", "C1", "A1")
        ]

    def _member_thing(self, key: str) -> Thing:
        member = self.world.members[key]
        return self._held("member", member.id, key, secrets=(member.display_name,))

    async def _referral(self, letter: str, key: str, status: ReferralStatus) -> Thing:
        number = self._number()
        town = self._town(letter)
        referrer = self.world.members[f"{letter}.{key}"]
        child = f"{town} child {number:03}"
        description = f"{town} description {number:03}"
        referral = await self._sent_referral(
            letter,
            referrer,
            number,
            status,
            {
                "name": child,
                "birth_year": 2014,
                "class_name": "5.A",
                "school": f"School {town}",
                "categories": ["truancy"],
                "other": None,
                "description": description,
                "tried": "",
            },
            sent=self.now - timedelta(days=2),
            nudged_at=self.now,
        )
        if status is ReferralStatus.NEEDS_INFO:
            coordinator = self.world.members[f"{letter}.C1"]
            self.session.add(
                ReferralNote(
                    referral_id=referral.id,
                    author_id=coordinator.id,
                    kind=NoteKind.QUESTION,
                    at=self.now - timedelta(days=1),
                    body=self.cipher.encrypt_json(f"{town} question {number:03}"),
                )
            )
        assert referral.code is not None
        return self._held(
            "referral", referral.id, f"{letter}.{key}", secrets=(referral.code, child, description)
        )

    async def _sent_referral(
        self,
        letter: str,
        referrer: Member,
        number: int,
        status: ReferralStatus,
        details: dict[str, object],
        *,
        sent: datetime,
        decided_at: datetime | None = None,
        nudged_at: datetime | None = None,
    ) -> Referral:
        """A routine referral from the town's school, no danger, the guardians agreeing, sent
        (and its coordinators alerted) at `sent`."""
        return await sent_referral(
            self.session,
            f"R-2026-{1000 + number}",
            self.world.institutions[f"{letter}.School"].district_id,
            referrer,
            status,
            self.cipher.encrypt_json(details),
            sent=sent,
            guardians_informed=True,
            guardians_consent=Consent.YES,
            decided_at=decided_at,
            nudged_at=nudged_at,
        )

    async def _case(self, letter: str, manager: str) -> tuple[Thing, str]:
        """An open case (from an accepted referral) managed by `manager`."""
        number = self._number()
        town = self._town(letter)
        child = f"{town} child {number:03}"
        referrer = self.world.members[f"{letter}.R1"]
        referral = await self._sent_referral(
            letter,
            referrer,
            number,
            ReferralStatus.ACCEPTED,
            {"name": child, "categories": ["truancy"], "description": "", "tried": ""},
            sent=self.now - timedelta(days=50),
            decided_at=self.now - timedelta(days=49),
        )
        case = await case_from(
            self.session,
            referral,
            f"PK-2026-{1000 + number}",
            self.world.members[f"{letter}.{manager}"].id,
            now=self.now - timedelta(days=49),
        )
        thing = self._held(
            "case",
            case.id,
            f"{letter}.{manager}",
            chair=f"{letter}.{manager}",
            secrets=(case.code, child),
            extra={"referral": referral.code},
        )
        return thing, child

    async def _conference_set(self, letter: str, status: ConferenceStatus) -> list[Thing]:
        """Four conferences: C1's (each invited institution's invitation held by the actor of
        that institution), C2's (nobody holds one), K's with OSPOD's held by C1, and K's with
        nobody holding one."""
        return [
            await self._conference(
                letter, "C1", status, {"School": "R1", "Police": "P1", "Town": "A1"}
            ),
            await self._conference(letter, "C2", status, {}),
            await self._conference(letter, "K", status, {"OSPOD": "C1"}),
            await self._conference(letter, "K", status, {}),
        ]

    async def _conference(
        self, letter: str, chair: str, status: ConferenceStatus, holds: dict[str, str]
    ) -> Thing:
        case, child = await self._case(letter, chair)
        number = self._number()
        town = self._town(letter)
        place = f"{town} room {number:03}"
        chair_member = self.world.members[f"{letter}.{chair}"]
        chair_institution = self._institution_of(f"{letter}.{chair}").split(".")[1]
        polling = status is ConferenceStatus.POLLING
        starts_at = (
            None
            if polling
            else (self._earlier() if status is ConferenceStatus.HELD else self._later())
        )
        today = self.now.date()
        conference = Conference(
            case_id=case.id,
            district_id=self.world.institutions[f"{letter}.OSPOD"].district_id,
            coordinator_id=chair_member.id,
            status=status,
            duration_minutes=90,
            place=place,
            window_first=today + timedelta(days=7),
            window_last=today + timedelta(days=28),
            deadline=self.now + timedelta(days=3) if polling else self.now - timedelta(days=45),
            nudge_at=self.now + timedelta(days=2) if polling else self.now - timedelta(days=46),
            starts_at=starts_at,
            created_at=self.now - timedelta(days=1 if polling else 48),
            decided_at=None if polling else self.now - timedelta(days=45),
            offered_at=None if polling else self.now - timedelta(days=45),
            round=1,
            uid=None if polling else f"access-{number}@roundtable",
            sequence=0,
            invited_starts_at=starts_at,
        )
        self.session.add(conference)
        await self.session.flush()
        slots = []
        for _ in range(3 if polling else 1):
            slot = ConferenceSlot(
                conference_id=conference.id,
                starts_at=self._later() if polling else starts_at,
                round=1,
            )
            self.session.add(slot)
            slots.append(slot)
        await self.session.flush()
        invitations: list[Thing] = []
        first_invitation = None
        for name in INSTITUTIONS:
            if name == chair_institution:
                continue  # the chair's own institution chairs; it is not invited
            holder_key = f"{letter}.{holds[name]}" if name in holds else None
            holder = self.world.members[holder_key] if holder_key else None
            invitation = Invitation(
                conference_id=conference.id,
                kind=InvitationKind.INSTITUTION,
                institution_id=self.world.institutions[f"{letter}.{name}"].id,
                number=0,
                required=True,
            )
            if holder is not None and polling:
                invitation.answered_by_id = holder.id
                invitation.answered_at = self.now - timedelta(hours=1)
            elif holder is not None and status is ConferenceStatus.SCHEDULED:
                invitation.rsvp = Rsvp.ACCEPTED
                invitation.rsvp_by_id = holder.id
                invitation.rsvp_at = self.now - timedelta(hours=1)
                invitation.delegate_id = holder.id
            elif status is ConferenceStatus.HELD:
                invitation.rsvp = Rsvp.ACCEPTED
                invitation.attended = True
                invitation.attendee_id = (
                    holder or self.world.members[f"{letter}.{COLLEAGUE[name]}"]
                ).id
            self.session.add(invitation)
            await self.session.flush()
            if holder is not None and polling:
                self.session.add(
                    SlotAnswer(invitation_id=invitation.id, slot_id=slots[0].id, vote="yes")
                )
            first_invitation = first_invitation or invitation
            colleague = self.world.members[f"{letter}.{COLLEAGUE[name]}"]
            invitations.append(
                Thing(
                    "invitation",
                    invitation.id,
                    letter,
                    holder_key,
                    f"{letter}.{name}",
                    chair=f"{letter}.{chair}",
                    secrets=(case.secrets[0], place),
                    extra={
                        "slot": slots[0].id,
                        "round": 1,
                        "sequence": 0,
                        "colleague": colleague.id,
                        "conference": conference.id,
                    },
                )
            )
        offline = Invitation(
            conference_id=conference.id,
            kind=InvitationKind.OFFLINE,
            number=1,
            required=False,
            attended=True if status is ConferenceStatus.HELD else None,
        )
        self.session.add(offline)
        await self.session.flush()
        assert first_invitation is not None
        return self._held(
            "conference",
            conference.id,
            f"{letter}.{chair}",
            chair=f"{letter}.{chair}",
            secrets=(case.secrets[0], place, child),
            extra={
                "case": case.id,
                "code": case.secrets[0],
                "child": child,
                "slot": slots[0].id,
                "invitation": first_invitation.id,
                "offline": offline.id,
                "invitations": invitations,
                "starts_at": starts_at,
            },
        )

    async def _circulated(self, letter: str, conference: Thing) -> tuple[list[Thing], Thing]:
        """The record finished and its draft circulated: each invitation answered by the one
        who came for it (its holder here), and a comment on the first."""
        row = await self.session.get_one(Conference, conference.id)
        row.recorded_at = self.now - timedelta(days=1)
        self.session.add(
            RecordCirculation(
                conference_id=conference.id,
                sent_at=self.now - timedelta(days=1),
                comments_until=self.now + timedelta(days=2),
            )
        )
        keys = {member.id: key for key, member in self.world.members.items()}
        things: list[Thing] = []
        for item in conference.extra["invitations"]:
            invitation = await self.session.get_one(Invitation, item.id)
            self.session.add(RecordReply(invitation_id=invitation.id, conference_id=conference.id))
            assert invitation.attendee_id is not None
            things.append(
                Thing(
                    "invitation",
                    invitation.id,
                    letter,
                    keys[invitation.attendee_id],
                    item.institution,
                    chair=item.chair,
                    secrets=item.secrets,
                    extra=dict(item.extra),
                )
            )
        first = things[0]
        assert first.holder is not None
        text = f"{self._town(letter)} comment {self._number():03}"
        comment = RecordComment(
            invitation_id=first.id,
            member_id=self.world.members[first.holder].id,
            at=self.now - timedelta(hours=2),
            text=self.cipher.encrypt(text.encode()),
            late=False,
        )
        self.session.add(comment)
        await self.session.flush()
        found = Thing(
            "comment",
            comment.id,
            letter,
            first.holder,
            first.institution,
            chair=first.chair,
            secrets=(*first.secrets, text),
        )
        return things, found

    async def _task(self, letter: str, owner: str, home: Thing, pool: str) -> Thing:
        number = self._number()
        town = self._town(letter)
        title = f"{town} task {number:03}"
        note = f"{town} note {number:03}"
        due_on: date = self.now.date() + timedelta(days=14)
        asked = due_on + timedelta(days=7) if pool in ("task-grant", "task-refuse") else None
        task = Task(
            case_id=home.extra["case"],
            conference_id=home.id,
            title=self.cipher.encrypt(title.encode()),
            owner_id=self.world.members[f"{letter}.{owner}"].id,
            due_on=due_on,
            status=TaskStatus.OPEN,
            version=1,
            created_at=self.now - timedelta(days=20),
            issued_at=self.now - timedelta(days=20),
            asked_due_on=asked,
        )
        self.session.add(task)
        await self.session.flush()
        self.session.add(
            TaskNote(
                task_id=task.id,
                member_id=task.owner_id,
                kind="note",
                body=self.cipher.encrypt(note.encode()),
                created_at=self.now - timedelta(days=2),
            )
        )
        # Someone else who may own a task of that conference: the school's other referrer.
        target = "R2" if owner != "R2" else "R1"
        return self._held(
            "task",
            task.id,
            f"{letter}.{owner}",
            chair=home.chair,
            secrets=(title, note),
            extra={
                "title": title,
                "note": note,
                "code": home.extra["code"],
                "asked": asked,
                "reassign_to": self.world.members[f"{letter}.{target}"].id,
            },
        )
