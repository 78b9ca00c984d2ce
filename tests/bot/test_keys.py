"""Re-encryption of every encrypted column (bot.core.keys), the core of `roundtable rotate-key`."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import LargeBinary, select

from bench import world
from bot.core import keys
from bot.core.base import Base
from bot.core.clock import FakeClock
from bot.core.crypto import Cipher, InvalidToken
from bot.core.db import Database
from bot.core.models import (
    ENCRYPTED_COLUMNS,
    ChatData,
    InstitutionKind,
    NoteKind,
    Referral,
    ReferralNote,
    ReferralStatus,
    Role,
    UserData,
)
from bot.services import members
from tests.conftest import TEST_KEY

NEW_KEY = Cipher.generate_key()
OTHER_KEY = Cipher.generate_key()
# What re-encryption counts when there is nothing to do: each table with encrypted values.
NOTHING = dict.fromkeys(
    (
        "referrals",
        "referral_notes",
        "user_data",
        "chat_data",
        "invitations",
        "conferences",
        "tasks",
        "task_notes",
        "email_confirmations",
        "web_links",
        "conference_methods",
        "record_comments",
    ),
    0,
)

# Plaintext per (table, primary key): what every row must still say after re-encryption.
Plain = dict[tuple[str, Any, str], bytes]


async def seed(database: Database, clock: FakeClock, cipher: Cipher, *, rows: int = 3) -> Plain:
    """A member with `rows` referrals, notes, user data and chat data, each sealed by `cipher`."""
    plain: Plain = {}
    async with database.transaction() as session:
        district = await members.ensure_district(session, "Cheb", now=clock.now())
        school = await members.ensure_institution(
            session, district, "ZŠ Hradební", InstitutionKind.SCHOOL, now=clock.now()
        )
        member = world.member(101, "Jana", school.id, Role.REFERRER, locale="cs", now=clock.now())
        session.add(member)
        await session.flush()
        for number in range(1, rows + 1):
            sealed = f'{{"child": "Dítě {number}"}}'.encode()
            referral = Referral(
                district_id=district.id,
                referrer_id=member.id,
                institution_id=school.id,
                status=ReferralStatus.SUBMITTED,
                step="done",
                sealed=cipher.encrypt(sealed),
                created_at=clock.now(),
                updated_at=clock.now(),
            )
            session.add(referral)
            await session.flush()
            plain["referrals", referral.id, "sealed"] = sealed
            body = f"Otázka {number}".encode()
            note = ReferralNote(
                referral_id=referral.id,
                author_id=member.id,
                kind=NoteKind.QUESTION,
                at=clock.now(),
                body=cipher.encrypt(body),
            )
            session.add(note)
            await session.flush()
            plain["referral_notes", note.id, "body"] = body
            # Telegram ids: large, and negative for group chats.
            user_id, chat_id = 7_000_000_000 + number, -1_000_000_000_000 - number
            user_data = f'{{"draft": {number}}}'.encode()
            chat_data = f'{{"chat": {number}}}'.encode()
            session.add(UserData(user_id=user_id, data=cipher.encrypt(user_data)))
            session.add(ChatData(chat_id=chat_id, data=cipher.encrypt(chat_data)))
            plain["user_data", user_id, "data"] = user_data
            plain["chat_data", chat_id, "data"] = chat_data
    return plain


async def stored(database: Database) -> dict[tuple[str, Any, str], bytes]:
    """Every ciphertext in the database, by table and primary key."""
    tokens: dict[tuple[str, Any, str], bytes] = {}
    async with database.transaction() as session:
        for model, key, column in ENCRYPTED_COLUMNS:
            rows = await session.execute(select(getattr(model, key), getattr(model, column)))
            for value, token in rows:
                if token is not None:  # e.g. a task owned by a member has no party name
                    tokens[model.__tablename__, value, column] = token
    return tokens


def test_every_encrypted_column_is_listed() -> None:
    assert {(model.__tablename__, column) for model, _, column in ENCRYPTED_COLUMNS} == {
        ("referrals", "sealed"),
        ("referral_notes", "body"),
        ("user_data", "data"),
        ("chat_data", "data"),
        ("invitations", "decline_reason"),
        ("conferences", "summary"),
        ("tasks", "title"),
        ("tasks", "party_name"),
        ("task_notes", "body"),
        ("email_confirmations", "code"),
        ("web_links", "token"),
        ("conference_methods", "goal"),
        ("conference_methods", "support"),
        ("conference_methods", "reason"),
        ("conference_methods", "child_view"),
        ("record_comments", "text"),
    }


def test_every_binary_column_is_an_encrypted_one() -> None:
    """Every column of bytes holds ciphertext, so rotating the key must reach it: a comment on a
    circulated record left under the old key could no longer be read once that key is gone."""
    binary = {
        (table.name, column.name)
        for table in Base.metadata.sorted_tables
        for column in table.columns
        if isinstance(column.type, LargeBinary)
    }
    assert binary == {(model.__tablename__, column) for model, _, column in ENCRYPTED_COLUMNS}


@pytest.mark.parametrize("batch_size", [keys.BATCH_SIZE, 2])
async def test_reencryption_moves_every_value_to_the_new_key(
    database: Database, clock: FakeClock, batch_size: int
) -> None:
    plain = await seed(database, clock, Cipher([TEST_KEY]), rows=5)
    counts = await keys.reencrypt(database, Cipher([NEW_KEY, TEST_KEY]), batch_size=batch_size)
    # The seed's encrypted values (no declines with a reason, no summaries, ...).
    assert counts == NOTHING | {
        "referrals": 5,
        "referral_notes": 5,
        "user_data": 5,
        "chat_data": 5,
    }
    tokens = await stored(database)
    assert tokens.keys() == plain.keys()
    new, old = Cipher([NEW_KEY]), Cipher([TEST_KEY])
    for where, token in tokens.items():
        assert new.decrypt(token) == plain[where], where
        with pytest.raises(InvalidToken):
            old.decrypt(token)
    assert await keys.check(database, new, batch_size=batch_size) == counts


async def test_an_empty_database_needs_nothing(database: Database) -> None:
    counts = await keys.reencrypt(database, Cipher([NEW_KEY, TEST_KEY]))
    assert counts == NOTHING


async def test_a_value_no_key_decrypts_is_named_and_check_changes_nothing(
    database: Database, clock: FakeClock
) -> None:
    await seed(database, clock, Cipher([TEST_KEY]), rows=2)
    async with database.transaction() as session:
        session.add(UserData(user_id=55, data=Cipher([OTHER_KEY]).encrypt(b"{}")))
    before = await stored(database)
    current = Cipher([NEW_KEY, TEST_KEY])

    with pytest.raises(keys.UndecryptableValue) as raised:
        await keys.check(database, current, batch_size=2)
    assert (raised.value.table, raised.value.primary_key, raised.value.value) == (
        "user_data",
        "user_id",
        55,
    )
    assert str(raised.value) == "user_data.data of the row with user_id 55"
    assert await stored(database) == before

    with pytest.raises(
        keys.UndecryptableValue, match=r"user_data\.data of the row with user_id 55"
    ):
        await keys.reencrypt(database, current)
    # Nothing was lost: each value still says what it said.
    every_key = Cipher([NEW_KEY, TEST_KEY, OTHER_KEY])
    after = await stored(database)
    assert after.keys() == before.keys()
    for where, token in after.items():
        assert every_key.decrypt(token) == every_key.decrypt(before[where])


async def test_rotation_keeps_the_plaintext_and_its_timestamp() -> None:
    old = Cipher([TEST_KEY])
    token = old.encrypt(b"secret")
    rotated = Cipher([NEW_KEY, TEST_KEY]).rotate(token)
    assert Cipher([NEW_KEY]).decrypt(rotated) == b"secret"
    assert Fernet(NEW_KEY).extract_timestamp(rotated) == Fernet(TEST_KEY).extract_timestamp(token)
