"""The periodic sweep: reminders and nudges that have come due.

A JobQueue job every `sweep_seconds` looks at the injected clock and the database: a referrer
is reminded once of a draft left for a day, a draft untouched for 14 days is deleted, and the
coordinators are nudged once per working day about referrals waiting more than a working day.
(The durable outbox of the reminders issue will take these over; until then a row is marked
reminded in the same transaction that finds it, so nothing is sent twice, and a crash between
that commit and the send can lose one reminder.)
"""

from __future__ import annotations

import logging
from datetime import datetime
from functools import partial

from bot.i18n import Translator
from bot.services import referrals
from handlers.common import Context, keyboard
from handlers.notify import notify
from handlers.referral import urgency_text
from scheduling import policy

logger = logging.getLogger(__name__)

NUDGE_LIST_LIMIT = 20


async def sweep(context: Context) -> None:
    runtime = context.runtime
    now = runtime.clock.now()
    calendar = runtime.calendar
    async with runtime.database.transaction() as session:
        reminders = await referrals.drafts_to_remind(
            session,
            now=now,
            due=lambda updated, reminded: policy.draft_reminder_due(
                updated, reminded, now, calendar
            ),
        )
        expired = await referrals.expire_drafts(
            session, now=now, expired=lambda updated: policy.draft_expired(updated, now)
        )
        waiting = await referrals.waiting_to_nudge(
            session,
            now=now,
            due=lambda submitted, nudged: policy.triage_nudge_due(submitted, nudged, now, calendar),
        )
        coordinators = {
            district_id: await referrals.coordinators(session, district_id)
            for district_id in waiting
        }
    for reminder in reminders:
        await notify(
            context,
            [reminder.referrer],
            partial(_reminder_text, reminder.started_at),
            lambda tr: keyboard([[(tr.gettext("Continue"), "ref:resume")]]),
        )
    for gone in expired:
        await notify(context, [gone.referrer], partial(_expired_text, gone.started_at))
    for district_id, items in waiting.items():
        await notify(
            context,
            coordinators[district_id],
            partial(_nudge_text, items),
            lambda _tr, items=items: keyboard(  # type: ignore[misc]
                [[(item.code, f"rf:o:{item.id}")] for item in items[:NUDGE_LIST_LIMIT]]
            ),
        )
    if reminders or expired or waiting:
        logger.info(
            "sweep: %d draft reminders, %d drafts expired, %d districts nudged",
            len(reminders),
            len(expired),
            len(waiting),
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
