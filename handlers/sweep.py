"""The periodic sweep: reminders and nudges that have come due, sent.

A JobQueue job every `sweep_seconds` asks the services what has come due by the injected clock
(`referrals.due_work`: the rules are there and in `scheduling.policy`) and sends it: a referrer
is reminded once of a draft left for a day, told when a draft untouched for 14 days is deleted;
the coordinators are nudged once per working day about referrals waiting more than a working
day; and a sent referral whose alert or message deletion was cut short (a crash, Telegram
failing) is finished. Until the durable outbox arrives, what is found is marked done in the same
transaction, so nothing is sent twice, and a crash right after that commit can lose one reminder.
"""

from __future__ import annotations

import logging
from datetime import datetime
from functools import partial

from bot.i18n import Translator
from bot.services import referrals
from handlers.common import Context, keyboard
from handlers.conference import sweep_polls
from handlers.notify import notify
from handlers.referral import alert_coordinators, delete_from_chat, urgency_text

logger = logging.getLogger(__name__)

NUDGE_LIST_LIMIT = 20


async def sweep(context: Context) -> None:
    """Each kind of work on its own: one failing does not hold up the others."""
    for part in (sweep_referrals, sweep_polls):
        try:
            await part(context)
        except Exception:
            logger.exception("the sweep's %s failed", part.__name__)


async def sweep_referrals(context: Context) -> None:
    runtime = context.runtime
    async with runtime.database.transaction() as session:
        due = await referrals.due_work(session, now=runtime.clock.now(), calendar=runtime.calendar)
    for reminder in due.reminders:
        await notify(
            context,
            [reminder.referrer],
            partial(_reminder_text, reminder.started_at),
            lambda tr: keyboard([[(tr.gettext("Continue"), "ref:resume")]]),
        )
    for gone in due.expired:
        await notify(context, [gone.referrer], partial(_expired_text, gone.started_at))
    for recipients, items in due.nudges:
        await notify(
            context,
            recipients,
            partial(_nudge_text, items),
            lambda _tr, items=items: keyboard(  # type: ignore[misc]
                [[(item.code, f"rf:o:{item.id}")] for item in items[:NUDGE_LIST_LIMIT]]
            ),
        )
    for follow_up in due.follow_ups:
        done = await delete_from_chat(
            context, follow_up.referrer.chat_id, follow_up.submitted.message_refs
        )
        if follow_up.alert:
            await alert_coordinators(context, follow_up.submitted)
        if done.failed:  # Telegram still refuses: next time
            async with runtime.database.transaction() as session:
                await referrals.followed_up(
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


def _nudge_text(items: list[referrals.Waiting], tr: Translator) -> str:
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
