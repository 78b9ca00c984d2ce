"""An invitation's caption at its longest: Telegram takes a document's caption only up to 1,024
characters (counted after the HTML is parsed), and refuses the whole message otherwise, so the
invitation would never arrive. The longest place, names and institution names, a rescheduled
conference before a court petition with a goal (the method's two lines), answered by a person
with the longest name: the text alone is too long, the caption fits, the place shortened."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from bot.core.clock import FakeClock
from bot.core.i18n import Translator
from bot.core.method_tables import ConferenceKind
from bot.core.models import InvitationKind, Rsvp
from bot.sandbox.content import MAX_CAPTION_LENGTH, render_caption
from bot.services.board import Inviter, Method
from bot.services.invitation_views import Attendee, InviteView
from handlers.invitation_text import invite_caption, invite_text

ZONE = ZoneInfo("Europe/Prague")
PLACE = ("Zasedací místnost odboru sociálních věcí & prevence, " * 5)[:200]
NAME = "Ž" * 128  # a member's display name is kept up to 128 characters
INSTITUTION = "Š" * 120  # an institution's name up to 120


def longest(locale: str) -> InviteView:
    own = Attendee(7, InvitationKind.INSTITUTION, INSTITUTION, NAME, 0, "", True, Rsvp.ACCEPTED)
    return InviteView(
        conference_id=1,
        invitation_id=7,
        case_code="PK-2026-0001",
        uid="uid",
        sequence=1,
        starts_at=datetime(2026, 11, 30, 8, tzinfo=UTC),
        minutes=90,
        place=PLACE,
        zone=ZONE,
        organizer_name="Round Table",
        organizer_address="konference@cheb.example.cz",
        inviter=Inviter(NAME, INSTITUTION),
        chair=own,
        attendees=(own,),
        rsvp=Rsvp.ACCEPTED,
        rsvp_by=NAME,
        rsvp_by_id=5,
        required=True,
        may_hand_over=True,
        previous_starts_at=datetime(2026, 11, 27, 8, tzinfo=UTC),
        cancelled=False,
        stamp=datetime(2026, 11, 2, tzinfo=UTC),
        locale=locale,
        reader_id=5,
        reader_email=None,
        method=Method(ConferenceKind.COURT, has_goal=True),
    )


def shown(caption: str) -> str:
    formatted = render_caption(caption, "HTML", None)  # raises as Telegram would refuse it
    assert formatted is not None
    return formatted.text


@pytest.mark.parametrize("locale", ["cs", "en", "uk"])
def test_the_longest_invitation_fits_its_caption(locale: str) -> None:
    tr = Translator(locale, ZONE, FakeClock(datetime(2026, 11, 2, 9, tzinfo=UTC)))
    view = longest(locale)
    caption = shown(invite_caption(view, tr))
    assert len(caption) <= MAX_CAPTION_LENGTH
    assert caption.startswith(tr.gettext("Case conference {code}").format(code="PK-2026-0001"))
    assert PLACE[:60] in caption and PLACE not in caption  # the place shortened, with "…"
    goal = tr.gettext("The goal of the conference is in the bot: tap 🎯 Goal of the conference.")
    assert goal in caption
    assert caption.endswith(NAME + ").")  # the answer, the last line, is kept


def test_the_text_alone_would_not_fit() -> None:
    tr = Translator("cs", ZONE, FakeClock(datetime(2026, 11, 2, 9, tzinfo=UTC)))
    assert len(invite_text(longest("cs"), tr).replace("&amp;", "&")) > MAX_CAPTION_LENGTH


def test_a_short_invitation_is_the_text_itself() -> None:
    tr = Translator("en", ZONE, FakeClock(datetime(2026, 11, 2, 9, tzinfo=UTC)))
    view = longest("en")
    short = replace(view, place="OSPOD Cheb", inviter=Inviter("Hana", "OSPOD Cheb"))
    assert invite_caption(short, tr) == invite_text(short, tr)
