"""The `roundtable` command: run, demo, migrate, invite, members, district, rotate-key, and the
data protection officer's audit, purge and export."""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import logging
import os
import pwd
import re
import signal
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, time
from typing import TextIO
from urllib.parse import unquote, urlsplit

from sqlalchemy.exc import DBAPIError
from telegram import Bot
from telegram.error import TelegramError

from bot.core import keys as key_rotation
from bot.core import migrate as migrations
from bot.core.clock import SystemClock
from bot.core.config import Settings, SettingsError, load_settings
from bot.core.crypto import Cipher, InvalidToken, load_cipher, load_keys, write_key_file
from bot.core.db import Database
from bot.core.models import InstitutionKind, Role
from bot.core.runtime import Runtime
from bot.logs import REDACTED, configure_logging
from bot.services import addresses, leavers, members, privacy, retention
from bot.services.errors import ServiceError
from bot.transport.telegram import standby


class CliError(Exception):
    """A problem to report in one line, without a traceback."""


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    secrets: list[str] = []
    try:
        settings = load_settings()
        secrets = _secrets(settings)
        configure_logging(settings.log_level, secrets)
        args.func(settings, args)
        sys.stdout.flush()  # here, where a closed pipe is still ours to handle
    except BrokenPipeError:
        # The reader stopped early (`roundtable audit | head -3`): end quietly, with the status
        # of a tool that SIGPIPE ended (128 + 13), and nothing more written to the pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(128 + signal.SIGPIPE) from None
    except (SettingsError, CliError, ServiceError, TelegramError, OSError) as error:
        # One line, never a traceback, and never a secret (an error may quote a URL or a token).
        message = str(error) or type(error).__name__
        for secret in secrets:
            message = message.replace(secret, REDACTED)
        print(f"roundtable: {message}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="roundtable", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the bot (long polling, or webhook if configured)")
    run.add_argument(
        "--or-demo", action="store_true", help="without ROUNDTABLE_TOKEN, run the demo instead"
    )
    run.set_defaults(func=_run)

    demo = commands.add_parser("demo", help="the built-in demo against a local Bot API stand-in")
    demo.add_argument("--out", help="write each person's transcript and every document here")
    demo.set_defaults(func=_demo)

    commands.add_parser("migrate", help="bring the database to the newest schema").set_defaults(
        func=_migrate
    )

    invite = commands.add_parser("invite", help="print a one-time invite link")
    invite.add_argument("--institution", required=True)
    invite.add_argument("--kind", required=True, choices=[kind.value for kind in InstitutionKind])
    invite.add_argument("--role", required=True, choices=[role.value for role in Role])
    invite.add_argument("--district", help="the district (default: the only one there is)")
    invite.add_argument("--json", action="store_true", help="print one JSON object")
    invite.set_defaults(func=_invite)

    member_commands = commands.add_parser("members", help="list or deactivate members")
    member_actions = member_commands.add_subparsers(dest="action", required=True)
    listing = member_actions.add_parser("list")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=_members_list)
    deactivate = member_actions.add_parser("deactivate")
    deactivate.add_argument("member_id", type=int)
    deactivate.set_defaults(func=_members_deactivate)

    district = commands.add_parser(
        "district", help="the usual conference place and the working hours of a district"
    )
    district.add_argument("--district", help="the district (default: the only one there is)")
    district.add_argument("--place", help="where case conferences usually take place")
    district.add_argument(
        "--mailbox", help="the e-mail address calendar invitations come from (replies go there)"
    )
    district.add_argument("--hours", type=_hours, help="working hours, e.g. 08:00-16:00")
    district.add_argument(
        "--institution", help="set this institution's own working hours instead (with --hours)"
    )
    district.add_argument(
        "--reset", action="store_true", help="the institution works the district's hours again"
    )
    district.add_argument(
        "--email",
        metavar="ADDRESS",
        help="the institution's contact e-mail address, for inviting it as a guest by e-mail "
        "(with --institution; '' removes it)",
    )
    district.add_argument("--no-email", action="store_true", help="remove it (same as --email '')")
    district.set_defaults(func=_district)

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
    return parser


def _hours(text: str) -> tuple[time, time]:
    try:
        start, end = (time.fromisoformat(part.strip()) for part in text.split("-"))
    except ValueError:
        raise argparse.ArgumentTypeError("use HH:MM-HH:MM, e.g. 08:00-16:00") from None
    return start, end


def _district(settings: Settings, args: argparse.Namespace) -> None:
    if args.email is not None or args.no_email:
        _institution_email(settings, args)
        if args.hours is None and not args.reset and args.place is None and args.mailbox is None:
            return

    async def go() -> members.DistrictSettings:
        database = await open_database(settings)
        try:
            async with database.transaction() as session:
                return await members.configure_district(
                    session,
                    args.district,
                    place=args.place,
                    hours=args.hours,
                    institution=args.institution,
                    reset=args.reset,
                    mailbox=args.mailbox,
                    now=SystemClock().now(),
                )
        finally:
            await database.dispose()

    shown = asyncio.run(go())
    place = shown.place or "the coordinator's institution"
    print(f"{shown.name}: conferences at {place}")
    print(f"working hours {shown.hours[0]:%H:%M}-{shown.hours[1]:%H:%M}")
    if shown.mailbox:
        print(f"invitations from {shown.mailbox}")
    for name, start, end in shown.overrides:
        print(f"  {name}: {start:%H:%M}-{end:%H:%M}")


def _institution_email(settings: Settings, args: argparse.Namespace) -> None:
    """`--institution NAME --email ADDRESS` (or `--no-email`, or `--email ''`)."""
    if args.institution is None or (args.no_email and args.email):
        raise CliError("give --institution NAME with either --email ADDRESS or --no-email")

    async def go() -> addresses.Contact:
        database = await open_database(settings)
        try:
            async with database.transaction() as session:
                return await addresses.set_contact_by_name(
                    session,
                    args.district,
                    args.institution,
                    None if args.no_email else args.email,
                    now=SystemClock().now(),
                )
        finally:
            await database.dispose()

    try:
        contact = asyncio.run(go())
    except addresses.InvalidAddress:
        raise CliError(f"{args.email!r} is not an e-mail address") from None
    print(f"{contact.name}: contact address {contact.address or 'none'}")


def _secrets(settings: Settings) -> list[str]:
    found = [
        secret.get_secret_value()
        for secret in (settings.token, settings.webhook_secret, settings.encryption_key)
        if secret is not None
    ]
    for mail_url in (settings.imap_url, settings.smtp_url):
        if mail_url is not None:  # the mail server's password, as written and as meant
            url = mail_url.get_secret_value()
            password = urlsplit(url).password
            found += [url] + ([password, unquote(password)] if password else [])
    return found


async def open_database(settings: Settings) -> Database:
    """The database, brought to the newest schema (a no-op when it already is)."""
    if settings.is_embedded_database:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    database = Database(settings.effective_database_url)
    try:
        await migrations.upgrade(database)
    except (OSError, DBAPIError) as error:
        await database.dispose()
        reason = str(getattr(error, "orig", None) or error).splitlines()[0]
        raise CliError(f"ROUNDTABLE_DATABASE_URL: cannot use the database ({reason})") from None
    except BaseException:
        await database.dispose()
        raise
    return database


def _run(settings: Settings, args: argparse.Namespace) -> None:
    if settings.token is None:
        if not args.or_demo:
            raise CliError("ROUNDTABLE_TOKEN: not set (it is the bot token from @BotFather)")
        print("ROUNDTABLE_TOKEN is not set, so this runs the built-in demo instead of the bot.")
        _demo(settings, argparse.Namespace(out=None))
        return
    asyncio.run(_serve(settings))


async def _serve(settings: Settings) -> None:
    # The Telegram side (handlers, jobs) only for `run`: the other commands start in half the time.
    from bot.app import build_application, serve  # noqa: PLC0415

    cipher = load_cipher(settings, create=settings.is_embedded_database)
    database = await open_database(settings)
    try:
        runtime = Runtime(settings=settings, database=database, clock=SystemClock(), cipher=cipher)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)

        async def serve_until(until: asyncio.Event) -> None:
            await serve(build_application(runtime), until)

        # A second process of the same bot on the same database is the standby.
        await standby.serve_while_active(
            standby.lock_for(settings), serve_until, stop, retry=settings.standby_retry_seconds
        )
    finally:
        await database.dispose()


def _demo(settings: Settings, args: argparse.Namespace) -> None:
    from bot.demo import run_demo  # noqa: PLC0415 - the demo pulls in the sandbox only when asked

    logging.getLogger().setLevel(logging.WARNING)  # the transcripts are the output

    asyncio.run(run_demo(out=args.out))


def _migrate(settings: Settings, args: argparse.Namespace) -> None:
    async def go() -> None:
        await (await open_database(settings)).dispose()

    asyncio.run(go())
    print("The database is at the newest schema.")


@dataclass(frozen=True)
class _Printed:
    code: str
    link: str | None
    expires_at: str


def _invite(settings: Settings, args: argparse.Namespace) -> None:
    async def go() -> _Printed:
        # Ask Telegram for the bot's name first: a failure then leaves no unseen code behind.
        username = settings.bot_username or await _bot_username(settings)
        database = await open_database(settings)
        clock = SystemClock()
        try:
            async with database.transaction() as session:
                district = await members.ensure_district(session, args.district, now=clock.now())
                institution = await members.ensure_institution(
                    session, district, args.institution, InstitutionKind(args.kind), now=clock.now()
                )
                invite = await members.create_invite(
                    session,
                    institution_id=institution.id,
                    role=Role(args.role),
                    creator=None,
                    now=clock.now(),
                    ttl=settings.invite_ttl,
                )
        except ValueError as error:
            raise CliError(str(error)) from None
        finally:
            await database.dispose()
        link = f"https://t.me/{username}?start={invite.code}" if username else None
        return _Printed(invite.code, link, invite.expires_at.isoformat())

    printed = asyncio.run(go())
    if args.json:
        print(json.dumps(printed.__dict__))
        return
    print(f"Invite code: {printed.code} (one use, valid until {printed.expires_at})")
    if printed.link:
        print(f"Link: {printed.link}")
    else:
        print("Set ROUNDTABLE_TOKEN or ROUNDTABLE_BOT_USERNAME to get a link; send: /start <code>")


async def _bot_username(settings: Settings) -> str | None:
    if settings.token is None:
        return None
    bot = Bot(
        settings.token.get_secret_value(),
        base_url=settings.bot_api_url,
        base_file_url=settings.bot_file_url,
    )
    try:
        async with bot:
            return bot.username
    except TelegramError as error:
        raise CliError(f"could not ask Telegram for the bot's name: {error.message}") from None


def _members_list(settings: Settings, args: argparse.Namespace) -> None:
    async def go() -> list[members.MemberView]:
        database = await open_database(settings)
        try:
            async with database.transaction() as session:
                return await members.list_members(session, None, now=SystemClock().now())
        finally:
            await database.dispose()

    views = asyncio.run(go())
    if args.json:
        print(json.dumps([{**view.__dict__, "role": view.role.value} for view in views]))
        return
    for view in views:
        status = "active" if view.active else "deactivated"
        # Guardians stay in the operator's list (a data-protection request names them), marked
        # so that nobody takes a family for staff.
        kind = "guardian" if view.guardian else "staff"
        print(
            f"{view.member_id}\t{view.display_name}\t{view.institution_name}\t{view.role}"
            f"\t{status}\t{kind}"
        )


def _members_deactivate(settings: Settings, args: argparse.Namespace) -> None:
    async def go() -> members.MemberView:
        database = await open_database(settings)
        try:
            async with database.transaction() as session:
                return await leavers.deactivate_member(
                    session, None, args.member_id, now=SystemClock().now()
                )
        finally:
            await database.dispose()

    view = asyncio.run(go())
    print(f"Deactivated {view.member_id} ({view.display_name}).")


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
        reason = str(getattr(error, "orig", None) or error).splitlines()[0]
        raise CliError(f"the database failed ({reason}); no key was dropped") from None
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

    async def go() -> dict[str, object]:
        database = await open_database(settings)
        try:
            async with database.transaction() as session:
                return await privacy.export_case(
                    session, cipher, args.case, _operator(), now=SystemClock().now()
                )
        except InvalidToken:
            raise CliError(
                f"{args.case}: its data cannot be decrypted with the current keys"
            ) from None
        finally:
            await database.dispose()

    print(json.dumps(asyncio.run(go()), indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
