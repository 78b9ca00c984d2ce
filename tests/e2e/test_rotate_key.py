"""`roundtable rotate-key` as an operator runs it: key file and environment, and its refusals."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from bot.core.clock import FakeClock
from bot.core.crypto import Cipher, InvalidToken
from bot.core.db import Database
from bot.core.models import UserData
from tests.bot.test_keys import NEW_KEY, OTHER_KEY, Plain, seed, stored
from tests.conftest import START, TEST_KEY, run_roundtable, with_database

RESTART = (
    "nothing is re-encrypted yet. Restart the bot so that it reads the new key (it then "
    "encrypts with it and still reads the old ones), then run `roundtable rotate-key --retire` "
    "to re-encrypt all stored data with the new key and drop the old ones."
)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture
def environment(database_url: str, data_dir: Path) -> dict[str, str]:
    return {
        **{name: value for name, value in os.environ.items() if not name.startswith("ROUNDTABLE_")},
        "ROUNDTABLE_DATABASE_URL": database_url,
        "ROUNDTABLE_DATA_DIR": str(data_dir),
    }


def _write_keys(path: Path, *keys: bytes) -> None:
    path.write_text(",".join(key.decode() for key in keys) + "\n")
    path.chmod(0o600)


def _read_keys(path: Path) -> list[bytes]:
    return [part.encode() for part in path.read_text().strip().split(",")]


def _seed(url: str, cipher: Cipher) -> Plain:
    return with_database(url, lambda database: seed(database, FakeClock(START), cipher))


def _stored(url: str) -> dict[tuple[str, Any, str], bytes]:
    return with_database(url, stored)


def _assert_readable_only_with(url: str, plain: Plain, key: bytes, *others: bytes) -> None:
    tokens = _stored(url)
    assert tokens.keys() == plain.keys()
    for where, token in tokens.items():
        assert Cipher([key]).decrypt(token) == plain[where], where
        for other in others:
            with pytest.raises(InvalidToken):
                Cipher([other]).decrypt(token)


def _run(environment: dict[str, str], cwd: Path, *args: str) -> str:
    result = run_roundtable(environment, cwd, "rotate-key", *args)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.stdout


def _assert_no_key_in(text: str, *keys: bytes) -> None:
    for key in keys:
        assert key.decode() not in text
        assert key.decode().rstrip("=") not in text


def test_with_a_key_file_a_new_key_goes_first_and_retire_drops_the_old_ones(
    environment: dict[str, str], database_url: str, data_dir: Path, tmp_path: Path
) -> None:
    key_file = data_dir / "secret.key"
    _write_keys(key_file, TEST_KEY)
    plain = _seed(database_url, Cipher([TEST_KEY]))

    printed = _run(environment, tmp_path)
    keys = _read_keys(key_file)
    assert len(keys) == 2
    assert keys[0] != TEST_KEY
    assert keys[1] == TEST_KEY
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    # A bot still running with the old key alone can read everything: nothing changed yet.
    _assert_readable_only_with(database_url, plain, TEST_KEY, keys[0])
    assert RESTART in " ".join(printed.split())
    _assert_no_key_in(printed, *keys)

    # Meanwhile the bot (restarted or not) writes; --retire re-encrypts that too.
    drafted = b'{"draft": "meanwhile"}'

    async def write_meanwhile(database: Database) -> None:
        async with database.transaction() as session:
            await session.execute(
                update(UserData)
                .where(UserData.user_id == 7_000_000_001)
                .values(data=Cipher([TEST_KEY]).encrypt(drafted))
            )

    with_database(database_url, write_meanwhile)
    plain["user_data", 7_000_000_001, "data"] = drafted

    printed = _run(environment, tmp_path, "--retire")
    assert _read_keys(key_file) == keys[:1]
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert sorted(path.name for path in data_dir.iterdir()) == ["secret.key"]  # no temp file
    _assert_readable_only_with(database_url, plain, keys[0], TEST_KEY)
    assert printed.splitlines() == [
        "Re-encrypted with the newest key: "
        "referrals 3, referral_notes 3, user_data 3, chat_data 3, invitations 0, "
        "conferences 0, tasks 0, task_notes 0, email_confirmations 0, web_links 0, "
        "conference_methods 0, record_comments 0.",
        f"Dropped 1 old key(s): {key_file} holds one key now.",
    ]
    _assert_no_key_in(printed, *keys)

    printed = _run(environment, tmp_path, "--retire")
    assert _read_keys(key_file) == keys[:1]
    assert "there was none to drop" in printed


def test_the_rotated_key_file_stays_readable_by_whoever_read_it(
    environment: dict[str, str], database_url: str, data_dir: Path, tmp_path: Path
) -> None:
    """A deployment's key file is 0640 and the service's group (root rotates it); a file the
    service cannot read would stop it at its next start."""
    key_file = data_dir / "secret.key"
    _write_keys(key_file, TEST_KEY)
    key_file.chmod(0o640)
    group = 1 if os.geteuid() == 0 else key_file.stat().st_gid  # root may give it away
    os.chown(key_file, -1, group)
    _seed(database_url, Cipher([TEST_KEY]))
    for step in ((), ("--retire",)):
        _run(environment, tmp_path, *step)
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o640
        assert key_file.stat().st_gid == group


@pytest.mark.parametrize("retire", [False, True])
def test_with_the_environment_the_first_key_is_used_and_the_others_can_go(
    environment: dict[str, str], database_url: str, data_dir: Path, tmp_path: Path, retire: bool
) -> None:
    plain = _seed(database_url, Cipher([TEST_KEY]))
    flags = ["--retire"] if retire else []
    environment["ROUNDTABLE_ENCRYPTION_KEY"] = f"{NEW_KEY.decode()},{TEST_KEY.decode()}"

    printed = _run(environment, tmp_path, *flags)
    _assert_readable_only_with(database_url, plain, NEW_KEY, TEST_KEY)
    assert printed.splitlines()[0] == (
        "Re-encrypted with the first key of ROUNDTABLE_ENCRYPTION_KEY: "
        "referrals 3, referral_notes 3, user_data 3, chat_data 3, invitations 0, "
        "conferences 0, tasks 0, task_notes 0, email_confirmations 0, web_links 0, "
        "conference_methods 0, record_comments 0."
    )
    assert "The other 1 key(s) can now be removed from ROUNDTABLE_ENCRYPTION_KEY" in printed
    _assert_no_key_in(printed, NEW_KEY, TEST_KEY)

    environment["ROUNDTABLE_ENCRYPTION_KEY"] = NEW_KEY.decode()
    printed = _run(environment, tmp_path, *flags)
    _assert_readable_only_with(database_url, plain, NEW_KEY, TEST_KEY)
    assert "The data already uses the only key in ROUNDTABLE_ENCRYPTION_KEY." in printed
    _assert_no_key_in(printed, NEW_KEY)
    assert list(data_dir.iterdir()) == []  # no key file is made or touched


@pytest.mark.parametrize(("retire", "in_file"), [(False, [TEST_KEY]), (True, [NEW_KEY, TEST_KEY])])
def test_a_value_no_key_decrypts_stops_it_before_anything_changes(
    environment: dict[str, str], data_dir: Path, tmp_path: Path, retire: bool, in_file: list[bytes]
) -> None:
    database_url = environment["ROUNDTABLE_DATABASE_URL"]
    key_file = data_dir / "secret.key"
    _write_keys(key_file, *in_file)
    _seed(database_url, Cipher([TEST_KEY]))

    async def foreign_row(database: Database) -> None:
        async with database.transaction() as session:
            session.add(UserData(user_id=55, data=Cipher([OTHER_KEY]).encrypt(b"{}")))

    with_database(database_url, foreign_row)
    before_file, before_data = key_file.read_bytes(), _stored(database_url)

    result = run_roundtable(environment, tmp_path, "rotate-key", *(["--retire"] if retire else []))
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "roundtable: user_data.data of the row with user_id 55 cannot be decrypted with the "
        "current keys; nothing was changed"
    ]
    assert key_file.read_bytes() == before_file
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert sorted(path.name for path in data_dir.iterdir()) == ["secret.key"]
    assert _stored(database_url) == before_data


def test_without_a_key_there_is_nothing_to_rotate(
    environment: dict[str, str], data_dir: Path, tmp_path: Path
) -> None:
    result = run_roundtable(environment, tmp_path, "rotate-key")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"roundtable: ROUNDTABLE_ENCRYPTION_KEY: not set and no key file at {data_dir}/secret.key"
    ]
    assert list(data_dir.iterdir()) == []
