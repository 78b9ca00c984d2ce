"""Who may do what: every command, every button and every document request of the running bot,
for every role, against objects of the person's own, of their institution, of someone else in
their district and of the other district.

The rules are DESIGN.md's, stated here (the rule functions, and ROWS: which rule each command
and button follows); the test does not ask the code under test what they are. The document
requests are rows too: a referral's details, the record (with and without the child's name)
and a task's notes, each protected. A cell is one update sent by one person over HTTP through
the Bot API stand-in, and it is one of:

- allowed: the person sees the real content (a code, a title, the child's name, a document);
- refused: a clear refusal, nothing of the object (no code, name, title, place) in what the
  person sees, the object unchanged, and an audit entry of the refusal;
- inert: a button of a dialog the person is not in (or no dialog's at all): "no longer active",
  and nothing of the object it names;
- n/a: no such object can exist (a participant manages no case).

Forged callback data is what most cells are: the right format with someone else's id. The rows
come from the application itself: a command or a button pattern registered without a row here
fails `test_every_command_and_button_has_a_row`.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import docx
import pytest
from sqlalchemy import func, inspect, select
from telegram import Update
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler, ConversationHandler

from bot.core.models import (
    AuditEntry,
    Case,
    Conference,
    Institution,
    Invitation,
    InviteCode,
    Member,
    PollMessage,
    RecordComment,
    Referral,
    ReferralNote,
    Role,
    Task,
    TaskNote,
)
from bot.sandbox import FloodLimits, Person
from bot.sandbox.models import BotMessage, CallbackAnswer, ChatEvent
from bot.transport.telegram import delivery
from bot.transport.telegram.processor import OrderedUpdateProcessor
from tests.e2e.access_world import RELATIONS, Builder, Thing, Who, World, who
from tests.e2e.conftest import RunningBot

ANY_BUTTON = "<any button>"  # the last-resort CallbackQueryHandler, which has no pattern
STALE = "This button is no longer active."
NO_MAIL = "This Round Table sends no e-mail yet"  # the matrix's bot has no mail settings
CONTACTS = "Institutions' contact e-mail addresses ("
REFUSALS = (
    "This bot is only for members of the case conference team.",
    "You are not allowed to see this referral.",
    "You are not allowed to do that.",
    "This is not yours to change.",
    "Only the conference's coordinator can close its poll early.",
    "This is not yours to answer.",
    "Only administrators can manage members.",
    "Only administrators can set the institutions' e-mail addresses.",
    "Only administrators and coordinators can create invite links.",
    "Only coordinators see the referral queue.",
    "Only coordinators see the district's cases.",
    "Only coordinators have an agenda.",
    "Concerns are reported by referrers",
    "Only the participants of this conference can read its goal.",
)
# The roles of the matrix and who plays them: district A's people, and B's first coordinator
# as "the coordinator of another district" (their own district is B; A is the other one).
ROLES = (
    ("unknown", None),
    ("deactivated", "A.D"),
    ("referrer", "A.R1"),
    ("participant", "A.P1"),
    ("coordinator of another district", "B.C1"),
    ("coordinator", "A.C1"),
    ("admin", "A.A1"),
)


@pytest.fixture
def flood_limits() -> FloodLimits:
    """A thousand presses in a few seconds: Telegram's flood limits are not what is tested."""
    return FloodLimits(enabled=False)


# --- the rules (DESIGN.md: people, roles, "need to know") -----------------------------------

Rule = Callable[[Who, Thing | None], bool]


def anyone(person: Who, thing: Thing | None) -> bool:
    """Any registered, active member (their own language, busy times, tasks, home)."""
    return True


def may_refer(person: Who, thing: Thing | None) -> bool:
    """Referrers report concerns; coordinators may refer too."""
    return person.role in (Role.REFERRER, Role.COORDINATOR)


def may_invite(person: Who, thing: Thing | None) -> bool:
    """Admins and coordinators hand out invite links."""
    return person.role in (Role.ADMIN, Role.COORDINATOR)


def is_admin(person: Who, thing: Thing | None) -> bool:
    """Admins manage the members of their district."""
    return person.role is Role.ADMIN


def is_coordinator(person: Who, thing: Thing | None) -> bool:
    """Coordinators have the queue, the cases and the agenda of their district."""
    return person.role is Role.COORDINATOR


def reads_referral(person: Who, thing: Thing | None) -> bool:
    """A referrer sees their own referrals; a coordinator sees their district's."""
    assert thing is not None
    return thing.holder == person.key or district_coordinator(person, thing)


def referrer_of(person: Who, thing: Thing | None) -> bool:
    """Only the referrer answers a question about their referral."""
    assert thing is not None
    return thing.holder == person.key


def district_coordinator(person: Who, thing: Thing | None) -> bool:
    """A coordinator sees (and manages) their district: its referrals, cases, conferences,
    records and tasks, whoever is the case manager."""
    assert thing is not None
    return person.role is Role.COORDINATOR and person.district == thing.district


def chair(person: Who, thing: Thing | None) -> bool:
    """An offline guardian's answers are entered, and a poll closed early ("Decide now"), by
    the conference's coordinator."""
    assert thing is not None
    return thing.chair == person.key


def invited(person: Who, thing: Thing | None) -> bool:
    """A participant sees only cases their institution is invited to: any member of an invited
    institution answers the poll and the invitation for it (not the chair)."""
    assert thing is not None
    return thing.institution == person.institution and thing.chair != person.key


def participant(person: Who, thing: Thing | None) -> bool:
    """A conference's goal is read by whoever takes part: a member of any institution invited
    to it (who may answer for that invitation), and the district's coordinators."""
    assert thing is not None
    return district_coordinator(person, thing) or any(
        invited(person, invitation) for invitation in thing.extra["invitations"]
    )


def came_for(person: Who, thing: Thing | None) -> bool:
    """The draft record goes to the one who came for an invitation, who answers it: comments,
    or has none."""
    assert thing is not None
    return thing.holder == person.key


def task_owner(person: Who, thing: Thing | None) -> bool:
    """A task's owner marks it done, writes notes, asks for more time."""
    assert thing is not None
    return thing.holder == person.key


def admin_of_another(person: Who, thing: Thing | None) -> bool:
    """An admin deactivates leavers of their district, never themselves."""
    assert thing is not None
    return (
        person.role is Role.ADMIN
        and thing.district == person.district
        and thing.holder != person.key
    )


INERT: Rule | None = None  # a button of a dialog the person is not in: it does nothing


# --- the rows: every command and button ------------------------------------------------------

Shows = Sequence[str | tuple[str, ...]]  # each entry must be seen; a tuple: one of them


@dataclass(frozen=True)
class Row:
    name: str
    handler: str  # "/command", or the callback pattern as registered
    rule: Rule | None
    data: Callable[[World, Thing | None], str]  # what is sent: a command or callback data
    shows: Callable[[World, Thing | None], Shows]  # what an allowed person sees
    pool: str | None = None  # the objects it is pressed against (None: no object)
    protected: bool = False  # the content comes protected (no forwarding, no saving)
    document: bool = False  # the content is a document
    target: Callable[[World], Thing] | None = None  # the object an object-free row names


def text(value: str) -> Callable[[World, Thing | None], str]:
    return lambda world, thing: value


def sees(*parts: str | tuple[str, ...]) -> Callable[[World, Thing | None], Shows]:
    return lambda world, thing: parts


def pressed(template: str) -> Callable[[World, Thing | None], str]:
    """Callback data about the row's object: {id} and the object's extra values."""

    def build(world: World, thing: Thing | None) -> str:
        assert thing is not None
        return template.format(id=thing.id, **thing.extra)

    return build


def shown(*templates: str | tuple[str, ...]) -> Callable[[World, Thing | None], Shows]:
    """What the allowed see, from the object's values ({code}, {title}, {child}, ...)."""

    def build(world: World, thing: Thing | None) -> Shows:
        assert thing is not None
        values = {"id": thing.id, "secret": thing.secrets[0], **thing.extra}
        return [
            tuple(t.format(**values) for t in template)
            if isinstance(template, tuple)
            else template.format(**values)
            for template in templates
        ]

    return build


def b_thing(pool: str) -> Callable[[World], Thing]:
    return lambda world: next(t for t in world.pools[pool] if t.district == "B")


HOME = ("Commands:",)
CONFIRMED = "You have already confirmed it. Thank you."  # everyone has (access_world)
REFER = ("Is the child in danger right now?", "You have an unfinished referral")
ROWS: tuple[Row, ...] = (
    # Buttons of dialogs the person is not in (they come first: a later row may open a dialog).
    Row(
        "pl (plan step)", r"^pl:", INERT, pressed("pl:{id}:s"), sees(STALE), target=b_thing("case")
    ),
    Row(
        "inv (invite step)",
        r"^inv:",
        INERT,
        lambda w, t: f"inv:i:{w.institutions['B.Police'].id}",
        sees(STALE),
    ),
    Row(
        "rc:w (task owner step)",
        r"^rc:w:",
        INERT,
        pressed("rc:w:{id}"),
        sees(STALE),
        target=b_thing("member"),
    ),
    Row("rc:d (task due step)", r"^rc:d:", INERT, text("rc:d:7"), sees(STALE)),
    Row("rc:x (task cancel step)", r"^rc:x$", INERT, text("rc:x"), sees(STALE)),
    Row("rf:x (triage cancel step)", r"^rf:x$", INERT, text("rf:x"), sees(STALE)),
    Row("ir:skip (decline reason step)", r"^ir:skip$", INERT, text("ir:skip"), sees(STALE)),
    Row("unknown button", ANY_BUTTON, INERT, text("zz:1"), sees(STALE)),
    Row("/cancel", "/cancel", INERT, text("/cancel"), sees("I did not understand that.")),
    # Commands.
    Row("/start", "/start", anyone, text("/start"), sees(HOME)),
    Row("/help", "/help", anyone, text("/help"), sees(HOME)),
    Row("/language", "/language", anyone, text("/language"), sees("Which language shall I use?")),
    Row("/invite", "/invite", may_invite, text("/invite"), sees("Whom is the invite for?")),
    Row("/members", "/members", is_admin, text("/members"), sees("Members (")),
    Row("/email", "/email", anyone, text("/email"), sees(NO_MAIL)),
    Row("/contacts", "/contacts", is_admin, text("/contacts"), sees(CONTACTS)),
    Row("/refer", "/refer", may_refer, text("/refer"), sees(REFER)),
    Row(
        "/myreferrals",
        "/myreferrals",
        anyone,
        text("/myreferrals"),
        sees(("Your referrals:", "You have not reported any concern yet.")),
    ),
    Row(
        "/referrals",
        "/referrals",
        is_coordinator,
        text("/referrals"),
        sees("Referrals waiting for a decision ("),
    ),
    Row("/cases", "/cases", is_coordinator, text("/cases"), sees("Open cases (")),
    Row(
        "/tasks",
        "/tasks",
        anyone,
        text("/tasks"),
        sees(("Your open tasks (", "You have no open tasks.")),
    ),
    Row(
        "/agenda",
        "/agenda",
        is_coordinator,
        text("/agenda"),
        sees(("Your case conferences in the next four weeks:", "No case conferences in")),
    ),
    # Buttons about nothing in particular.
    Row("lang", r"^lang:", anyone, text("lang:en"), sees("I will write to you in English.")),
    Row("cn (confidentiality)", r"^cn:", anyone, text("cn:1"), sees(CONFIRMED)),
    Row("ref:new", r"^ref:", may_refer, text("ref:new"), sees(REFER)),
    Row(
        "rq:p (queue page)",
        r"^rq:p:",
        is_coordinator,
        text("rq:p:0"),
        sees("Referrals waiting for a decision ("),
    ),
    Row("cs:p (cases page)", r"^cs:p:", is_coordinator, text("cs:p:0"), sees("Open cases (")),
    Row(
        "tk:p (my tasks page)",
        r"^tk:p:",
        anyone,
        text("tk:p:0"),
        sees(("Your open tasks (", "You have no open tasks.")),
    ),
    Row("mem:p (members page)", r"^mem:", is_admin, text("mem:p:0"), sees("Members (")),
    Row("em:c (change the e-mail)", r"^em:[cr]$", anyone, text("em:c"), sees(NO_MAIL)),
    Row("ct:p (contacts page)", r"^ct:", is_admin, text("ct:p:0"), sees(CONTACTS)),
    Row(
        "bt:x (forget busy times)",
        r"^bt:x$",
        anyone,
        text("bt:x"),
        sees(("I hold no busy times of yours.", "Your busy times are deleted.")),
    ),
    Row("ca:k (keep the conference)", r"^ca:k$", anyone, text("ca:k"), sees("Nothing changed.")),
    Row(
        "cc:k (keep the case)",
        r"^cc:[fhok]:\d+$",
        anyone,
        text("cc:k:0"),
        sees("The case stays open."),
    ),
    # Referrals.
    Row(
        "rf:o (open a referral)",
        r"^rf:o:",
        reads_referral,
        pressed("rf:o:{id}"),
        lambda w, t: [t.secrets[1], t.secrets[2]] if t else [],
        pool="referral",
        protected=True,
    ),
    Row(
        "rf:a (accept)",
        r"^rf:a:",
        district_coordinator,
        pressed("rf:a:{id}"),
        shown("You accepted {secret}."),
        pool="referral-accept",
    ),
    Row(
        "rf:d (decline)",
        r"^rf:[dq]:",
        district_coordinator,
        pressed("rf:d:{id}"),
        shown("Why do you decline {secret}?"),
        pool="referral",
    ),
    Row(
        "rf:q (ask the referrer)",
        r"^rf:[dq]:",
        district_coordinator,
        pressed("rf:q:{id}"),
        shown("Type your question for the referrer of {secret}."),
        pool="referral",
    ),
    Row(
        "rf:r (answer a question)",
        r"^rf:r:",
        referrer_of,
        pressed("rf:r:{id}"),
        shown("Type your answer about {secret}."),
        pool="referral-question",
    ),
    # Cases.
    Row(
        "cf:n (plan a conference)",
        r"^cf:n:",
        district_coordinator,
        pressed("cf:n:{id}"),
        shown("Case conference for {secret}"),
        pool="case",
    ),
    Row(
        "cc:c (close: ask)",
        r"^cc:c:\d+$",
        district_coordinator,
        pressed("cc:c:{id}"),
        shown("Close the case?", "data:cc:f:{id}"),
        pool="case",
    ),
    *(
        Row(
            f"cc:{outcome} (close)",
            r"^cc:[fhok]:\d+$",
            district_coordinator,
            pressed(f"cc:{outcome}:{{id}}"),
            shown("The case {secret} is closed"),
            pool=f"case-close-{outcome}",
        )
        for outcome in "fho"
    ),
    # Polls.
    Row(
        "pe (an offline guardian's answers)",
        r"^pe:",
        chair,
        pressed("pe:{offline}"),
        shown("Enter the answers of guardian 1", "{code}"),
        pool="poll",
    ),
    Row(
        "cf:o (decide now)",
        r"^cf:o:",
        chair,
        pressed("cf:o:{id}"),
        shown(
            (
                "Every required invitee has answered the poll for {code}.",
                "The poll for {code} has closed.",
            )
        ),
        pool="poll",
    ),
    Row(
        "cf:a (choose a time)",
        r"^cf:a:",
        district_coordinator,
        pressed("cf:a:{id}"),
        shown("Which time?", "data:cf:c:{id}:"),
        pool="poll",
    ),
    Row(
        "cf:m (make optional)",
        r"^cf:m:",
        district_coordinator,
        pressed("cf:m:{invitation}"),
        shown("{code}", "Poll the next window"),
        pool="poll",
    ),
    Row(
        "cf:b (the board)",
        r"^cf:b:",
        district_coordinator,
        pressed("cf:b:{id}"),
        shown("Poll for the case conference {code}"),
        pool="poll",
    ),
    Row(
        "cf:c (confirm a time)",
        r"^cf:c:",
        district_coordinator,
        pressed("cf:c:{id}:{slot}"),
        shown("The case conference {code} is set for"),
        pool="poll-confirm",
    ),
    Row(
        "cf:w (poll the next window)",
        r"^cf:w:",
        district_coordinator,
        pressed("cf:w:{id}"),
        shown(("A new poll for {code}", "Nothing between")),
        pool="poll-window",
    ),
    Row(
        "pv (tap a time)",
        r"^pv:",
        invited,
        pressed("pv:{id}:{slot}"),
        shown("Case conference {secret}"),
        pool="poll-invitation",
    ),
    Row(
        "ps (send the answer)",
        r"^ps:",
        invited,
        pressed("ps:{id}:{round}"),
        sees("Thank you, your answer was sent."),
        pool="poll-invitation",
    ),
    # Invitations and the attendance message.
    *(
        Row(
            f"iv:{code} (answer the invitation)",
            r"^iv:\d+:\d+:[atd]$",
            invited,
            pressed(f"iv:{{id}}:{{sequence}}:{code}"),
            sees(f"Your answer: {word}."),
            pool="scheduled-invitation",
        )
        for code, word in (("a", "accepted"), ("t", "tentative"), ("d", "declined"))
    ),
    Row(
        "iv:c (send a colleague: whom)",
        r"^iv:\d+:\d+:c$",
        invited,
        pressed("iv:{id}:{sequence}:c"),
        sees("Who goes instead of you?"),
        pool="scheduled-invitation",
    ),
    Row(
        "ic (send a colleague: another page)",
        r"^ic:",
        invited,
        pressed("ic:{id}:{sequence}:p:1"),
        sees("They get the invitation and answer it."),
        pool="scheduled-invitation",
    ),
    Row(
        "ih (hand over)",
        r"^ih:",
        invited,
        pressed("ih:{id}:{sequence}:{colleague}"),
        shown("The invitation to {secret} is with"),
        pool="handover",
    ),
    Row(
        "ca:n (new date: times)",
        r"^ca:n:",
        district_coordinator,
        pressed("ca:n:{id}"),
        sees(("Times when everyone invited is free", "No free time in the next weeks.")),
        pool="scheduled",
    ),
    Row(
        "ca:x (cancel: ask)",
        r"^ca:x:",
        district_coordinator,
        pressed("ca:x:{id}"),
        shown("Cancel the conference?", "data:ca:y:{id}"),
        pool="scheduled",
    ),
    Row(
        "ca:t (new date: set)",
        r"^ca:t:",
        district_coordinator,
        lambda w, t: f"ca:t:{t.id}:{int(t.extra['starts_at'].timestamp()) + 2 * 3600}" if t else "",
        shown("The case conference {code} moves to"),
        pool="move",
    ),
    Row(
        "ca:y (cancel)",
        r"^ca:y:",
        district_coordinator,
        pressed("ca:y:{id}"),
        shown("The case conference {code} is cancelled."),
        pool="cancel",
    ),
    # The record.
    Row(
        "rc:o (the record)",
        r"^rc:o:\d+$",
        district_coordinator,
        pressed("rc:o:{id}"),
        shown("Record of the case conference {code}"),
        pool="held",
    ),
    Row(
        "rc:a (attendance)",
        r"^rc:a:\d+(:p:\d+)?$",
        district_coordinator,
        pressed("rc:a:{id}"),
        shown("Attendance at {code}"),
        pool="held",
    ),
    Row(
        "rc:t (toggle attendance)",
        r"^rc:t:\d+$",
        district_coordinator,
        pressed("rc:t:{invitation}"),
        shown("Attendance at {code}"),
        pool="held",
    ),
    Row(
        "rc:s (summary: ask)",
        r"^rc:s:\d+$",
        district_coordinator,
        pressed("rc:s:{id}"),
        sees("Type the summary"),
        pool="held",
    ),
    Row(
        "rc:n (add a task: ask)",
        r"^rc:n:\d+$",
        district_coordinator,
        pressed("rc:n:{id}"),
        sees("What is the task?"),
        pool="held",
    ),
    Row(
        "rc:v (review date: ask)",
        r"^rc:v:\d+$",
        district_coordinator,
        pressed("rc:v:{id}"),
        sees("Type the date and time of the review conference"),
        pool="held",
    ),
    Row(
        "rc:e (finish the record)",
        r"^rc:e:\d+$",
        district_coordinator,
        pressed("rc:e:{id}"),
        shown("Record of the case conference {code}", "The record of {code}"),
        pool="held",
        document=True,
    ),
    Row(
        "rc:r (the record document)",
        r"^rc:[rc]:\d+$",
        district_coordinator,
        pressed("rc:r:{id}"),
        shown("The record of {code}"),
        pool="held",
        protected=True,
        document=True,
    ),
    Row(
        "rc:c (the record with the child's name)",
        r"^rc:[rc]:\d+$",
        district_coordinator,
        pressed("rc:c:{id}"),
        shown("The record of {code}", "{child}"),
        pool="held",
        protected=True,
        document=True,
    ),
    Row(
        "rc:h (the child came)",
        r"^rc:h:\d+(:p:\d+(:[yn])?)?$",
        district_coordinator,
        pressed("rc:h:{id}"),
        shown("Attendance at {code}"),
        pool="held",
    ),
    # The method: the goal and the child's voice.
    Row(
        "mt (the goal and the child's voice)",
        r"^mt:",
        district_coordinator,
        pressed("mt:o:{id}"),
        shown("Goal and the child's voice: {code}"),
        pool="poll",
        protected=True,
    ),
    Row(
        "mg (the goal of the conference)",
        r"^mg:",
        participant,
        pressed("mg:{id}"),
        shown("Goal of the case conference {code}"),
        pool="poll",
        protected=True,
    ),
    # The record circulated for comments.
    Row(
        "rk:n (no comments)",
        r"^rk:n:\d+$",
        came_for,
        pressed("rk:n:{id}"),
        shown(
            (
                "Noted: no comments on the draft record of {secret}.",
                "Noted already: no comments on the draft record of {secret}.",
            )
        ),
        pool="circulated-invitation",
    ),
    Row(
        "rk:c (comment: ask)",
        r"^rk:c:\d+$",
        came_for,
        pressed("rk:c:{id}"),
        shown("Type your comment on the draft record of {secret}"),
        pool="circulated-invitation",
    ),
    Row(
        "rk:r (read a comment)",
        r"^rk:r:\d+$",
        district_coordinator,
        pressed("rk:r:{id}"),
        shown("Comment on the draft record of {secret}"),
        pool="comment",
        protected=True,
    ),
    Row(
        "rk:f (send the final record)",
        r"^rk:f:\d+$",
        district_coordinator,
        pressed("rk:f:{id}"),
        shown(("The final record of {secret} goes to", "The final record of {secret} went out")),
        pool="circulated",
    ),
    # Tasks: their owners.
    Row(
        "tk:v (my task)",
        r"^tk:v:\d+$",
        task_owner,
        pressed("tk:v:{id}"),
        shown("{title}"),
        pool="task",
    ),
    Row(
        "tk:d (done: note)",
        r"^tk:d:\d+$",
        task_owner,
        pressed("tk:d:{id}"),
        sees("Type a short note for the coordinator"),
        pool="task",
    ),
    Row(
        "tk:n (a note)",
        r"^tk:n:\d+$",
        task_owner,
        pressed("tk:n:{id}"),
        sees("Type a short progress note"),
        pool="task",
    ),
    Row(
        "tk:m (more time: how much)",
        r"^tk:m:\d+$",
        task_owner,
        pressed("tk:m:{id}"),
        shown("{title}"),
        pool="task",
    ),
    Row(
        "tk:x (more time: ask)",
        r"^tk:x:\d+:\d+$",
        task_owner,
        pressed("tk:x:{id}:7"),
        sees("Asked the coordinator to move it to"),
        pool="task",
    ),
    Row(
        "tk:k (done)",
        r"^tk:k:\d+$",
        task_owner,
        pressed("tk:k:{id}"),
        sees("Marked as done."),
        pool="task-done",
    ),
    # Tasks: the coordinator.
    Row(
        "tk:e (edit a task)",
        r"^tk:e:\d+$",
        district_coordinator,
        pressed("tk:e:{id}"),
        shown("{title}"),
        pool="task",
    ),
    Row(
        "tk:l (the owner's notes)",
        r"^tk:l:\d+$",
        district_coordinator,
        pressed("tk:l:{id}"),
        shown("{note}"),
        pool="task",
        protected=True,
    ),
    Row(
        "tk:a (remind again)",
        r"^tk:a:\d+$",
        district_coordinator,
        pressed("tk:a:{id}"),
        sees("Reminded again."),
        pool="task",
    ),
    Row(
        "tk:u (move by a week)",
        r"^tk:u:\d+:\d+$",
        district_coordinator,
        pressed("tk:u:{id}:7"),
        shown("{title}"),
        pool="task",
    ),
    Row(
        "tk:y (move: ask the date)",
        r"^tk:y:\d+$",
        district_coordinator,
        pressed("tk:y:{id}"),
        sees("Type the due date"),
        pool="task",
    ),
    Row(
        "tk:c (cancel: ask)",
        r"^tk:c:\d+$",
        district_coordinator,
        pressed("tk:c:{id}"),
        shown("Cancel this task?", "data:tk:z:{id}"),
        pool="task",
    ),
    Row(
        "tk:o (reassign: whom)",
        r"^tk:o:",
        district_coordinator,
        pressed("tk:o:{id}"),
        sees("Who takes the task over?"),
        pool="task",
    ),
    Row(
        "tk:o:p (reassign: another page)",
        r"^tk:o:",
        district_coordinator,
        pressed("tk:o:{id}:p:1"),
        sees("Who takes the task over?"),
        pool="task",
    ),
    Row(
        "tk:g (more time: give)",
        r"^tk:[gr]:\d+:\d{8}$",
        district_coordinator,
        lambda w, t: f"tk:g:{t.id}:{t.extra['asked']:%Y%m%d}" if t else "",
        sees("More time given to"),
        pool="task-grant",
    ),
    Row(
        "tk:r (more time: refuse)",
        r"^tk:[gr]:\d+:\d{8}$",
        district_coordinator,
        lambda w, t: f"tk:r:{t.id}:{t.extra['asked']:%Y%m%d}" if t else "",
        sees("More time refused to"),
        pool="task-refuse",
    ),
    Row(
        "tk:z (cancel a task)",
        r"^tk:z:\d+$",
        district_coordinator,
        pressed("tk:z:{id}"),
        shown("Record of the case conference {code}"),
        pool="task-cancel",
    ),
    Row(
        "tk:w (reassign)",
        r"^tk:w:\d+:\d+$",
        district_coordinator,
        pressed("tk:w:{id}:{reassign_to}"),
        sees("The task has a new owner"),
        pool="task-reassign",
    ),
    # Members.
    Row(
        "mem:ask (deactivate: ask)",
        r"^mem:",
        admin_of_another,
        pressed("mem:ask:{id}"),
        shown("Deactivate {secret}?"),
        pool="member",
    ),
    Row(
        "mem:do (deactivate)",
        r"^mem:",
        admin_of_another,
        pressed("mem:do:{id}"),
        shown("{secret} has been deactivated."),
        pool="member-do",
    ),
)


# --- the application's own list of commands and buttons --------------------------------------


def registered(handlers: Sequence[BaseHandler[Any, Any, Any]]) -> set[str]:
    """Every command ("/name") and callback pattern a list of handlers answers, dialogs
    included (their entry points, steps and fallbacks)."""
    found: set[str] = set()
    for handler in handlers:
        if isinstance(handler, ConversationHandler):
            found |= registered(handler.entry_points)
            for steps in handler.states.values():
                found |= registered(steps)
            found |= registered(handler.fallbacks)
        elif isinstance(handler, CommandHandler):
            found |= {f"/{command}" for command in handler.commands}
        elif isinstance(handler, CallbackQueryHandler):
            pattern = handler.pattern
            if pattern is None:
                found.add(ANY_BUTTON)
            else:
                found.add(pattern if isinstance(pattern, str) else str(pattern.pattern))  # type: ignore[union-attr]
    return found


def handled_by_the_bot(bot: RunningBot) -> set[str]:
    found: set[str] = set()
    for group in bot.application.handlers.values():
        found |= registered(group)
    return found


async def test_every_command_and_button_has_a_row(bot: RunningBot) -> None:
    """A new command or button needs its row in the matrix, and a row its handler (that each
    row's data is what its handler's pattern takes is checked cell by cell)."""
    handled = handled_by_the_bot(bot)
    rows = {row.handler for row in ROWS}
    assert handled - rows == set(), "commands or buttons without a row in the access matrix"
    assert rows - handled == set(), "rows for commands or buttons the bot does not have"


# --- running the cells -----------------------------------------------------------------------


class Processed:
    """Counts, per chat, the updates the bot has finished handling (dialog state saved)."""

    def __init__(self, bot: RunningBot) -> None:
        self.counts: Counter[int] = Counter()
        self._changed = asyncio.Condition()
        processor = bot.application.update_processor
        assert isinstance(processor, OrderedUpdateProcessor)
        process = processor.do_process_update

        async def counted(update: object, coroutine: Awaitable[Any]) -> None:
            try:
                await process(update, coroutine)
            finally:
                chat = update.effective_chat if isinstance(update, Update) else None
                async with self._changed:
                    self.counts[chat.id if chat else 0] += 1
                    self._changed.notify_all()

        processor.do_process_update = counted  # type: ignore[method-assign]

    async def until(self, chat_id: int, count: int) -> None:
        async with asyncio.timeout(10), self._changed:
            await self._changed.wait_for(lambda: self.counts[chat_id] >= count)


@dataclass
class Seen:
    """What a person saw after one update: the button's answer, new and edited messages, and
    the text of any document."""

    answer: CallbackAnswer | None
    events: list[ChatEvent]
    documents: list[str]
    errors: list[str] = field(default_factory=list)  # what reached the error handler

    def texts(self) -> list[str]:
        found = [self.answer.text] if self.answer is not None and self.answer.text else []
        for event in self.events:
            message = event.message
            if message is None:
                continue
            found += [message.text or "", message.caption or ""]
            found += [label for row in message.buttons() for label, _data in row]
        return found + self.documents

    def data(self) -> list[str]:
        return [
            data or ""
            for event in self.events
            if event.message is not None
            for row in event.message.buttons()
            for _label, data in row
        ]

    def blob(self) -> str:
        return "\n".join(self.texts() + self.data())

    def refusal(self) -> str | None:
        return next((t for t in self.texts() if any(r in t for r in REFUSALS)), None)

    def protected(self, fragment: str) -> bool:
        return any(
            e.message is not None
            and e.message.protect_content
            and fragment in (e.message.text or "") + (e.message.caption or "")
            for e in self.events
        ) or any(
            fragment in document
            and any(
                e.kind == "document" and e.message and e.message.protect_content
                for e in self.events
            )
            for document in self.documents
        )


def seen_since(person: Person, mark: int, answer: CallbackAnswer | None) -> Seen:
    events = [e for e in person.events[mark:] if e.kind in ("sent", "edited", "document")]
    documents = []
    for event in events:
        if event.kind == "document" and event.message is not None:
            name, content, _mime = person.document_of(event.message)
            if name.endswith(".docx"):
                record = docx.Document(io.BytesIO(content))
                cells = [c.text for t in record.tables for r in t.rows for c in r.cells]
                documents.append("\n".join([p.text for p in record.paragraphs] + cells))
            else:
                documents.append(content.decode(errors="replace"))
    return Seen(answer, events, documents)


def message_to_press(person: Person, number: int, date: int) -> int:
    """A message of the bot's in the person's chat for a (forged) button to be pressed on: a
    modified client can send any callback data from any of its messages. Its text is new, so
    that the bot's answer, if it edits the message, is seen as an edit (never "not modified")."""
    message = BotMessage(
        message_id=person.chat.new_message_id(),
        chat_id=person.chat_id,
        from_bot=True,
        date=date,
        text=f"A message with buttons ({number})",
        html=None,
        caption=None,
        reply_markup=None,
        document=None,
        protect_content=False,
        edited=False,
        deleted=False,
    )
    person.chat.add(message)
    return message.message_id


@dataclass
class Cell:
    row: Row
    who: Who
    relation: str  # "" for a row about no object
    thing: Thing | None
    expected: str  # allowed, refused, inert, n/a

    def __str__(self) -> str:
        where = f" {self.relation} {self.thing.kind} {self.thing.id}" if self.thing else ""
        return f"[{self.row.name} | {self.who.label}{where} | expected {self.expected}]"


def expectation(row: Row, person: Who, thing: Thing | None) -> str:
    """What the rules say a cell is."""
    if row.pool is not None and thing is None:
        return "n/a"
    if not person.registered:
        return "refused"  # by the guard, before any dialog
    if row.rule is None:
        return "inert"
    return "allowed" if row.rule(person, thing) else "refused"


def cells_of(world: World, row: Row, people: Sequence[Who]) -> list[Cell]:
    cells = []
    for person in people:
        if row.pool is None:
            thing = row.target(world) if row.target else None
            cells.append(Cell(row, person, "", thing, expectation(row, person, None)))
            continue
        for relation in RELATIONS:
            thing = world.pick(row.pool, person, relation)
            cells.append(Cell(row, person, relation, thing, expectation(row, person, thing)))
    return cells


MODELS: dict[str, type[Any]] = {
    "referral": Referral,
    "case": Case,
    "conference": Conference,
    "invitation": Invitation,
    "task": Task,
    "member": Member,
    "comment": RecordComment,
}


def _columns(row: object) -> dict[str, Any]:
    return {
        attribute.key: getattr(row, attribute.key) for attribute in inspect(row).mapper.column_attrs
    }


class Matrix:
    """Runs cells against the running bot and keeps what went wrong."""

    def __init__(self, bot: RunningBot, world: World, processed: Processed) -> None:
        self.bot = bot
        self.world = world
        self.processed = processed
        self.errors: list[tuple[int, str]] = []
        self.failures: list[str] = []
        self.tally: Counter[str] = Counter()
        self.expected: dict[str, set[str]] = {}
        self.numbers = itertools.count(1)
        self.seen_refusals: dict[str, int] = {}
        self.results: dict[tuple[str, str, str], str] = {}

    async def record_error(self, update: object, context: Any) -> None:
        chat = update.effective_chat if isinstance(update, Update) else None
        self.errors.append(
            (chat.id if chat else 0, f"{type(context.error).__name__}: {context.error}")
        )

    async def audit_mark(self) -> int:
        async with self.bot.runtime.database.reading() as session:
            return int(await session.scalar(select(func.max(AuditEntry.id))) or 0)

    async def refusals_since(self, mark: int, person: Who) -> list[AuditEntry]:
        """The person's audited refusals after audit entry `mark`."""
        query = select(AuditEntry).where(AuditEntry.id > mark, AuditEntry.action.like("%.refused"))
        if person.key is None:
            query = query.where(AuditEntry.subject_id == str(person.user_id))
        else:
            query = query.where(AuditEntry.actor_id == self.world.member_id(person.key))
        async with self.bot.runtime.database.reading() as session:
            return list(await session.scalars(query))

    async def new_refusals(self, person: Who) -> list[AuditEntry]:
        """The person's audited refusals since the last time this was asked (a person's cells
        run one after another, so these are their last cell's)."""
        key = person.key or str(person.user_id)
        found = await self.refusals_since(self.seen_refusals.get(key, 0), person)
        self.seen_refusals[key] = max([self.seen_refusals.get(key, 0), *(e.id for e in found)])
        return found

    async def fingerprint(self, thing: Thing | None) -> str:
        if thing is None:
            return ""
        async with self.bot.runtime.database.reading() as session:
            main = await session.get_one(MODELS[thing.kind], thing.id)
            parts: list[Any] = [_columns(main)]
            if thing.kind == "referral":
                parts.append(
                    await session.scalar(
                        select(func.count()).where(ReferralNote.referral_id == thing.id)
                    )
                )
            if thing.kind in ("conference", "invitation"):
                conference_id = thing.id if thing.kind == "conference" else main.conference_id
                if thing.kind == "invitation":
                    parts.append(_columns(await session.get(Conference, conference_id)))
                invitations = await session.scalars(
                    select(Invitation).where(Invitation.conference_id == conference_id)
                )
                parts += [_columns(invitation) for invitation in invitations]
                parts.append(
                    await session.scalar(
                        select(func.count())
                        .select_from(PollMessage)
                        .join(Invitation, PollMessage.invitation_id == Invitation.id)
                        .where(Invitation.conference_id == conference_id)
                    )
                )
            if thing.kind == "task":
                parts.append(
                    await session.scalar(select(func.count()).where(TaskNote.task_id == thing.id))
                )
        return repr(parts)

    async def unchanged_by(self, cells: Sequence[Cell], people: Sequence[Who]) -> None:
        """Run the cells (each person's in turn, different people's at once); the objects they
        were refused, or inert, about must be as they were."""
        things = {
            id(c.thing): c.thing for c in cells if c.thing is not None and c.expected != "n/a"
        }
        before = {key: await self.fingerprint(thing) for key, thing in things.items()}
        await asyncio.gather(*(self.run_all([c for c in cells if c.who == p]) for p in people))
        for key, thing in things.items():
            if await self.fingerprint(thing) != before[key]:
                by = [str(c) for c in cells if c.thing is thing and c.expected != "n/a"]
                self.failures.append(f"{thing.kind} {thing.id} changed by one of {by}")

    async def run_all(self, cells: Sequence[Cell]) -> None:
        for cell in cells:
            await self.run(cell)

    async def run(self, cell: Cell) -> None:
        self.tally[cell.expected] += 1
        key = (cell.row.name, cell.who.label, cell.relation)
        self.results[key] = cell.expected
        self.expected.setdefault(cell.row.name, set()).add(cell.expected)
        if cell.expected == "n/a":
            return
        problems = await self.check(cell)
        if problems:
            self.results[key] = "!"
            self.failures.append(f"{cell}: " + "; ".join(problems))

    async def act(
        self,
        person: Person,
        *,
        press: str | None = None,
        text: str | None = None,
        on: int | None = None,
    ) -> Seen:
        """One update from the person (a command or typed text, or a press of callback data on
        message `on`, else on a new message), once the bot has handled it: what they saw."""
        if press is not None and on is None:
            on = message_to_press(
                person, next(self.numbers), int(self.bot.runtime.clock.now().timestamp())
            )
        mark = len(person.events)
        errors = len(self.errors)
        count = self.processed.counts[person.chat_id]
        answer = None
        if text is not None:
            await person.send_text(text)
        else:
            assert press is not None
            with contextlib.suppress(AssertionError):  # not answered: the caller sees None
                answer = await person.press_data(press, message_id=on)
        await self.processed.until(person.chat_id, count + 1)
        seen = seen_since(person, mark, answer)
        seen.errors = [error for chat, error in self.errors[errors:] if chat == person.chat_id]
        return seen

    async def check(self, cell: Cell) -> list[str]:
        row, world = cell.row, self.world
        person = world.people[cell.who.user_id]
        data = row.data(world, cell.thing)
        if row.handler.startswith("^") and not re.match(row.handler, data):
            return [f"the row's data {data!r} is not what {row.handler} takes"]
        problems: list[str] = []
        if data.startswith("/"):
            seen = await self.act(person, text=data)
        else:
            seen = await self.act(person, press=data)
            if seen.answer is None:
                problems.append("the button was not answered")
        if seen.errors:
            problems.append(f"errors: {seen.errors}")
        if cell.expected == "allowed":
            problems += self.allowed(cell, seen, await self.new_refusals(cell.who))
        elif cell.expected == "refused":
            problems += self.refused(cell, seen, await self.new_refusals(cell.who))
        else:
            problems += self.inert(cell, seen)
        return problems

    def allowed(self, cell: Cell, seen: Seen, refusals: list[AuditEntry]) -> list[str]:
        problems = []
        if seen.refusal() is not None:
            problems.append(f"refused: {seen.refusal()!r}")
        if refusals:
            problems.append(f"a refusal was audited: {[r.action for r in refusals]}")
        blob = seen.blob()
        for wanted in cell.row.shows(self.world, cell.thing):
            options = wanted if isinstance(wanted, tuple) else (wanted,)
            if not any(
                any(d.startswith(o[5:]) for d in seen.data())
                if o.startswith("data:")
                else o in blob
                for o in options
            ):
                problems.append(f"does not show {wanted!r}; saw {blob[:300]!r}")
        shows = cell.row.shows(self.world, cell.thing)
        first = shows[0] if shows and isinstance(shows[0], str) else None
        if cell.row.protected and first is not None and not seen.protected(first):
            problems.append("not protected")
        if cell.row.document and not seen.documents:
            problems.append("no document")
        return problems

    def refused(self, cell: Cell, seen: Seen, refusals: list[AuditEntry]) -> list[str]:
        problems = []
        if seen.refusal() is None:
            problems.append(f"no clear refusal; saw {seen.blob()[:300]!r}")
        if not refusals:
            problems.append("no audit entry of the refusal")
        problems += self.leaks(cell, seen)
        return problems

    def inert(self, cell: Cell, seen: Seen) -> list[str]:
        problems = []
        blob = seen.blob()
        for wanted in cell.row.shows(self.world, cell.thing):
            assert isinstance(wanted, str)
            if wanted not in blob:
                problems.append(f"does not show {wanted!r}; saw {blob[:300]!r}")
        return problems + self.leaks(cell, seen)

    def leaks(self, cell: Cell, seen: Seen) -> list[str]:
        blob = seen.blob()
        leaked = [s for s in (cell.thing.secrets if cell.thing else ()) if s in blob]
        problems = [f"leaks {leaked}"] if leaked else []
        if seen.documents:
            problems.append("sent a document")
        return problems

    def table(self, people: Sequence[Who]) -> str:
        marks = {"allowed": "✓", "refused": "✗", "inert": "·", "n/a": "-", "!": "!"}
        width = max(len(row.name) for row in ROWS)
        short = {"coordinator of another district": "coord. of B"}
        header = "".join(f" | {short.get(p.label, p.label):<11}" for p in people)
        lines = [f"{'':<{width}}{header}"]
        for row in ROWS:
            line = f"{row.name:<{width}}"
            for person in people:
                relations = RELATIONS if row.pool else ("",)
                symbols = "".join(
                    marks[self.results[(row.name, person.label, r)]] for r in relations
                )
                line += f" | {symbols:<11}"
            lines.append(line)
        return "\n".join(lines)


async def watched(bot: RunningBot) -> Matrix:
    """The world built, and the bot watched: updates handled, errors."""
    world = await Builder(bot.runtime, bot.sandbox).build()
    matrix = Matrix(bot, world, Processed(bot))
    # First: the bot's own error handler stops the others once it has answered.
    errors = bot.application.error_handlers
    theirs = dict(errors)
    errors.clear()
    errors[matrix.record_error] = True
    errors.update(theirs)
    return matrix


async def prepared(bot: RunningBot, monkeypatch: pytest.MonkeyPatch) -> Matrix:
    """Watched, and the reminders and nudges the presses plan stay in the outbox: what a
    person sees after an update is then only the bot's answer to it."""
    matrix = await watched(bot)
    dispatcher = bot.application.bot_data[delivery.DISPATCHER_KEY]

    async def paused(context: Any) -> delivery.Counts:
        return delivery.Counts()

    async def much_later() -> float:
        return 3600.0

    monkeypatch.setattr(dispatcher, "run", paused)
    monkeypatch.setattr(dispatcher, "next_wake", much_later)
    return matrix


async def test_access_matrix(bot: RunningBot, monkeypatch: pytest.MonkeyPatch) -> None:
    matrix = await prepared(bot, monkeypatch)
    world = matrix.world
    people = [who(world, label, key) for label, key in ROLES]
    for row in ROWS:
        # Each person's cells one after another, different people's at once; an allowed press
        # may change its object (accept, cancel, close), so the refusals of a row come first.
        cells = cells_of(world, row, people)
        refused = [c for c in cells if c.expected != "allowed"]
        await matrix.unchanged_by(refused, people)
        await asyncio.gather(
            *(matrix.run_all([c for c in cells if c.who == p and c not in refused]) for p in people)
        )

    checked = sum(matrix.tally.values())
    print(
        f"\nAccess matrix: {len(ROWS)} rows × {len(people)} roles (× own / institution / "
        f"district / other district for rows about an object) = {checked} cells: "
        + ", ".join(f"{count} {name}" for name, count in sorted(matrix.tally.items()))
        + "\n✓ allowed  ✗ refused (audited)  · inert  - no such object  ! wrong\n"
        + matrix.table(people)
    )
    if matrix.failures:
        print("\n".join(matrix.failures))
    assert not matrix.failures, (
        f"{len(matrix.failures)} of {checked} cells are wrong:\n" + "\n".join(matrix.failures[:80])
    )
    # Every rule is seen both ways: each row about an object has allowed and refused cells.
    for row in ROWS:
        if row.rule is not None and row.rule is not anyone:
            assert {"allowed", "refused"} <= matrix.expected[row.name], row.name


def person_of(matrix: Matrix, key: str) -> Person:
    return matrix.world.people[matrix.world.members[key].telegram_user_id]


async def count_of(bot: RunningBot, model: type[Any]) -> int:
    async with bot.runtime.database.reading() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_forged_ids_inside_dialogs_are_refused(
    bot: RunningBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The matrix presses buttons from outside their dialogs; here a person is in the dialog
    and the forged id is the next step: another district's institution, case, member, school."""
    matrix = await prepared(bot, monkeypatch)
    world = matrix.world
    admin, hana, jana = (person_of(matrix, k) for k in ("A.A1", "A.C1", "A.R1"))
    b_people = [
        p
        for key, p in ((k, world.people[m.telegram_user_id]) for k, m in world.members.items())
        if key.startswith("B.")
    ]
    b_events = sum(len(p.events) for p in b_people)

    # /invite: the institution picked by forged data is the other district's.
    await matrix.act(admin, text="/invite")
    seen = await matrix.act(admin, press=f"inv:i:{world.institutions['B.Police'].id}")
    assert "Which role will they have?" in seen.blob() and "Sokolov" not in seen.blob()
    mark = await matrix.audit_mark()
    seen = await matrix.act(admin, press="inv:r:participant")
    assert "You are not allowed to do that." in seen.blob()
    refused = await matrix.refusals_since(mark, who(world, "admin", "A.A1"))
    assert [entry.action for entry in refused] == ["invite.refused"]
    assert await count_of(bot, InviteCode) == 0

    # Planning: another district's institution ticked, another district's case sent.
    coordinator = who(world, "coordinator", "A.C1")
    case = world.pick("case", coordinator, "own")
    theirs = world.pick("case", coordinator, "other")
    assert case is not None and theirs is not None
    seen = await matrix.act(hana, press=f"cf:n:{case.id}")
    assert f"Case conference for {case.secrets[0]}" in seen.blob()
    assert "Sokolov" not in seen.blob()
    seen = await matrix.act(hana, press=f"pl:{case.id}:i:{world.institutions['B.School'].id}")
    assert "Sokolov" not in seen.blob()
    seen = await matrix.act(hana, press=f"pl:{theirs.id}:s")
    assert seen.answer is not None and seen.answer.text == STALE
    seen = await matrix.act(hana, press=f"pl:{case.id}:s")
    assert f"The poll for {case.secrets[0]} is on its way" in seen.blob(), seen.blob()
    async with bot.runtime.database.reading() as session:
        invited = set(
            await session.scalars(
                select(Institution.district_id)
                .join(Invitation, Invitation.institution_id == Institution.id)
                .join(Conference, Invitation.conference_id == Conference.id)
                .where(Conference.case_id == case.id)
            )
        )
    assert invited == {world.institutions["A.School"].district_id}

    # The record: another district's member as a task's owner.
    held = world.pick("held", coordinator, "own")
    assert held is not None
    await matrix.act(hana, press=f"rc:n:{held.id}")
    seen = await matrix.act(hana, text="A task for nobody here")
    assert "Who owns it?" in seen.blob() and "Sokolov" not in seen.blob()
    await matrix.act(hana, press=f"rc:w:{world.member_id('B.P1')}")
    tasks = await count_of(bot, Task)
    mark = await matrix.audit_mark()
    seen = await matrix.act(hana, press="rc:d:7")
    assert "This is not yours to change." in seen.blob()
    assert [e.action for e in await matrix.refusals_since(mark, coordinator)] == [
        "task.add.refused"
    ]
    assert await count_of(bot, Task) == tasks

    # A referral: the school picked by forged data is the other district's.
    await matrix.act(jana, text="/refer")
    seen = await matrix.act(jana, press="ref:go:school")
    assert "School Cheb" in seen.blob() and "Sokolov" not in seen.blob()
    seen = await matrix.act(jana, press=f"ref:school:{world.institutions['B.School'].id}")
    assert seen.answer is not None and seen.answer.text == STALE
    assert "Sokolov" not in seen.blob()

    assert sum(len(p.events) for p in b_people) == b_events  # district B heard nothing


async def test_a_forged_button_on_a_document_message_gets_an_answer(
    bot: RunningBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A modified client can send any button's data from any message, also from one that
    carries a document (a calendar invitation, the record): the answer that would replace the
    message comes as a new one."""
    matrix = await prepared(bot, monkeypatch)
    hana = person_of(matrix, "A.C1")
    held = matrix.world.pick("held", who(matrix.world, "coordinator", "A.C1"), "own")
    assert held is not None
    seen = await matrix.act(hana, press=f"rc:r:{held.id}")
    (document,) = [e.message for e in seen.events if e.kind == "document" and e.message]
    seen = await matrix.act(hana, press="ca:k", on=document.message_id)
    assert seen.errors == []
    assert "Nothing changed." in seen.blob()
