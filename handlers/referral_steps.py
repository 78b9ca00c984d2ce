"""What each step of /refer shows: its question and buttons, with Back and Cancel, or the
summary of the whole draft, a button per field to edit it, and Send. The child's details appear
only in the summary and on the concerns keyboard: protected messages, noted for deletion.
"""

from __future__ import annotations

from telegram import Update

from bot.core.i18n import N_, Translator
from bot.core.models import Urgency
from bot.services import drafting
from bot.services.drafting import Draft
from handlers.common import Context, answer, esc, keyboard
from handlers.referral_texts import CATEGORY_NAMES, categories_text, guardians_text, urgency_text
from handlers.usecase import use_case

# Characters of a long text shown in the summary (it is stored whole): with every field at its
# limit the summary stays under Telegram's 4,096 characters in every language.
PREVIEW = 1200

URGENCY_BUTTONS = {
    Urgency.ROUTINE: N_("Routine"),
    Urgency.WEEK: N_("Within a week"),
    Urgency.URGENT: N_("Urgent"),
}
GUARDIAN_CHOICES = (
    ("agree", N_("Informed, they agree")),
    ("disagree", N_("Informed, they do not agree")),
    ("not_asked", N_("Informed, not asked yet")),
    ("not_informed", N_("Not informed")),
)
EDITS = (
    ("name", N_("Name")),
    ("year", N_("Year of birth")),
    ("class", N_("Class")),
    ("school", N_("School")),
    ("concerns", N_("Concerns")),
    ("description", N_("Description")),
    ("tried", N_("Tried")),
    ("guardians", N_("Guardians")),
    ("urgency", N_("Urgency")),
    ("danger", N_("Danger")),
)
PROMPTS = {
    "danger": N_("Is the child in danger right now?"),
    "name": N_("What is the child's name? Please type the first name and surname."),
    "year": N_("In which year was the child born? For example 2014."),
    "class": N_("Which class does the child attend? For example 5.B."),
    "school": N_("Which school does the child attend?"),
    "school_name": N_("Type the name of the school."),
    "concerns": N_("What is going on? Choose all that apply, then press Done."),
    "other": N_("Describe the other concern in a few words (up to {limit} characters)."),
    "description": N_(
        "Describe what is going on: what you saw or heard, since when, how often. "
        "Up to {limit} characters."
    ),
    "tried": N_(
        "What has the school already tried? For example a talk with the child or the "
        "parents. You may skip this."
    ),
    "guardians": N_(
        "Do the child's parents or guardians know about this report, and do they agree to "
        "a case conference?"
    ),
    "urgency": N_("How urgent is it?"),
}


async def show_step(
    update: Update,
    context: Context,
    draft: Draft,
    *,
    before: str = "",
    in_place: bool = False,
) -> str:
    """The question of the draft's current step, with its buttons, Back and Cancel.

    The summary and the concerns keyboard (its ticks are the child's data) are protected
    messages, deleted when the draft is sent or cancelled; in_place: the concerns message
    being ticked is already one.
    """
    tr = context.tr
    _ = tr.gettext
    step = draft.step
    if step == "summary":
        rows = _summary_rows(draft, tr)
        rows.append([(_("Back"), f"ref:go:{draft.previous_step()}")])
        rows.append([(_("Send"), "ref:send")])
        rows.append([cancel_button(tr)])  # a row of its own: never tapped for Send
        text = _summary(draft, tr)
    else:
        text = _(PROMPTS[step]).format(
            limit=tr.number(drafting.LIMITS.get(step, 0)),
        )
        rows = await _step_rows(context, draft)
        first = step == "danger" and not draft.back_to_summary
        back = [] if first else [(_("Back"), f"ref:go:{draft.previous_step()}")]
        rows.append([*back, cancel_button(tr)])
    if step == "class":
        text += "\n" + _("School: {school}").format(school=esc(draft.school or ""))
    if before:
        text = before + "\n\n" + text
    protect = step == "summary" or (step == "concerns" and not in_place)
    shown = await answer(update, text, keyboard(rows), protect=protect)
    if protect and shown is not None:
        async with use_case(update, context) as run:
            await drafting.note_message(
                run.session,
                run.actor,
                shown.message_id,
                int(shown.date.timestamp()),
                now=run.now,
                from_bot=True,
            )
    return step


async def _step_rows(context: Context, draft: Draft) -> list[list[tuple[str, str]]]:
    """The buttons of a step, above Back and Cancel."""
    tr = context.tr
    _ = tr.gettext
    match draft.step:
        case "danger":
            return [[(_("Yes, in danger now"), "ref:danger:yes"), (_("No"), "ref:danger:no")]]
        case "class":
            return [[(_("Change school"), "ref:go:school")]]
        case "school":
            async with context.runtime.database.reading() as session:
                schools = await drafting.schools(session, context.require_actor())
            rows = [[(name, f"ref:school:{school_id}")] for school_id, name in schools[:20]]
            return [*rows, [(_("Another school (type its name)"), "ref:go:school_name")]]
        case "concerns":
            return _concern_rows(draft, tr)
        case "tried":
            return [[(_("Skip"), "ref:tried:skip")]]
        case "guardians":
            return [[(_(label), f"ref:guardians:{value}")] for value, label in GUARDIAN_CHOICES]
        case "urgency":
            return [[(_(URGENCY_BUTTONS[u]), f"ref:urgency:{u.value}")] for u in Urgency]
    return []


def _concern_rows(draft: Draft, tr: Translator) -> list[list[tuple[str, str]]]:
    buttons = []
    for category in (*drafting.CATEGORIES, drafting.OTHER):
        label = tr.gettext(CATEGORY_NAMES[category])
        if category == drafting.OTHER and category not in draft.categories:
            label += "…"
        mark = "✅ " if category in draft.categories else ""
        buttons.append((mark + label, f"ref:concerns:{category}"))
    # One a row, full width: long names are not cut on a phone (the taps stay the same).
    rows = [[button] for button in buttons]
    rows.append([(tr.gettext("Done"), "ref:concerns:done")])
    return rows


def _summary(draft: Draft, tr: Translator) -> str:
    _ = tr.gettext
    assert draft.urgency is not None

    def preview(text: str | None) -> str:
        text = text or ""
        return esc(text if len(text) <= PREVIEW else text[:PREVIEW] + "…")

    lines = [
        _("Please check the referral before sending it:"),
        "",
        _("In danger right now: {answer}").format(answer=_("yes") if draft.danger else _("no")),
        _("Child: {name}, born {year}").format(name=esc(draft.name), year=draft.birth_year),
        _("Class: {class_name}, {school}").format(
            class_name=esc(draft.class_name), school=esc(draft.school)
        ),
        _("Concerns: {concerns}").format(
            concerns=categories_text(draft.categories, draft.other, tr)
        ),
        _("What is going on:"),
        preview(draft.description),
        _("Already tried: {tried}").format(tried=preview(draft.tried) or "–"),
        _("Guardians: {guardians}").format(
            guardians=guardians_text(draft.guardians_informed, draft.guardians_consent, tr)
        ),
        _("Urgency: {urgency}").format(urgency=urgency_text(draft.urgency, tr)),
        "",
        _("After sending, I delete your messages with the child's details from this chat."),
    ]
    return "\n".join(lines)


def _summary_rows(draft: Draft, tr: Translator) -> list[list[tuple[str, str]]]:
    buttons = [
        ("✏️ " + tr.gettext(label), f"ref:edit:{step}")
        for step, label in EDITS
        if not (step == "urgency" and draft.danger)  # a child in danger is urgent
    ]
    return [buttons[i : i + 2] for i in range(0, len(buttons), 2)]


def cancel_button(tr: Translator) -> tuple[str, str]:
    return (tr.gettext("Cancel"), "ref:x")
