"""Dates and times as people type them in a chat ("3.2.2027", "3. 2.", "2027-02-03",
"3.2.2027 10:00"): pure parsing, no I/O."""

from __future__ import annotations

import re
from datetime import date, datetime, time
from zoneinfo import ZoneInfo


def parse_day(text: str, today: date) -> date | None:
    """A date as people type it: 3.2.2027, 3. 2. 2027, 3.2. (the next such day), 2027-02-03."""
    text = text.strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return date.fromisoformat(text)
        match = re.fullmatch(r"(\d{1,2})\.\s*(\d{1,2})\.\s*(\d{4})?", text)
        if match is None:
            return None
        day, month = int(match.group(1)), int(match.group(2))
        if match.group(3):
            return date(int(match.group(3)), month, day)
        value = date(today.year, month, day)
        return value if value >= today else date(today.year + 1, month, day)
    except ValueError:
        return None


def parse_moment(text: str, today: date, zone: ZoneInfo) -> datetime | None:
    """A date and a time: 3.2.2027 10:00."""
    match = re.fullmatch(r"(.+?)\s+(\d{1,2})[:.](\d{2})", text.strip())
    if match is None:
        return None
    day = parse_day(match.group(1), today)
    hour, minute = int(match.group(2)), int(match.group(3))
    if day is None or hour > 23 or minute > 59:
        return None
    return datetime.combine(day, time(hour, minute), tzinfo=zone)
