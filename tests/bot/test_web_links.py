"""The web page's rules without a browser: a guest's link (made once per round, stored hashed,
refused when wrong, expired or used up), the guest's answers through it, Telegram's initData
checked, and the request limits."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.core.clock import FakeClock
from bot.core.crypto import Cipher
from bot.core.db import Database
from bot.core.models import (
    Conference,
    ConferenceSlot,
    Invitation,
    PollMessage,
    Rsvp,
    SlotAnswer,
)
from bot.core.web_tables import LinkPurpose, WebLink
from bot.services import polls, web_links
from bot.services.board import NotInPoll
from bot.services.web_links import BadLink
from bot.transport.web.initdata import InitDataError, sign, verify
from bot.transport.web.limits import RateLimits
from scheduling.finder import Vote
from tests.bot.mail_world import schedule, world

TOKEN = "123456:test-token"


async def _link(database: Database, cipher: Cipher, clock: FakeClock, invitation: int) -> str:
    async with database.transaction() as session:
        token = await web_links.guest_link(
            session, cipher, invitation, LinkPurpose.POLL, now=clock.now()
        )
    assert token is not None
    return token


async def _slots(database: Database, conference_id: int) -> list[int]:
    async with database.reading() as session:
        return list(
            await session.scalars(
                select(ConferenceSlot.id)
                .where(ConferenceSlot.conference_id == conference_id)
                .order_by(ConferenceSlot.starts_at)
            )
        )


async def test_a_guests_link_is_made_once_a_round_and_only_its_hash_is_kept(
    database: Database, clock: FakeClock, cipher: Cipher
) -> None:
    seeded = await world(database, clock, cipher)
    token = await _link(database, cipher, clock, seeded.hospital)
    assert await _link(database, cipher, clock, seeded.hospital) == token  # the nudge's too
    assert await _link(database, cipher, clock, seeded.doctor) != token
    async with database.reading() as session:
        rows = list(await session.scalars(select(WebLink)))
        conference = await session.get_one(Conference, seeded.conference_id)
        # A member's invitation has no link: members answer in the chat.
        assert (
            await web_links.guest_link(
                session,
                cipher,
                (
                    await session.scalars(
                        select(Invitation.id).where(Invitation.email.is_(None)).limit(1)
                    )
                ).one(),
                LinkPurpose.POLL,
                now=clock.now(),
            )
            is None
        )
    assert len(rows) == 2
    hospital = next(row for row in rows if row.invitation_id == seeded.hospital)
    assert hospital.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token.encode() not in hospital.token  # encrypted
    assert hospital.expires_at == conference.deadline
    assert len(token) >= 32


async def test_a_link_is_refused_when_wrong_expired_or_used_up(
    database: Database, clock: FakeClock, cipher: Cipher
) -> None:
    seeded = await world(database, clock, cipher)
    token = await _link(database, cipher, clock, seeded.hospital)
    async with database.reading() as session:
        opened = await web_links.open_link(session, token, now=clock.now())
        assert opened.invitation.id == seeded.hospital
        for wrong in ("", "x" * 65, token[:-1] + ("A" if token[-1] != "A" else "B")):
            with pytest.raises(BadLink) as refused:
                await web_links.open_link(session, wrong, now=clock.now())
            assert refused.value.reason == "unknown"
        deadline = opened.conference.deadline
        with pytest.raises(BadLink) as refused:
            await web_links.open_link(session, token, now=deadline)
        assert refused.value.reason == "expired" and refused.value.until == deadline
    await schedule(database, clock, seeded)  # the time decided: the poll's link is used up
    async with database.reading() as session:
        with pytest.raises(BadLink) as refused:
            await web_links.open_link(session, token, now=clock.now())
        assert refused.value.reason == "used"
        # ... and the invitation has a link of its own now.
    async with database.transaction() as session:
        invitation = await web_links.guest_link(
            session, cipher, seeded.hospital, LinkPurpose.INVITATION, now=clock.now()
        )
    assert invitation is not None and invitation != token


async def test_a_guest_answers_the_poll_replaces_the_answer_and_an_old_round_is_refused(
    database: Database, clock: FakeClock, cipher: Cipher
) -> None:
    seeded = await world(database, clock, cipher)
    token = await _link(database, cipher, clock, seeded.hospital)
    slots = await _slots(database, seeded.conference_id)
    async with database.transaction() as session:
        opened = await web_links.open_link(session, token, now=clock.now())
        done = await web_links.answer_poll(
            session, opened, 1, {slots[0]: Vote.YES, slots[1]: Vote.IF_NEED_BE}, now=clock.now()
        )
        hospital = next(i for i in done.board.invitees if i.id == seeded.hospital)
        assert hospital.answered_at == clock.now() and hospital.answered_by is None
    clock.advance(timedelta(minutes=5))
    async with database.transaction() as session:
        opened = await web_links.open_link(session, token, now=clock.now())
        await web_links.answer_poll(session, opened, 1, {slots[0]: Vote.NO}, now=clock.now())
    async with database.reading() as session:
        votes = dict(
            (
                await session.execute(
                    select(SlotAnswer.slot_id, SlotAnswer.vote).where(
                        SlotAnswer.invitation_id == seeded.hospital
                    )
                )
            ).all()
        )
    # The whole answer is replaced: every time answered, the unmarked ones as no.
    assert votes == {slot: (Vote.NO.value) for slot in slots}
    async with database.transaction() as session:
        opened = await web_links.open_link(session, token, now=clock.now())
        with pytest.raises(NotInPoll):
            await web_links.answer_poll(session, opened, 0, {slots[0]: Vote.YES}, now=clock.now())


async def test_a_guest_declines_the_invitation_with_a_reason_kept_encrypted(
    database: Database, clock: FakeClock, cipher: Cipher
) -> None:
    seeded = await world(database, clock, cipher)
    await schedule(database, clock, seeded)
    async with database.transaction() as session:
        token = await web_links.guest_link(
            session, cipher, seeded.hospital, LinkPurpose.INVITATION, now=clock.now()
        )
    assert token is not None
    async with database.transaction() as session:
        opened = await web_links.open_link(session, token, now=clock.now())
        shown = await web_links.guest_invitation(session, opened)
        with pytest.raises(BadLink):  # an answer to an older SEQUENCE of the invitation
            await web_links.answer_invitation(
                session,
                opened,
                shown.sequence - 1,
                Rsvp.DECLINED,
                None,
                cipher=cipher,
                now=clock.now(),
            )
    async with database.transaction() as session:
        opened = await web_links.open_link(session, token, now=clock.now())
        board = await web_links.answer_invitation(
            session,
            opened,
            shown.sequence,
            Rsvp.DECLINED,
            "  Ordinace zavřena  " + "x" * 400,
            cipher=cipher,
            now=clock.now(),
        )
        assert next(i for i in board.invitees if i.id == seeded.hospital).rsvp is Rsvp.DECLINED
    async with database.reading() as session:
        invitation = await session.get_one(Invitation, seeded.hospital)
        assert invitation.decline_reason is not None
        reason = cipher.decrypt_json(invitation.decline_reason)
        assert reason.startswith("Ordinace zavřena") and len(reason) == web_links.REASON_MAX


def _fields(user_id: int, at: int) -> dict[str, str]:
    return {"user": json.dumps({"id": user_id, "first_name": "Petr"}), "auth_date": str(at)}


def test_init_data_as_telegram_signs_it_is_taken_and_anything_else_refused(
    clock: FakeClock,
) -> None:
    now = clock.now()
    at = int(now.timestamp())
    genuine = sign(_fields(42, at), TOKEN)
    assert verify(genuine, TOKEN, now=now, max_age=timedelta(hours=1)) == 42

    # The signature as Telegram's documentation writes it out, step by step.
    fields = _fields(42, at)
    check = "\n".join(f"{key}={fields[key]}" for key in sorted(fields))
    secret = hmac.new(b"WebAppData", TOKEN.encode(), hashlib.sha256).digest()
    assert genuine.endswith("hash=" + hmac.new(secret, check.encode(), hashlib.sha256).hexdigest())

    def reason(init_data: str, when: int = at) -> str:
        with pytest.raises(InitDataError) as refused:
            verify(
                init_data,
                TOKEN,
                now=now.replace(microsecond=0) + timedelta(seconds=when - at),
                max_age=timedelta(hours=1),
            )
        return refused.value.reason

    assert reason("") == "missing"
    assert reason(sign(_fields(42, at), "654321:another-bots-token")) == "forged"
    assert reason(genuine.replace("%2242%22", "%2243%22").replace("42", "43")) == "forged"
    assert reason(genuine + "&user=x") == "malformed"  # a field given twice
    assert reason(genuine, when=at + 3601) == "old"
    assert reason(sign(_fields(42, at + 3600), TOKEN)) == "old"  # from the future
    assert reason(sign({"auth_date": str(at), "user": '{"id": true}'}, TOKEN)) == "malformed"
    assert reason(sign({"auth_date": str(at)}, TOKEN)) == "malformed"


def test_requests_over_the_limit_are_refused_until_the_minute_has_passed(
    clock: FakeClock,
) -> None:
    limits = RateLimits()
    assert all(limits.allow("t:a", 3, clock.now()) for _ in range(3))
    assert not limits.allow("t:a", 3, clock.now())
    assert limits.allow("t:b", 3, clock.now())  # another key has its own count
    clock.advance(timedelta(seconds=61))
    assert limits.allow("t:a", 3, clock.now())


async def test_the_page_and_the_chat_opening_a_members_poll_at_once_make_one_row(
    database: Database, clock: FakeClock, cipher: Cipher
) -> None:
    """The Mini App read the poll while the chat sent it (after a confidentiality tap): both
    make the member's poll row on first need; on PostgreSQL they raced into a unique key."""
    seeded = await world(database, clock, cipher)
    async with database.reading() as session:
        invitation = (
            await session.scalars(
                select(Invitation.id).where(
                    Invitation.institution_id == seeded.officer.institution_id
                )
            )
        ).one()

    async def opened() -> None:
        async with database.transaction() as session:
            view = await polls.poll(session, seeded.officer, invitation, now=clock.now())
            assert view.invitation.id == invitation

    await asyncio.gather(*(opened() for _ in range(8)))
    async with database.reading() as session:
        rows = await session.scalars(
            select(PollMessage).where(PollMessage.invitation_id == invitation)
        )
        assert len(rows.all()) == 1


def test_the_counts_of_a_flood_are_let_go_once_its_minute_has_passed(clock: FakeClock) -> None:
    """Made-up links by the thousand are kept only while they count: a minute later, the
    next request lets them all go (the memory of a flood is not held until a restart)."""
    limits = RateLimits()
    for number in range(5000):
        limits.allow(f"t:made-up-{number}", 30, clock.now())
    assert len(limits) == 5000
    clock.advance(timedelta(seconds=61))
    assert limits.allow("t:a", 30, clock.now())
    assert len(limits) == 1
    clock.advance(timedelta(seconds=30))
    assert limits.allow("t:b", 30, clock.now())
    assert len(limits) == 2  # "t:a" still counts
