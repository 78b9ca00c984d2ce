"""The periodic sweep: reminders and nudges that have come due, sent.

A JobQueue job every `sweep_seconds` asks the services what has come due by the injected clock
(`referral_sweep.due_work`: the rules are there and in `scheduling.policy`) and sends it: a referrer
is reminded once of a draft left for a day, told when a draft untouched for 14 days is deleted;
the coordinators are nudged once per working day about referrals waiting more than a working
day; and a sent referral whose message deletion was cut short (a crash, Telegram failing) is
finished. What is found is marked done and planned in the outbox (`bot.core.outbox`) in one
transaction, so nothing is sent twice and nothing is lost; the outbox then sends it (rendered by
handlers.referral_notices).
"""

from __future__ import annotations

import logging

from bot.services import drafting, overview, referral_sweep
from bot.transport.telegram import delivery
from handlers.common import Context
from handlers.conference_notices import sweep_polls
from handlers.typed import delete_from_chat

logger = logging.getLogger(__name__)


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
        done = await delete_from_chat(context, follow_up.referrer.chat_id, follow_up.message_refs)
        if done.failed:  # Telegram still refuses: next time
            async with runtime.database.transaction() as session:
                await drafting.followed_up(session, follow_up.referral_id, remaining=done.failed)
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
