"""The `roundtable` command: run, demo, migrate, invite, members, district; and, from
bot/cli_privacy.py, rotate-key and the data protection officer's audit, purge and export."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import time
from urllib.parse import unquote, urlsplit

from sqlalchemy.ext.asyncio import AsyncSession
from telegram import Bot
from telegram.error import TelegramError

from bot import cli_privacy
from bot.cli_base import CliError, in_transaction, open_database
from bot.core.clock import SystemClock
from bot.core.config import Settings, SettingsError, load_settings
from bot.core.crypto import load_cipher
from bot.core.models import InstitutionKind, Role
from bot.core.runtime import Runtime
from bot.logs import REDACTED, configure_logging
from bot.services import addresses, leavers, members
from bot.services.errors import ServiceError
from bot.transport.telegram import standby


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

    cli_privacy.add_commands(commands)
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

    async def work(session: AsyncSession) -> members.DistrictSettings:
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

    shown = asyncio.run(in_transaction(settings, work))
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

    async def work(session: AsyncSession) -> addresses.Contact:
        return await addresses.set_contact_by_name(
            session,
            args.district,
            args.institution,
            None if args.no_email else args.email,
            now=SystemClock().now(),
        )

    try:
        contact = asyncio.run(in_transaction(settings, work))
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
        clock = SystemClock()

        async def work(session: AsyncSession) -> members.IssuedInvite:
            district = await members.ensure_district(session, args.district, now=clock.now())
            institution = await members.ensure_institution(
                session, district, args.institution, InstitutionKind(args.kind), now=clock.now()
            )
            return await members.create_invite(
                session,
                institution_id=institution.id,
                role=Role(args.role),
                creator=None,
                now=clock.now(),
                ttl=settings.invite_ttl,
            )

        try:
            invite = await in_transaction(settings, work)
        except ValueError as error:
            raise CliError(str(error)) from None
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
    async def work(session: AsyncSession) -> list[members.MemberView]:
        return await members.list_members(session, None, now=SystemClock().now())

    views = asyncio.run(in_transaction(settings, work))
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
    async def work(session: AsyncSession) -> members.MemberView:
        return await leavers.deactivate_member(
            session, None, args.member_id, now=SystemClock().now()
        )

    view = asyncio.run(in_transaction(settings, work))
    print(f"Deactivated {view.member_id} ({view.display_name}).")


if __name__ == "__main__":
    main()
