"""The periodic sweep: reminders and nudges that have come due, sent.

A JobQueue job every `sweep_seconds` asks the services what has come due by the injected clock
(`referral_sweep.due_work`: the rules are there and in `scheduling.policy`) and sends it: a referrer
is reminded once of a draft left for a day, told when a draft untouched for 14 days is deleted;
the coordinators are nudged once per working day about referrals waiting more than a working
day; and a sent referral whose alert or message deletion was cut short (a crash, Telegram
failing) is finished. What is found is marked done and planned in the outbox (`bot.core.outbox`) in
one transaction, so nothing is sent twice and nothing is lost; the outbox then sends it.
"""

from __future__ import annotations

import logging
from datetime import datetime

from bot.core.i18n import Translator
from bot.core.outbox import Notification
from bot.services import drafting, overview, referral_sweep
from bot.transport.telegram import delivery
from bot.transport.telegram.delivery import Kind, Outgoing
from handlers.common import Context, keyboard, recipient_tr
from handlers.conference_notices import sweep_polls
from handlers.referral import alert_coordinators
from handlers.referral_texts import urgency_text
from handlers.typed import delete_from_chat, deletion_text

logger = logging.getLogger(__name__)

NUDGE_LIST_LIMIT = 20


async def sweep(context: Context) -> None:
    """Each kind of work on its own: one failing does not hold up the others. Then the outbox
    sends what the sweep planned and whatever else has come due."""
    for part in (sweep_referrals, sweep_polls, sweep_digests):
        try:
            await part(context)
        except Exception:
            logger.exception("the sweep's %s failed", part.__name__)
    dispatcher: delivery.Dispatcher | None = context.application.bot_data.get(
        delivery.DISPATCHER_KEY
    )
    if dispatcher is not None:
        await dispatcher.run(context)


async def sweep_referrals(context: Context) -> None:
    runtime = context.runtime
    now = runtime.clock.now()
    async with runtime.database.transaction() as session:
        due = await referral_sweep.due_work(session, now=now, calendar=runtime.calendar)
    for follow_up in due.follow_ups:
        done = await delete_from_chat(
            context, follow_up.referrer.chat_id, follow_up.submitted.message_refs
        )
        if follow_up.alert:
            await alert_coordinators(context, follow_up.submitted)
        if done.failed:  # Telegram still refuses: next time
            async with runtime.database.transaction() as session:
                await drafting.followed_up(
                    session,
                    follow_up.submitted.referral_id,
                    now=runtime.clock.now(),
                    remaining=done.failed,
                )
    if due:
        logger.info(
            "sweep: %d draft reminders, %d drafts expired, %d districts nudged, %d follow-ups",
            len(due.reminders),
            len(due.expired),
            len(due.nudges),
            len(due.follow_ups),
        )


async def sweep_digests(context: Context) -> None:
    """Each coordinator's Monday digest, planned ahead in the outbox (once per week)."""
    runtime = context.runtime
    async with runtime.database.transaction() as session:
        await overview.plan_digests(session, now=runtime.clock.now())


async def render_draft_reminder(context: Context, row: Notification) -> Outgoing | None:
    async with context.runtime.database.reading() as session:
        if not await drafting.has_draft(session, row.member_id):
            return None  # sent or cancelled meanwhile
    tr = await recipient_tr(context, row.member_id)
    started = datetime.fromisoformat(str(row.payload["started_at"]))
    return Outgoing(
        _reminder_text(started, tr), keyboard([[(tr.gettext("Continue"), "ref:resume")]])
    )


async def render_draft_expired(context: Context, row: Notification) -> Outgoing | None:
    """The draft is gone; its messages with the child's details are deleted here, at send
    time, where Telegram still allows it (48 hours: after 14 days mostly not), and the notice
    says how many she should delete herself. Sending again deletes nothing twice: Telegram
    skips messages already deleted."""
    tr = await recipient_tr(context, row.member_id)
    refs = [[int(part) for part in ref] for ref in row.payload.get("messages", [])]
    done = await delete_from_chat(context, row.chat_id, refs)
    text = _expired_text(datetime.fromisoformat(str(row.payload["started_at"])), tr)
    return Outgoing("\n\n".join(filter(None, [text, deletion_text(done, tr)])))


async def render_triage_nudge(context: Context, row: Notification) -> Outgoing | None:
    ids = [int(i) for i in row.payload["referrals"]]
    async with context.runtime.database.reading() as session:
        items = await referral_sweep.still_waiting(session, ids)
    if not items:
        return None  # all decided meanwhile
    tr = await recipient_tr(context, row.member_id)
    markup = keyboard([[(item.code, f"rf:o:{item.id}")] for item in items[:NUDGE_LIST_LIMIT]])
    return Outgoing(_nudge_text(items, tr), markup)


def outbox_kinds() -> dict[str, Kind]:
    return {
        referral_sweep.DRAFT_REMINDER: Kind(render_draft_reminder),
        referral_sweep.DRAFT_EXPIRED: Kind(render_draft_expired),
        referral_sweep.TRIAGE_NUDGE: Kind(render_triage_nudge),
    }


def _reminder_text(started: datetime, tr: Translator) -> str:
    return tr.gettext(
        "You have an unfinished referral, started {date}. Continue it when you can: unfinished "
        "referrals are deleted after 14 days without changes."
    ).format(date=tr.date(started))


def _expired_text(started: datetime, tr: Translator) -> str:
    return tr.gettext(
        "Your unfinished referral, started {date}, was deleted after 14 days without changes. "
        "/refer starts a new one."
    ).format(date=tr.date(started))


def _nudge_text(items: list[referral_sweep.Waiting], tr: Translator) -> str:
    lines = [
        tr.ngettext(
            "This referral has waited more than a working day for a decision:",
            "These {n} referrals have waited more than a working day for a decision:",
            len(items),
        ).format(n=len(items))
    ]
    lines += [
        f"{item.code} · {urgency_text(item.urgency, tr)} · {tr.datetime(item.submitted_at)}"
        for item in items[:NUDGE_LIST_LIMIT]
    ]
    return "\n".join(lines)
