"""The commands of `roundtable` that touch the stored data as a whole: rotate-key, and the data
protection officer's audit, purge and export."""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import pwd
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import TextIO

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.cli_base import CliError, in_transaction, open_database, reason
from bot.core import keys as key_rotation
from bot.core.clock import SystemClock
from bot.core.config import Settings
from bot.core.crypto import Cipher, InvalidToken, load_cipher, load_keys, write_key_file
from bot.services import privacy, retention


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rotate = commands.add_parser(
        "rotate-key", help="re-encrypt the stored data with a new key (then --retire the old ones)"
    )
    rotate.add_argument(
        "--retire",
        action="store_true",
        help="re-encrypt with the newest key and drop the older ones from the key file",
    )
    rotate.set_defaults(func=_rotate_key)

    audit = commands.add_parser(
        "audit", help="the audit log as CSV, for the data protection officer"
    )
    audit.add_argument("--case", help="only the entries of this case (its code)")
    audit.add_argument("--since", help="only the entries from this day on (YYYY-MM-DD, UTC)")
    audit.add_argument(
        "--output",
        metavar="FILE",
        help="write the CSV to this file (readable by its owner only), with the byte order mark "
        "Excel needs to read UTF-8, instead of to standard output",
    )
    audit.set_defaults(func=_audit)

    purge = commands.add_parser(
        "purge", help="anonymise the cases closed longer ago than ROUNDTABLE_RETENTION_YEARS"
    )
    purge.add_argument("--dry-run", action="store_true", help="list them and change nothing")
    purge.set_defaults(func=_purge)

    export = commands.add_parser(
        "export", help="all that is held about a case, as JSON (a subject access request)"
    )
    export.add_argument("--case", required=True, help="the case's code")
    export.set_defaults(func=_export)


def _rotate_key(settings: Settings, args: argparse.Namespace) -> None:
    current = load_keys(settings)
    if settings.encryption_key is not None:
        # The environment is not ours to edit: re-encrypt with its first key, say what to drop.
        counts = asyncio.run(_reencrypt(settings, current))
        print(f"Re-encrypted with the first key of ROUNDTABLE_ENCRYPTION_KEY: {_counts(counts)}.")
        if len(current) > 1:
            print(
                f"The other {len(current) - 1} key(s) can now be removed from "
                "ROUNDTABLE_ENCRYPTION_KEY; restart the bot after changing it."
            )
        else:
            print(
                "The data already uses the only key in ROUNDTABLE_ENCRYPTION_KEY. To rotate, put "
                "a new key first in it, restart the bot and run `roundtable rotate-key` again."
            )
        return
    if args.retire:
        counts = asyncio.run(_reencrypt(settings, current))
        print(f"Re-encrypted with the newest key: {_counts(counts)}.")
        if len(current) > 1:
            write_key_file(settings.key_file, current[:1])
            print(f"Dropped {len(current) - 1} old key(s): {settings.key_file} holds one key now.")
        else:
            print(f"{settings.key_file} already holds one key only; there was none to drop.")
        return
    # A running bot read its keys at start and cannot read data encrypted with a key it has not
    # seen: so this step only adds the key. The data is re-encrypted by --retire, after the
    # restart, when every process reads (and writes with) the new key.
    rotated = [Cipher.generate_key(), *current]
    asyncio.run(_check_then_write(settings, current, rotated))
    print(
        f"{settings.key_file} now holds a new key first and the {len(current)} old one(s) after "
        "it; nothing is re-encrypted yet. Restart the bot so that it reads the new key (it then "
        "encrypts with it and still reads the old ones), then run `roundtable rotate-key "
        "--retire` to re-encrypt all stored data with the new key and drop the old ones."
    )


async def _check_then_write(settings: Settings, current: list[bytes], rotated: list[bytes]) -> None:
    """Write the new key list only if the current keys decrypt everything stored."""
    database = await open_database(settings)
    try:
        with _refusal("cannot be decrypted with the current keys; nothing was changed"):
            await key_rotation.check(database, Cipher(current))
        write_key_file(settings.key_file, rotated)
    finally:
        await database.dispose()


async def _reencrypt(settings: Settings, keys: list[bytes]) -> dict[str, int]:
    """Check that the keys decrypt everything (else change nothing), re-encrypt with the first,
    and make sure that key alone now decrypts everything (a bot still using an old key may have
    written with it meanwhile). No key is dropped here: the caller does that after this returns."""
    database = await open_database(settings)
    try:
        with _refusal("cannot be decrypted with the current keys; nothing was changed"):
            await key_rotation.check(database, Cipher(keys))
        with _refusal("cannot be decrypted with the current keys; no key was dropped"):
            counts = await key_rotation.reencrypt(database, Cipher(keys))
        with _refusal(
            "was written with an old key meanwhile (is a bot still running with the old "
            "keys? restart it and run this again); no key was dropped"
        ):
            await key_rotation.check(database, Cipher(keys[:1]))
        return counts
    except DBAPIError as error:
        raise CliError(f"the database failed ({reason(error)}); no key was dropped") from None
    finally:
        await database.dispose()


@contextmanager
def _refusal(what: str) -> Iterator[None]:
    """An undecryptable value as one line: where it is (never what it holds) and what follows."""
    try:
        yield
    except key_rotation.UndecryptableValue as error:
        raise CliError(f"{error} {what}") from None


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{table} {count}" for table, count in counts.items())


def _day(text: str) -> date:
    """A day typed as YYYY-MM-DD, or a one-line refusal."""
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return date.fromisoformat(text)
    except ValueError:
        pass
    raise CliError(f"--since: {text!r} is not a day; use YYYY-MM-DD, e.g. 2026-01-31")


def _operator() -> privacy.Operator:
    """Who runs this command, for the audit log: the account of the process's user id (from
    the password database, not from the environment), and the one that called sudo."""
    try:
        account = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:  # a user id without a name, e.g. in a container
        account = f"uid {os.getuid()}"
    return privacy.Operator(account, os.environ.get("SUDO_USER") or None)


def _audit(settings: Settings, args: argparse.Namespace) -> None:
    since = None if args.since is None else _day(args.since)

    async def go() -> None:
        database = await open_database(settings)
        try:
            async with database.transaction() as session:
                await privacy.record_reading(
                    session,
                    _operator(),
                    case_code=args.case,
                    since=since,
                    now=SystemClock().now(),
                )
            with _csv_output(args.output) as out:
                async with database.reading(streamed=True) as session:
                    lines = await privacy.audit_log(session, case_code=args.case, since=since)
                    writer = csv.writer(out)
                    writer.writerow(privacy.AUDIT_COLUMNS)
                    async for line in lines:
                        writer.writerow(_audit_row(line))
        finally:
            await database.dispose()

    asyncio.run(go())


@contextmanager
def _csv_output(path: str | None) -> Iterator[TextIO]:
    """Standard output as it is (a pipe's next reader wants no byte order mark), or a new file
    for its owner's eyes only, starting with the mark: Excel reads UTF-8 only with it."""
    if path is None:
        yield sys.stdout
        return
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(descriptor, "w", encoding="utf-8-sig", newline="") as out:
        yield out


def _audit_row(line: privacy.AuditLine) -> list[object]:
    row = line.as_dict()
    row["details"] = json.dumps(row["details"], ensure_ascii=False, sort_keys=True)
    return [row[column] for column in privacy.AUDIT_COLUMNS]


def _purge(settings: Settings, args: argparse.Namespace) -> None:
    now = SystemClock().now()
    years = settings.retention_years
    # A dry run decrypts and writes nothing, so it needs no key.
    cipher = None if args.dry_run else load_cipher(settings)

    async def go() -> list[retention.PastRetention]:
        database = await open_database(settings)
        try:
            if cipher is None:
                async with database.reading() as session:
                    return await retention.purgeable(session, now=now, years=years)
            async with database.transaction() as session:
                return await retention.purge(session, cipher, _operator(), now=now, years=years)
        finally:
            await database.dispose()

    found = asyncio.run(go())
    for item in found:
        print(f"{item.code}\t{item.ended} {item.ended_at:%Y-%m-%d}\t{_counts(item.counts)}")
    cases = sum(item.ended == "closed" for item in found)
    what = (
        f"{cases} case(s) closed and {len(found) - cases} referral(s) declined before "
        f"{retention.retention_cutoff(now, years):%Y-%m-%d} (retention {years} years)"
    )
    if cipher is None:
        print(f"Would purge {what}; nothing was changed.")
    else:
        print(f"Purged {what}.")


def _export(settings: Settings, args: argparse.Namespace) -> None:
    cipher = load_cipher(settings)

    async def work(session: AsyncSession) -> dict[str, object]:
        return await privacy.export_case(
            session, cipher, args.case, _operator(), now=SystemClock().now()
        )

    try:
        exported = asyncio.run(in_transaction(settings, work))
    except InvalidToken:
        raise CliError(f"{args.case}: its data cannot be decrypted with the current keys") from None
    print(json.dumps(exported, indent=2, ensure_ascii=False))
