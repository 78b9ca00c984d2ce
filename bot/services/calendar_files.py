"""An invitation's calendar object (built by `scheduling.invites`), the same for the chat's
`.ics` file and the e-mail's `text/calendar` part.

Privacy: the calendar lists the chair and every invited institution by name, but names only one
real address, the reader's own (so that their calendar knows the invitation is theirs and
answers for it); everyone else's is a placeholder on the reserved `.invalid` domain (RFC 2606),
which never delivers. A guardian's or a colleague's address never reaches another reader.
"""

from __future__ import annotations

from bot.core.i18n import Translator
from bot.core.models import InvitationKind, Rsvp
from bot.services.invitation_views import Attendee, InviteView
from scheduling import invites

PARTSTAT = {
    Rsvp.ACCEPTED: "ACCEPTED",
    Rsvp.TENTATIVE: "TENTATIVE",
    Rsvp.DECLINED: "DECLINED",
    Rsvp.PENDING: "NEEDS-ACTION",
}


def attendee_name(attendee: Attendee, tr: Translator) -> str:
    """An invitee as a reader sees them: the institution, the guest, or a numbered guardian."""
    if attendee.kind in (InvitationKind.INSTITUTION, InvitationKind.GUEST):
        return attendee.name
    return tr.gettext("Guardian {n}").format(n=attendee.number)


def calendar_event(
    view: InviteView, tr: Translator, *, address: str | None = None
) -> invites.Event:
    """The event as `view`'s reader gets it; `address` is theirs (the chat's file: their
    confirmed e-mail, if any; a mail: the address it goes to)."""
    _ = tr.gettext
    own = address or view.reader_email
    chair = view.chair
    attendees = [
        invites.Attendee(
            address=own if view.invitation_id is None and own else chair.address,
            name=chair.person or "",
            role="CHAIR",
            partstat="ACCEPTED",
        )
    ]
    for attendee in view.attendees:
        name = attendee_name(attendee, tr)
        if attendee.person:
            name = f"{name} – {attendee.person}"
        mine = view.invitation_id is not None and attendee.invitation_id == view.invitation_id
        attendees.append(
            invites.Attendee(
                address=own if mine and own else attendee.address,
                name=name,
                role="REQ-PARTICIPANT" if attendee.required else "OPT-PARTICIPANT",
                partstat=PARTSTAT[attendee.rsvp],
            )
        )
    return invites.Event(
        uid=view.uid,
        sequence=view.sequence,
        starts_at=view.starts_at,
        minutes=view.minutes,
        summary=_("Case conference {code}").format(code=view.case_code),
        description=_description(view, tr),
        location=view.place,
        organizer_address=view.organizer_address,
        organizer_name=view.organizer_name,
        attendees=tuple(attendees),
        zone=view.zone,
        stamp=view.stamp,
    )


def _description(view: InviteView, tr: Translator) -> str:
    _ = tr.gettext
    if view.reader_id is None:  # a guest, not on Telegram
        return _(
            "Case conference {code}. Please answer with your calendar's buttons; changes come "
            "by e-mail."
        ).format(code=view.case_code)
    return _(
        "Case conference {code}. Answers, changes and reminders come in Round Table (Telegram)."
    ).format(code=view.case_code)


def calendar(view: InviteView, tr: Translator, *, address: str | None = None) -> bytes:
    """The iCalendar object: METHOD REQUEST, or CANCEL once the conference is cancelled."""
    event = calendar_event(view, tr, address=address)
    return invites.cancel(event) if view.cancelled else invites.request(event)


def calendar_file(view: InviteView, tr: Translator) -> tuple[str, bytes, str]:
    """The chat's `.ics` document: file name, content, MIME type."""
    mime = invites.FILE_MIME_CANCEL if view.cancelled else invites.FILE_MIME_REQUEST
    return f"{view.case_code}.ics", calendar(view, tr), mime
