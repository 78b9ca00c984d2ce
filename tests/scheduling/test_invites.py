"""Conference invitations as calendars read them: every file is parsed by icalendar and vobject."""

from __future__ import annotations

import itertools
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import pytest
import vobject  # type: ignore[import-untyped]

from scheduling.invites import (
    FILE_MIME_CANCEL,
    FILE_MIME_REQUEST,
    PRODID,
    Attendee,
    Event,
    cancel,
    request,
)

PRAGUE = ZoneInfo("Europe/Prague")
CHAIR = Attendee("koordinator@cheb.example.cz", "OSPOD Cheb – Jana Nováková", "CHAIR", "ACCEPTED")
POLICE = Attendee(
    "petr@policie.example.cz", "Policie Cheb – Petr", "REQ-PARTICIPANT", "NEEDS-ACTION"
)
SCHOOL = Attendee("skola@zs.example.cz", "ZŠ Cheb – Оксана", "OPT-PARTICIPANT", "TENTATIVE")
DOCTOR = Attendee("mudr@nemocnice.example.cz", "Nemocnice Cheb", "REQ-PARTICIPANT", "DECLINED")
ATTENDEES = (CHAIR, POLICE, SCHOOL, DOCTOR)
# The names every physical line may start with: anything else would be an injected property.
NAMES = {
    "BEGIN", "END", "PRODID", "VERSION", "CALSCALE", "METHOD", "TZID", "DTSTART", "DTEND",
    "RRULE", "TZNAME", "TZOFFSETFROM", "TZOFFSETTO", "SUMMARY", "DTSTAMP", "UID", "SEQUENCE",
    "ATTENDEE", "DESCRIPTION", "LOCATION", "ORGANIZER", "STATUS", "TRANSP",
}  # fmt: skip
_RENAMED = itertools.count()


def conference(**changes: Any) -> Event:
    event = Event(
        uid="c3f1a2b4-0001@roundtable",
        sequence=0,
        starts_at=datetime(2026, 12, 10, 9, 0, tzinfo=PRAGUE).astimezone(UTC),
        minutes=90,
        summary="Case conference PK-2026-0001",
        description="Please bring the school report.",
        location="OSPOD Cheb, room 12",
        organizer_address="ospod@cheb.example.cz",
        organizer_name="OSPOD Cheb",
        attendees=ATTENDEES,
        zone=PRAGUE,
        stamp=datetime(2026, 11, 23, 7, 15, 30, 123456, tzinfo=UTC),
    )
    return replace(event, **changes)


def at(zone: ZoneInfo, *args: int) -> datetime:
    return datetime(*args, tzinfo=zone).astimezone(UTC)  # type: ignore[misc, arg-type]


def both(data: bytes) -> tuple[Any, Any]:
    """The VEVENT as icalendar and as vobject read it."""
    text = data.decode("utf-8")
    calendar = icalendar.Calendar.from_ical(text)
    return calendar.walk("VEVENT")[0], vobject.readOne(text).vevent


def own_zone(data: bytes, zone: ZoneInfo) -> bytes:
    """The file with its zone renamed, so that parsers must read the VTIMEZONE in it instead of
    the zone they know by name. Each name is new: vobject keeps the first zone of a name."""
    name = f"Round-Table/Test-{next(_RENAMED)}".encode()
    return data.replace(f"TZID:{zone.key}".encode(), b"TZID:" + name).replace(
        f"TZID={zone.key}:".encode(), b"TZID=" + name + b":"
    )


def utc_times(data: bytes) -> list[tuple[datetime, datetime]]:
    """(start, end) in UTC by icalendar and by vobject, each from the zone's name and from the
    file's own VTIMEZONE."""
    times = []
    for each in (data, own_zone(data, PRAGUE)):
        ours, theirs = both(each)
        times.append((ours.start.astimezone(UTC), ours.end.astimezone(UTC)))
        times.append((theirs.dtstart.value.astimezone(UTC), theirs.dtend.value.astimezone(UTC)))
    return times


def attendees(data: bytes) -> list[list[tuple[str, dict[str, str]]]]:
    """Each parser's attendees as (address, parameters)."""
    ours, theirs = both(data)
    found = ours.get("ATTENDEE", [])
    return [
        [
            (str(a), {k: str(v) for k, v in a.params.items()})
            for a in (found if isinstance(found, list) else [found])
        ],
        [(a.value, {k: v[0] for k, v in a.params.items()}) for a in theirs.contents["attendee"]],
    ]


def physical_lines(data: bytes) -> list[bytes]:
    assert data.endswith(b"\r\n")
    return data[:-2].split(b"\r\n")


@pytest.mark.parametrize(
    ("month", "utc_hour"),
    [(7, 7), (12, 8)],  # summer time +02:00, winter time +01:00
)
def test_nine_oclock_in_prague_reads_nine_oclock_in_both_parsers(month: int, utc_hour: int) -> None:
    data = request(conference(starts_at=at(PRAGUE, 2026, month, 15, 9, 0)))

    start = datetime(2026, month, 15, utc_hour, 0, tzinfo=UTC)
    assert utc_times(data) == [(start, start + timedelta(minutes=90))] * 4
    ours, theirs = both(data)
    assert ours.start.replace(tzinfo=None) == datetime(2026, month, 15, 9, 0)
    assert theirs.dtstart.value.replace(tzinfo=None) == datetime(2026, month, 15, 9, 0)
    assert f"DTSTART;TZID=Europe/Prague:2026{month:02}15T090000".encode() in data
    assert f"DTEND;TZID=Europe/Prague:2026{month:02}15T103000".encode() in data


def test_the_end_is_the_start_plus_the_conference_length() -> None:
    start = at(PRAGUE, 2026, 12, 10, 14, 30)

    data = request(conference(starts_at=start, minutes=125))

    assert all(end - begin == timedelta(minutes=125) for begin, end in utc_times(data))
    assert utc_times(data)[0] == (start, start + timedelta(minutes=125))


def test_prague_is_written_as_yearly_rules_without_dates() -> None:
    data = request(conference())

    zone = icalendar.Calendar.from_ical(data).walk("VTIMEZONE")[0]
    assert zone["TZID"] == "Europe/Prague"
    assert b"RDATE" not in data
    (summer,) = zone.walk("DAYLIGHT")
    (winter,) = zone.walk("STANDARD")
    assert summer.to_ical().decode().split("\r\n")[1:7] == [
        "DTSTART:20250330T020000",
        "RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3",
        "TZNAME:CEST",
        "TZOFFSETFROM:+0100",
        "TZOFFSETTO:+0200",
        "END:DAYLIGHT",
    ]
    assert winter.to_ical().decode().split("\r\n")[1:7] == [
        "DTSTART:20251026T030000",
        "RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10",
        "TZNAME:CET",
        "TZOFFSETFROM:+0200",
        "TZOFFSETTO:+0100",
        "END:STANDARD",
    ]
    # The zone comes before the event that uses it.
    assert data.index(b"BEGIN:VTIMEZONE") < data.index(b"BEGIN:VEVENT")


@pytest.mark.parametrize(
    ("zone", "rules"),
    [
        ("Europe/Prague", {"BYDAY=-1SU;BYMONTH=3", "BYDAY=-1SU;BYMONTH=10"}),
        ("Europe/London", {"BYDAY=-1SU;BYMONTH=3", "BYDAY=-1SU;BYMONTH=10"}),
        ("Europe/Kyiv", {"BYDAY=-1SU;BYMONTH=3", "BYDAY=-1SU;BYMONTH=10"}),
        ("America/New_York", {"BYDAY=2SU;BYMONTH=3", "BYDAY=1SU;BYMONTH=11"}),
        ("Australia/Sydney", {"BYDAY=1SU;BYMONTH=4", "BYDAY=1SU;BYMONTH=10"}),
        ("Asia/Tokyo", set()),
    ],
)
def test_the_written_zone_alone_gives_zoneinfos_offsets_all_year(
    zone: str, rules: set[str]
) -> None:
    tz = ZoneInfo(zone)
    data = request(conference(zone=tz, starts_at=at(tz, 2026, 6, 1, 9, 0)))

    text = data.decode()
    assert set(re.findall(r"RRULE:FREQ=YEARLY;(.*)\r\n", text)) == rules
    assert "RDATE" not in text
    component: Any = icalendar.Calendar.from_ical(text).walk("VTIMEZONE")[0]
    readers: list[tzinfo] = [
        component.to_tz(lookup_tzid=False),
        vobject.readOne(text).vtimezone.gettzinfo(),
    ]
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    while moment.year == 2026:
        for reader in readers:
            assert moment.astimezone(reader).utcoffset() == moment.astimezone(tz).utcoffset()
        moment += timedelta(hours=5)


def test_a_zone_without_summer_time_has_only_standard_time() -> None:
    tokyo = ZoneInfo("Asia/Tokyo")

    data = request(conference(zone=tokyo, starts_at=at(tokyo, 2026, 7, 15, 9, 0)))

    zone = icalendar.Calendar.from_ical(data).walk("VTIMEZONE")[0]
    assert zone["TZID"] == "Asia/Tokyo"
    assert zone.walk("DAYLIGHT") == []
    (standard,) = zone.walk("STANDARD")
    assert standard.to_ical().decode().split("\r\n")[1:5] == [
        "DTSTART:19700101T000000",
        "TZNAME:JST",
        "TZOFFSETFROM:+0900",
        "TZOFFSETTO:+0900",
    ]
    assert b"RDATE" not in data
    start = datetime(2026, 7, 15, 0, 0, tzinfo=UTC)
    for each in (data, own_zone(data, tokyo)):
        ours, theirs = both(each)
        assert ours.start == theirs.dtstart.value == start
        assert ours.end == theirs.dtend.value == start + timedelta(minutes=90)
        assert theirs.dtstart.value.replace(tzinfo=None) == datetime(2026, 7, 15, 9, 0)


@pytest.mark.parametrize(
    ("day", "utc_hour"),
    [(23, 7), (26, 8)],  # Friday before, Monday after the clocks go back on Sunday 25 October
)
def test_conferences_in_the_week_the_clocks_go_back(day: int, utc_hour: int) -> None:
    data = request(conference(starts_at=at(PRAGUE, 2026, 10, day, 9, 0)))

    start = datetime(2026, 10, day, utc_hour, 0, tzinfo=UTC)
    assert utc_times(data) == [(start, start + timedelta(minutes=90))] * 4


def test_an_event_across_the_change_of_clocks_keeps_its_real_length() -> None:
    # From midnight in summer time to 03:00 in winter time: four hours, though the wall clock
    # shows three.
    start = datetime(2026, 10, 24, 22, 0, tzinfo=UTC)

    data = request(conference(starts_at=start, minutes=240))

    assert b"DTSTART;TZID=Europe/Prague:20261025T000000" in data
    assert b"DTEND;TZID=Europe/Prague:20261025T030000" in data
    assert utc_times(data) == [(start, datetime(2026, 10, 25, 2, 0, tzinfo=UTC))] * 4


def test_an_event_across_the_change_to_summer_time() -> None:
    start = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)  # 01:30 CET, until 04:30 CEST

    data = request(conference(starts_at=start, minutes=120))

    assert b"DTEND;TZID=Europe/Prague:20260329T043000" in data
    assert utc_times(data) == [(start, datetime(2026, 3, 29, 2, 30, tzinfo=UTC))] * 4


def test_a_time_in_the_repeated_hour_is_written_in_utc() -> None:
    # 02:30 on 25 October 2026 happens twice in Prague; this is the second one, in winter time.
    start = datetime(2026, 10, 25, 1, 30, tzinfo=UTC)

    data = request(conference(starts_at=start))

    assert b"BEGIN:VTIMEZONE" not in data
    assert b"DTSTART:20261025T013000Z" in data
    assert b"DTEND:20261025T030000Z" in data
    assert utc_times(data) == [(start, start + timedelta(minutes=90))] * 4


def test_a_zone_that_changes_only_once_in_the_year_is_written_in_utc() -> None:
    # Brazil ended summer time in February 2019 and did not start it again that year.
    sao_paulo = ZoneInfo("America/Sao_Paulo")
    start = at(sao_paulo, 2019, 6, 3, 9, 0)

    data = request(conference(zone=sao_paulo, starts_at=start))

    assert b"BEGIN:VTIMEZONE" not in data
    assert b"DTSTART:20190603T120000Z" in data
    ours, theirs = both(data)
    assert ours.start == theirs.dtstart.value == start


def test_the_invitation_is_a_confirmed_request() -> None:
    data = request(conference(sequence=0))

    calendar = icalendar.Calendar.from_ical(data)
    ours, theirs = both(data)
    assert calendar["PRODID"] == PRODID
    assert calendar["VERSION"] == "2.0"
    assert calendar["CALSCALE"] == "GREGORIAN"
    assert calendar["METHOD"] == "REQUEST"
    assert vobject.readOne(data.decode()).method.value == "REQUEST"
    assert len(calendar.walk("VEVENT")) == 1
    assert ours["UID"] == theirs.uid.value == "c3f1a2b4-0001@roundtable"
    assert ours["SEQUENCE"] == 0
    assert theirs.sequence.value == "0"
    assert ours["STATUS"] == theirs.status.value == "CONFIRMED"
    assert ours["TRANSP"] == theirs.transp.value == "OPAQUE"
    assert ours["SUMMARY"] == theirs.summary.value == "Case conference PK-2026-0001"
    assert ours.DTSTAMP == theirs.dtstamp.value == datetime(2026, 11, 23, 7, 15, 30, tzinfo=UTC)
    assert b"DTSTAMP:20261123T071530Z\r\n" in data
    assert FILE_MIME_REQUEST == "text/calendar; method=REQUEST"


def test_a_stamp_in_another_zone_is_written_in_utc() -> None:
    data = request(conference(stamp=datetime(2026, 11, 23, 8, 15, tzinfo=PRAGUE)))

    assert b"DTSTAMP:20261123T071500Z\r\n" in data


def test_coordinator_cancels_the_conference() -> None:
    data = cancel(conference(sequence=2))

    calendar = icalendar.Calendar.from_ical(data)
    ours, theirs = both(data)
    assert calendar["METHOD"] == vobject.readOne(data.decode()).method.value == "CANCEL"
    assert ours["UID"] == theirs.uid.value == "c3f1a2b4-0001@roundtable"
    assert ours["SEQUENCE"] == 2
    assert ours["STATUS"] == theirs.status.value == "CANCELLED"
    assert FILE_MIME_CANCEL == "text/calendar; method=CANCEL"
    # Everyone is told, nobody is asked to answer.
    for parsed in attendees(data):
        assert [address for address, _ in parsed] == [f"mailto:{a.address}" for a in ATTENDEES]
        assert {params["RSVP"] for _, params in parsed} == {"FALSE"}


def test_coordinator_reschedules_and_calendars_see_the_same_conference_moved() -> None:
    first = conference()
    moved = replace(first, sequence=first.sequence + 1, starts_at=at(PRAGUE, 2027, 1, 12, 13, 0))

    before, after = both(request(first))[0], both(request(moved))[0]

    assert before["UID"] == after["UID"] == first.uid
    assert (before["SEQUENCE"], after["SEQUENCE"]) == (0, 1)
    assert after.start.astimezone(UTC) == datetime(2027, 1, 12, 12, 0, tzinfo=UTC)
    assert utc_times(request(moved))[1][0] == datetime(2027, 1, 12, 12, 0, tzinfo=UTC)


def test_every_invitee_is_an_attendee_with_role_answer_and_rsvp() -> None:
    data = request(conference())

    expected = [
        (
            f"mailto:{a.address}",
            {
                "CN": a.name,
                "CUTYPE": "INDIVIDUAL",
                "ROLE": a.role,
                "PARTSTAT": a.partstat,
                "RSVP": "FALSE" if a.role == "CHAIR" else "TRUE",
            },
        )
        for a in ATTENDEES
    ]
    assert attendees(data) == [expected, expected]


def test_the_organizer_is_the_district_mailbox() -> None:
    data = request(conference())

    ours, theirs = both(data)
    assert ours["ORGANIZER"] == theirs.organizer.value == "mailto:ospod@cheb.example.cz"
    assert ours["ORGANIZER"].params["CN"] == "OSPOD Cheb"
    assert theirs.organizer.params["CN"] == ["OSPOD Cheb"]


@pytest.mark.parametrize(
    "text",
    [
        "Commas, semicolons; colons: and a backslash \\ and \\n that is no new line",
        "Two lines\nand a third\n\nafter an empty one",
        "Případová konference – Žáček, Řehoř; ďábelsky úžasné",
        "Засідання щодо дитини: Ґанна, Їжак; Євген\\Юрій",
        "Tab\tinside, \"quotes\" and 'apostrophes' and ^carets^",
        "Long " + "žluťoučký kůň úpěl ďábelské ódy, Єва і Ґанна; " * 12,
    ],
)
def test_text_reads_back_exactly_in_both_parsers(text: str) -> None:
    data = request(conference(summary=text, description=text, location=text))

    ours, theirs = both(data)
    for name in ("SUMMARY", "DESCRIPTION", "LOCATION"):
        assert str(ours[name]) == text
        assert theirs.contents[name.lower()][0].value == text


@pytest.mark.parametrize(
    ("name", "read"),
    [
        ("Policie Cheb – Petr, st.; kpt.: Ř", "Policie Cheb – Petr, st.; kpt.: Ř"),
        ('Škola "U Lípy", Cheb', "Škola 'U Lípy', Cheb"),
        ("Dvě\nřádky\r\n a\ttab", "Dvě řádky  a tab"),
        ("Stříška ^n a ^^", "Stříška \u02c6n a \u02c6\u02c6"),
    ],
)
def test_names_with_quotes_commas_and_semicolons_still_parse(name: str, read: str) -> None:
    invitee = Attendee("ja@example.cz", name, "REQ-PARTICIPANT", "NEEDS-ACTION")

    data = request(conference(attendees=(invitee,), organizer_name=name))

    for parsed in attendees(data):
        assert parsed == [
            (
                "mailto:ja@example.cz",
                {
                    "CN": read,
                    "CUTYPE": "INDIVIDUAL",
                    "ROLE": "REQ-PARTICIPANT",
                    "PARTSTAT": "NEEDS-ACTION",
                    "RSVP": "TRUE",
                },
            )
        ]
    ours, theirs = both(data)
    assert ours["ORGANIZER"].params["CN"] == theirs.organizer.params["CN"][0] == read


def test_a_location_cannot_smuggle_in_an_attendee() -> None:
    location = "Room 1\r\nATTENDEE:mailto:evil@example.com"

    data = request(conference(location=location))

    ours, theirs = both(data)
    assert (
        str(ours["LOCATION"]) == theirs.location.value == "Room 1\nATTENDEE:mailto:evil@example.com"
    )
    assert len(ours["ATTENDEE"]) == len(theirs.contents["attendee"]) == len(ATTENDEES)
    assert all("evil" not in str(a) for a in ours["ATTENDEE"])
    assert b"\r\nATTENDEE:mailto:evil" not in data
    for line in physical_lines(data):
        if not line.startswith(b" "):
            name = re.match(rb"[A-Z-]+", line)
            assert name is not None
            assert name.group().decode() in NAMES, line


@pytest.mark.parametrize(
    ("dirty", "clean"),
    [
        ("a\x00b\x07c\x1bd\x7fe", "abcde"),
        ("bell\x08 and escape\x1b[31m", "bell and escape[31m"),
        (
            "line\rbreak\x0bvertical\x0cfeed\x85next\u2028sep\u2029para",
            "line\nbreak\nvertical\nfeed\nnext\nsep\npara",
        ),
        ("lone \ud800 surrogate", "lone  surrogate"),
        ("\x9bC1 control", "C1 control"),
    ],
)
def test_illegal_characters_are_dropped_not_fatal(dirty: str, clean: str) -> None:
    data = request(conference(summary=dirty, description=dirty, location=dirty, uid=f"u{dirty}"))

    ours, theirs = both(data)
    assert str(ours["SUMMARY"]) == theirs.summary.value == clean
    assert str(ours["LOCATION"]) == theirs.location.value == clean
    assert ours["UID"] == theirs.uid.value == f"u{clean}"
    assert not re.search(rb"[\x00-\x08\x0b-\x1f\x7f]", data.replace(b"\r\n", b""))


def test_an_address_with_stray_spaces_or_breaks_stays_one_address() -> None:
    invitee = Attendee(" ja@example.cz\r\n", "Já", "REQ-PARTICIPANT", "NEEDS-ACTION")

    data = request(conference(attendees=(invitee,), organizer_address="ospod@cheb.example.cz\n"))

    assert [[address for address, _ in parsed] for parsed in attendees(data)] == [
        ["mailto:ja@example.cz"]
    ] * 2
    assert both(data)[1].organizer.value == "mailto:ospod@cheb.example.cz"


def test_lines_are_folded_at_75_octets_and_end_with_crlf() -> None:
    long = "Případová konference – Засідання щодо дитини, " * 20
    attendee = Attendee("a" * 60 + "@example.cz", "Ř" * 80, "REQ-PARTICIPANT", "NEEDS-ACTION")

    for data in (
        request(conference(description=long, summary=long, attendees=(attendee, *ATTENDEES))),
        cancel(conference(location=long, sequence=1)),
    ):
        lines = physical_lines(data)
        assert max(len(line) for line in lines) <= 75
        assert any(len(line) > 70 for line in lines)
        assert all(b"\r" not in line and b"\n" not in line for line in lines)
        for line in lines:
            line.decode("utf-8")  # folds never split a character
        assert str(both(data)[0]["SUMMARY"]) in (long, "Case conference PK-2026-0001")


def test_wrong_input_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        request(conference(starts_at=datetime(2026, 12, 10, 9, 0)))
    with pytest.raises(ValueError, match="ROLE"):
        request(conference(attendees=(replace(POLICE, role="BOSS"),)))
    with pytest.raises(ValueError, match="ROLE"):
        request(conference(attendees=(replace(POLICE, partstat="MAYBE"),)))
    with pytest.raises(ValueError, match="minute"):
        request(conference(minutes=0))
    with pytest.raises(ValueError, match="address"):
        request(conference(attendees=(replace(POLICE, address=" \n"),)))
