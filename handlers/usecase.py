"""One use case from a dialog: the transaction, the actor, the service call, its refusals.

Every button and message that changes something runs the same way: open one transaction, load
who is acting and the time, call the service, commit; a refusal the service raises (not yours,
no longer open, stale) is answered in the person's language and changes nothing; the outbox is
woken after the commit only when the use case planned notifications.

    async with use_case(update, context, NOT_YOURS, STALE) as case:
        view = await polls.toggle(case.session, case.actor, poll_id, slot_id, now=case.now)
    if not case.done:
        return

A refusal leaves the block at once, so nothing after the service call in the block runs, and
`case.done` is False after it.

A button whose data names one row ("prefix:<id>") and runs one service on it is the commonest
use case; `on_pressed` reads the id, answers a stale button, and runs it:

    done = await on_pressed(update, context, "ca:x", invitations.cancellable, *REFUSALS)
    if done is None:
        return
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession
from telegram import Update

from bot.core import outbox
from bot.services.members import Actor
from bot.transport.telegram import delivery
from handlers.common import Context, alert, answer, no_longer_active, pressed_ids

Answer = Callable[[Update, Context, Exception], Awaitable[None]]
T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


@dataclass(frozen=True)
class Refusal:
    """Which exceptions of a service mean "no", and how the person is told."""

    errors: tuple[type[Exception], ...]
    answer: Answer


def refusal(*errors: type[Exception], say: str | None = None, as_answer: bool = False) -> Refusal:
    """Refused with a pop-up saying `say` (marked with N_ for translation), or, without it, as
    a button that is no longer active; `as_answer`, `say` is the answer itself (in place of the
    pressed message, or a reply)."""

    async def refused(update: Update, context: Context, _error: Exception) -> None:
        if say is None:
            await no_longer_active(update, context)
        elif as_answer:
            await answer(update, context.tr.gettext(say))
        else:
            await alert(update, context.tr.gettext(say))

    return Refusal(errors, refused)


def refused_by(*errors: type[Exception], answer: Answer) -> Refusal:
    """Refused with an answer of the dialog's own (one that needs the error, say)."""
    return Refusal(errors, answer)


class Case:
    """What a use case runs with; `done` tells afterwards whether it went through."""

    def __init__(self, session: AsyncSession, actor: Actor, now: datetime) -> None:
        self.session = session
        self.actor = actor
        self.now = now
        self.done = False


@asynccontextmanager
async def use_case(update: Update, context: Context, *refusals: Refusal) -> AsyncIterator[Case]:
    """Run the block as one use case (see the module's docstring)."""
    runtime = context.runtime
    errors = tuple(error for item in refusals for error in item.errors)
    try:
        async with runtime.database.transaction() as session:
            case = Case(session, context.require_actor(), runtime.clock.now())
            yield case
            planned = outbox.planned(session)
    except errors as error:
        for item in refusals:
            if isinstance(error, item.errors):
                await item.answer(update, context, error)
                break
        return
    case.done = True
    if planned:
        delivery.wake(context.application)


class ById(Protocol[T_co]):
    """A service's use case on one row: `service(session, actor, row_id, now=...)`."""

    def __call__(
        self, session: AsyncSession, actor: Actor, row_id: int, /, *, now: datetime
    ) -> Awaitable[T_co]: ...


@dataclass(frozen=True)
class Pressed(Generic[T]):
    """A pressed button's use case that went through: the row it named, what the service
    returned, and who pressed it."""

    id: int
    result: T
    actor: Actor


async def on_pressed(
    update: Update, context: Context, prefix: str, service: ById[T], *refusals: Refusal
) -> Pressed[T] | None:
    """Run `service` as one use case on the row the pressed button names ("prefix:<id>"); None
    when the button is stale or the service refused (both already answered)."""
    ids = await pressed_ids(update, context, prefix)
    if ids is None:
        return None
    async with use_case(update, context, *refusals) as case:
        result = await service(case.session, case.actor, ids[0], now=case.now)
    if not case.done:
        return None
    return Pressed(ids[0], result, case.actor)
