"""The demo's steps: what a person of the cast does (wait for a message, tap a button), and the
calendar file the police officer shares."""

from __future__ import annotations

import re
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event

from bot.sandbox import Person
from bot.sandbox.models import BotMessage

PRAGUE = ZoneInfo("Europe/Prague")


def local(day: date, hour: int) -> datetime:
    """A full hour of a day in Cheb."""
    return datetime.combine(day, time(hour), tzinfo=PRAGUE)


async def until(
    person: Person, data_prefix: str | None, *, text: str = "", document: bool = False
) -> BotMessage:
    """The next message (sent, edited or a document) that shows `text` and has a button whose
    data starts with `data_prefix`; with `data_prefix` None, one without buttons."""
    while True:
        message = await person.next_message()
        if text not in (message.text or message.caption or ""):
            continue
        if document and message.document is None:
            continue
        data = [data for _label, data in buttons(message)]
        if data_prefix is None and not data:
            return message
        if data_prefix is not None and any(d.startswith(data_prefix) for d in data):
            return message


async def tap(person: Person, message: BotMessage, data: str, *, label: str = "") -> None:
    """Press the button of `message` (as it is now) whose data matches the pattern `data` and
    whose label holds `label`: labels differ from language to language, the data does not."""
    now = person.messages[message.message_id]
    labels = [t for t, d in buttons(now) if re.match(data, d) and label in t]
    if not labels:
        raise RuntimeError(f"no button {data!r} {label!r} for {person.first_name}")
    await person.press(labels[0], message_id=message.message_id)


async def first_of_each(person: Person, *prefixes: str) -> list[BotMessage]:
    """The first message with a button of each data prefix, in whatever order they come (the
    outbox sends a task and the draft record at once)."""
    found: dict[str, BotMessage] = {}
    while len(found) < len(prefixes):
        message = await person.next_message()
        for prefix in prefixes:
            if prefix not in found and any(d.startswith(prefix) for _l, d in buttons(message)):
                found[prefix] = message
    return [found[prefix] for prefix in prefixes]


def buttons(message: BotMessage) -> list[tuple[str, str]]:
    return [(label, data or "") for row in message.buttons() for label, data in row]


def busy_calendar(start: datetime, end: datetime) -> bytes:
    """An .ics export with one busy event, as Outlook writes it (the title stays private)."""
    calendar = Calendar()
    calendar.add("prodid", "-//Round Table demo//EN")
    calendar.add("version", "2.0")
    event = Event()
    event.add("uid", "court-hearing@example.org")
    event.add("dtstamp", start)
    event.add("dtstart", start)
    event.add("dtend", end)
    event.add("summary", "Soudní jednání")
    calendar.add_component(event)
    return bytes(calendar.to_ical())
