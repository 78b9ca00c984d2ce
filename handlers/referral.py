"""/refer: a referrer reports a concern about a child, step by step; /myreferrals; answering a
coordinator's question.

The draft lives in the database (encrypted), together with the step the dialog is at, so a
restart at any moment loses nothing and the dialog resumes where the database says it is. The
conversation state mirrors that step. Prompts never repeat the child's details; only the summary
shows them, as a protected message.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from telegram import Message, Update
from telegram.error import TelegramError
from telegram.ext import (
    CallbackQueryHandler,
    CommandHandler,
    ConversationHandler,
    MessageHandler,
    filters,
)

from bot.core.i18n import N_, Translator
from bot.core.models import Consent, ReferralStatus, Urgency
from bot.services import drafting, referrals
from bot.services.drafting import Draft
from bot.services.errors import PermissionDenied
from bot.services.referrals import Rejected
from handlers.common import (
    Context,
    Dialog,
    HandlerList,
    acknowledge,
    alert,
    answer,
    consuming,
    ends_on_other_commands,
    esc,
    keyboard,
    no_longer_active,
    parse_callback,
    parse_id,
)
from handlers.notify import notify

logger = logging.getLogger(__name__)

DIALOG = "refer"
REPLY = "reply"
RESUME = "resume"
REPLY_TO = "reply_to"
# Characters of a long text shown in the summary (it is stored whole): with every field at its
# limit the summary stays under Telegram's 4,096 characters in every language.
PREVIEW = 1200

CATEGORY_NAMES = {
    "truancy": N_("truancy"),
    "bullying": N_("bullying and cyberbullying"),
    "aggression": N_("aggression and violence"),
    "drugs": N_("addictive substances"),
    "alcohol": N_("alcohol"),
    "tobacco": N_("tobacco"),
    "self_harm": N_("self-harm"),
    "eating": N_("eating disorders"),
    "abuse": N_("abuse and neglect (CAN)"),
    "domestic_violence": N_("domestic violence"),
    "sexual": N_("risky sexual behaviour"),
    "theft": N_("theft and vandalism"),
    "crime": N_("criminal activity"),
    "running_away": N_("running away"),
    "gambling": N_("gambling"),
    "netolism": N_("netolism (excessive screen time)"),
    "extremism": N_("extremism and racism"),
    "other": N_("other"),
}
URGENCY_NAMES = {
    Urgency.ROUTINE: N_("routine"),
    Urgency.WEEK: N_("within a week"),
    Urgency.URGENT: N_("urgent"),
}
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
STATUS_NAMES = {
    ReferralStatus.DRAFT: N_("unfinished draft"),
    ReferralStatus.SUBMITTED: N_("waiting for a decision"),
    ReferralStatus.NEEDS_INFO: N_("question for you"),
    ReferralStatus.ACCEPTED: N_("accepted"),
    ReferralStatus.DECLINED: N_("declined"),
}
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


def guardians_text(informed: bool | None, consent: Consent | None, tr: Translator) -> str:
    _ = tr.gettext
    if not informed:
        return _("not informed")
    if consent is Consent.YES:
        return _("informed, they agree to a case conference")
    if consent is Consent.NO:
        return _("informed, they do not agree to a case conference")
    return _("informed, not asked about a case conference yet")


def categories_text(categories: tuple[str, ...], other: str | None, tr: Translator) -> str:
    names = [tr.gettext(CATEGORY_NAMES[c]) for c in categories if c != drafting.OTHER]
    if drafting.OTHER in categories:
        names.append(f"{tr.gettext('other')}: {esc(other or '')}")
    return ", ".join(names)


def urgency_text(urgency: Urgency, tr: Translator) -> str:
    return tr.gettext(URGENCY_NAMES[urgency])


# Entering.


async def start_refer(update: Update, context: Context) -> str | int:
    """/refer and the home message's "Report a concern" button."""
    context.user_data.pop(REPLY_TO, None)  # type: ignore[union-attr]
    actor = context.require_actor()
    tr = context.tr
    runtime = context.runtime
    try:
        async with runtime.database.transaction() as session:
            drafting.require_referrer(actor, now=runtime.clock.now())
            draft = await drafting.find_draft(session, actor, runtime.cipher)
    except PermissionDenied:
        await answer(
            update,
            tr.gettext(
                "Concerns are reported by referrers: school and counselling staff. If you "
                "need to report one, ask your coordinator for a referrer's invite."
            ),
        )
        return ConversationHandler.END
    if draft is None:
        return await _fresh(update, context)
    text = tr.gettext(
        "You have an unfinished referral, last changed {date}. Continue it or start over?"
    ).format(date=tr.datetime(draft.updated_at))
    _ = tr.gettext
    await answer(
        update,
        text,
        keyboard(
            [[(_("Continue"), "ref:resume"), (_("Start over"), "ref:fresh")], [_cancel_button(tr)]]
        ),
    )
    return RESUME


async def _fresh(update: Update, context: Context) -> str:
    runtime = context.runtime
    actor = context.require_actor()
    async with runtime.database.transaction() as session:
        draft, discarded = await drafting.start_draft(
            session, actor, runtime.cipher, now=runtime.clock.now()
        )
    intro = context.tr.gettext(
        "Report a concern about a child. It takes about three minutes; you can stop at any time "
        "and continue later with /refer."
    )
    deleted, _failed = await _delete_messages(context, actor.chat_id, discarded)
    return await show_step(
        update, context, draft, before="\n\n".join(filter(None, [deleted, intro]))
    )


async def resume(update: Update, context: Context) -> str | int:
    """ "Continue" (also from the one-day reminder): back to where the draft is."""
    context.user_data.pop(REPLY_TO, None)  # type: ignore[union-attr]
    runtime = context.runtime
    async with runtime.database.transaction() as session:
        draft = await drafting.find_draft(session, context.require_actor(), runtime.cipher)
    if draft is None:
        return await _draft_gone(update, context)
    return await show_step(update, context, draft)


async def where_you_are(update: Update, context: Context, before: str) -> bool:
    """After an answer lost on the way (handlers.errors.answer_lost): the question of the step
    the draft is at, below `before`. False without a draft, or while answering a coordinator's
    question."""
    if (context.user_data or {}).get(REPLY_TO) is not None:
        return False
    runtime = context.runtime
    async with runtime.database.transaction() as session:
        draft = await drafting.find_draft(session, context.require_actor(), runtime.cipher)
    if draft is None:
        return False
    await show_step(update, context, draft, before=before)
    return True


# The steps.


async def typed(update: Update, context: Context) -> str | int | None:
    """A typed answer (or a photo, a voice message, ...) to the step the draft is at."""
    message = update.effective_message
    if message is None:
        return None
    runtime = context.runtime
    actor = context.require_actor()
    now = runtime.clock.now()
    try:
        async with runtime.database.transaction() as session:
            # Whatever the referrer sends here may name the child: it is deleted after sending.
            await drafting.note_message(
                session, actor, message.message_id, _unix(message.date), now=now
            )
            if message.text is None:
                result: Draft | Rejected = Rejected("not_text")
            else:
                result = await drafting.set_text(
                    session, actor, runtime.cipher, message.text, now=now
                )
            draft = await drafting.find_draft(session, actor, runtime.cipher)
    except drafting.NoDraft:
        return await _draft_gone(update, context)
    if draft is None:
        return await _draft_gone(update, context)
    if isinstance(result, Rejected):
        before = rejection_text(result, draft.step, context.tr)
        return await show_step(update, context, draft, before=before)
    return await show_step(update, context, draft)


async def pressed(update: Update, context: Context) -> str | int | None:
    """A button of the dialog: a choice, Back, an edit on the summary, Send or Cancel."""
    query = update.callback_query
    parts = parse_callback(query.data if query else None, "ref") or []
    runtime = context.runtime
    actor = context.require_actor()
    now = runtime.clock.now()
    if parts != ["rx"]:
        context.user_data.pop(REPLY_TO, None)  # type: ignore[union-attr]
    match parts:
        case ["new"]:
            return await start_refer(update, context)
        case ["x" | "rx"]:
            return await cancel(update, context)
        case ["send"]:
            return await send(update, context)
        case ["resume"]:
            return await resume(update, context)
        case ["fresh"]:
            return await _fresh(update, context)
        case ["go" | "edit" as how, step] if step in drafting.STEPS:
            try:
                async with runtime.database.transaction() as session:
                    draft = await drafting.go_to(
                        session, actor, runtime.cipher, step, now=now, edit=how == "edit"
                    )
            except drafting.NoDraft:
                return await _draft_gone(update, context)
            return await show_step(update, context, draft)
        case [step, value] if step in drafting.STEPS:
            try:
                async with runtime.database.transaction() as session:
                    result = await drafting.set_choice(
                        session, actor, runtime.cipher, step, value, now=now
                    )
            except drafting.NoDraft:
                return await _draft_gone(update, context)
            if result is None:
                await no_longer_active(update, context)
                return None
            if isinstance(result, Rejected):
                assert query is not None
                await acknowledge(
                    query, context.tr.gettext("Choose at least one concern."), alert=True
                )
                return None
            before = _emergency_text(context.tr) if (step, value) == ("danger", "yes") else ""
            toggled = step == result.step == "concerns"
            return await show_step(update, context, result, before=before, in_place=toggled)
    await no_longer_active(update, context)
    return None


async def send(update: Update, context: Context) -> str | int:
    runtime = context.runtime
    actor = context.require_actor()
    try:
        async with runtime.database.transaction() as session:
            result = await drafting.submit(session, actor, runtime.cipher, now=runtime.clock.now())
    except drafting.NoDraft:
        return await _draft_gone(update, context)
    if isinstance(result, Draft):  # something is missing: ask for it
        return await show_step(update, context, result)
    tr = context.tr
    _ = tr.gettext
    if update.callback_query is not None:
        await acknowledge(update.callback_query)
    # The summary (the bot's message with the child's details) goes with the referrer's own.
    deleted, retry = await _delete_messages(
        context, actor.chat_id, result.message_refs, retried=True
    )
    reached = await alert_coordinators(context, result)
    async with runtime.database.transaction() as session:
        await drafting.followed_up(
            session, result.referral_id, now=runtime.clock.now(), remaining=retry
        )
    lines = [
        _("Sent. Your referral code is {code}.").format(code=result.code),
        _(
            "The coordinators have been told. I will let you know when its status changes; "
            "/myreferrals shows the status of your referrals."
        )
        if reached
        else _(
            "No coordinator could be reached right now. Your referral is saved and waits "
            "in their queue."
        ),
        deleted,
    ]
    await context.bot.send_message(actor.chat_id, "\n\n".join(line for line in lines if line))
    return ConversationHandler.END


async def alert_coordinators(context: Context, result: drafting.Submitted) -> int:
    """Tell the district's coordinators: code, urgency, institution; nothing about the child."""
    return await notify(
        context,
        result.coordinators,
        lambda tr: _new_referral_text(result, tr),
        lambda tr: keyboard(
            [[(tr.gettext("Open {code}").format(code=result.code), f"rf:o:{result.referral_id}")]]
        ),
    )


def _new_referral_text(result: drafting.Submitted, tr: Translator) -> str:
    _ = tr.gettext
    lines = [
        _("New referral {code} from {institution}.").format(
            code=result.code, institution=esc(result.institution_name)
        ),
        _("Urgency: {urgency}").format(urgency=urgency_text(result.urgency, tr)),
    ]
    if result.danger:
        lines.append(_("⚠️ The referrer reports that the child may be in danger right now."))
    return "\n".join(lines)


async def cancel(update: Update, context: Context) -> int:
    """Cancel deletes the draft; while answering a question, it cancels only the answer."""
    if context.user_data.pop(REPLY_TO, None) is not None:  # type: ignore[union-attr]
        await answer(update, context.tr.gettext("Cancelled. No answer was sent."))
        return ConversationHandler.END
    runtime = context.runtime
    actor = context.require_actor()
    async with runtime.database.transaction() as session:
        refs = await drafting.discard_draft(session, actor)
    if refs is None:
        return await _draft_gone(update, context)
    lines = [context.tr.gettext("Cancelled. Nothing was sent, and the draft is deleted.")]
    lines.append((await _delete_messages(context, actor.chat_id, refs))[0])
    await answer(update, "\n\n".join(line for line in lines if line))
    return ConversationHandler.END


# What each step shows.


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
        rows.append([(_("Send"), "ref:send"), _cancel_button(tr)])
        text = _summary(draft, tr)
    else:
        text = _(PROMPTS[step]).format(
            limit=tr.number(drafting.LIMITS.get(step, 0)),
        )
        rows = await _step_rows(context, draft)
        first = step == "danger" and not draft.back_to_summary
        back = [] if first else [(_("Back"), f"ref:go:{draft.previous_step()}")]
        rows.append([*back, _cancel_button(tr)])
    if step == "class":
        text += "\n" + _("School: {school}").format(school=esc(draft.school or ""))
    if before:
        text = before + "\n\n" + text
    protect = step == "summary" or (step == "concerns" and not in_place)
    shown = await answer(update, text, keyboard(rows), protect=protect)
    if protect and shown is not None:
        runtime = context.runtime
        async with runtime.database.transaction() as session:
            await drafting.note_message(
                session,
                context.require_actor(),
                shown.message_id,
                _unix(shown.date),
                now=runtime.clock.now(),
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
            async with context.runtime.database.transaction() as session:
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


def _emergency_text(tr: Translator) -> str:
    _ = tr.gettext
    return "\n".join(
        [
            _("⚠️ If the child is in danger, call now:"),
            _("Police 158 · Ambulance 155 · Emergency line 112"),
            _("Linka bezpečí, the children's helpline: 116 111"),
            "",
            _(
                "When the child is safe, finish this report: it is marked urgent, and the "
                "coordinators are alerted the moment you send it."
            ),
        ]
    )


def _concern_rows(draft: Draft, tr: Translator) -> list[list[tuple[str, str]]]:
    buttons = []
    for category in (*drafting.CATEGORIES, drafting.OTHER):
        label = tr.gettext(CATEGORY_NAMES[category])
        if category == drafting.OTHER and category not in draft.categories:
            label += "…"
        mark = "✅ " if category in draft.categories else ""
        buttons.append((mark + label, f"ref:concerns:{category}"))
    rows = [buttons[i : i + 2] for i in range(0, len(buttons), 2)]
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


def rejection_text(rejected: Rejected, step: str, tr: Translator) -> str:
    _ = tr.gettext
    params = rejected.params
    match rejected.reason:
        case "too_long":
            return _(
                "That is {length} characters, but at most {limit} fit here. Please shorten it "
                "and send it again."
            ).format(length=tr.number(params["length"]), limit=tr.number(params["limit"]))
        case "year":
            return _("Please type the year of birth as four digits, from {low} to {high}.").format(
                low=params["low"], high=params["high"]
            )
        case "not_text" if step in (*drafting.TEXT_STEPS, REPLY):
            return _(
                "Please type your answer as text. I cannot use photos, voice messages, stickers "
                "or files here."
            )
        case "not_text" | "buttons":
            return _("Please answer with one of the buttons.")
    return _("Please type your answer.")


def _cancel_button(tr: Translator) -> tuple[str, str]:
    return (tr.gettext("Cancel"), "ref:x")


async def _draft_gone(update: Update, context: Context) -> int:
    text = context.tr.gettext(
        "There is no referral in progress: it was sent, cancelled, or deleted after 14 days "
        "without changes. /refer starts a new one."
    )
    await alert(update, text)
    return ConversationHandler.END


@dataclass(frozen=True)
class Deletion:
    deleted: int  # the person's own messages deleted
    too_old: int  # the person's own, past the 48 hours Telegram allows
    failed: list[list[int]]  # refs whose deletion failed now (Telegram or the network)

    @property
    def failed_theirs(self) -> int:
        return sum(1 for ref in self.failed if not drafting.from_bot(ref))


async def delete_from_chat(context: Context, chat_id: int, refs: list[list[int]]) -> Deletion:
    """Delete the listed messages ([id, unix time, from bot]) that Telegram still lets a bot
    delete (48 hours)."""
    deletable = drafting.deletable(refs, context.runtime.clock.now())
    too_old = sum(1 for ref in refs if ref not in deletable and not drafting.from_bot(ref))
    deleted = 0
    failed: list[list[int]] = []
    for start in range(0, len(deletable), 100):
        batch = deletable[start : start + 100]
        try:
            await context.bot.delete_messages(chat_id, [ref[0] for ref in batch])
        except TelegramError as error:
            logger.warning("could not delete messages from a chat: %s", type(error).__name__)
            failed += batch
            continue
        deleted += sum(1 for ref in batch if not drafting.from_bot(ref))
    return Deletion(deleted, too_old, failed)


async def _delete_messages(
    context: Context, chat_id: int, refs: list[list[int]], *, retried: bool = False
) -> tuple[str, list[list[int]]]:
    """Delete the messages that carried the child's data; say what was done. Returns the text
    and the messages to try again (retried=True: the sweep will; else the person is asked)."""
    if not refs:
        return "", []
    done = await delete_from_chat(context, chat_id, refs)
    return deletion_text(done, context.tr, retried=retried), done.failed


def deletion_text(
    done: Deletion, tr: Translator, *, retried: bool = False, confirm: bool = True
) -> str:
    """What was deleted (confirm=False: only what was not, for one typed message whose
    deletion needs no news) and what the person should delete themselves."""
    lines = []
    if done.deleted and confirm:
        lines.append(
            tr.ngettext(
                "I deleted your message with the child's details from this chat.",
                "I deleted your {n} messages with the child's details from this chat.",
                done.deleted,
            ).format(n=done.deleted)
        )
    if done.too_old:
        lines.append(
            tr.ngettext(
                "{n} older message could not be deleted (Telegram allows it for 48 hours); "
                "please delete it yourself.",
                "{n} older messages could not be deleted (Telegram allows it for 48 hours); "
                "please delete them yourself.",
                done.too_old,
            ).format(n=done.too_old)
        )
    if done.failed_theirs and retried:
        lines.append(
            tr.ngettext(
                "{n} message could not be deleted just now; I will try again shortly.",
                "{n} messages could not be deleted just now; I will try again shortly.",
                done.failed_theirs,
            ).format(n=done.failed_theirs)
        )
    elif done.failed_theirs:
        lines.append(
            tr.ngettext(
                "{n} message could not be deleted just now; please delete it yourself.",
                "{n} messages could not be deleted just now; please delete them yourself.",
                done.failed_theirs,
            ).format(n=done.failed_theirs)
        )
    return " ".join(lines)


async def delete_typed(context: Context, message: Message) -> str:
    """Delete a typed message that may name the child, once what it says is stored (a
    question, a reason). Returns what to tell its author: nothing when it is gone, else that
    they should delete it themselves."""
    done = await delete_from_chat(
        context, message.chat_id, [[message.message_id, _unix(message.date)]]
    )
    return deletion_text(done, context.tr, confirm=False)


def _unix(moment: datetime) -> int:
    return int(moment.astimezone(UTC).timestamp())


# Answering a coordinator's question.


async def start_reply(update: Update, context: Context) -> str | int | None:
    query = update.callback_query
    parts = parse_callback(query.data if query else None, "rf") or []
    referral_id = parse_id(parts[1]) if len(parts) == 2 else None
    if referral_id is None:
        await no_longer_active(update, context)
        return None  # stale or refused: whatever dialog they were in goes on
    runtime = context.runtime
    tr = context.tr
    try:
        async with runtime.database.transaction() as session:
            code = await referrals.question_for(
                session, context.require_actor(), referral_id, now=runtime.clock.now()
            )
    except PermissionDenied:
        await answer(update, tr.gettext("You are not allowed to do that."))
        return None  # stale or refused: whatever dialog they were in goes on
    except referrals.NotWaitingForAnswer:
        await _answered_already(update, context)
        return None  # stale or refused: whatever dialog they were in goes on
    context.user_data[REPLY_TO] = referral_id  # type: ignore[index]
    assert query is not None
    await acknowledge(query)
    await context.bot.send_message(
        context.require_actor().chat_id,
        tr.gettext(
            "Type your answer about {code}. Once it is stored, I delete your message from this "
            "chat."
        ).format(code=code),
        reply_markup=keyboard([[(tr.gettext("Cancel"), "ref:rx")]]),
    )
    return REPLY


async def reply_typed(update: Update, context: Context) -> str | int:
    message = update.effective_message
    referral_id = context.user_data.get(REPLY_TO)  # type: ignore[union-attr]
    tr = context.tr
    if message is None or not isinstance(referral_id, int):
        return ConversationHandler.END
    if message.text is None:
        await answer(update, tr.gettext("Please type your answer as text."))
        return REPLY
    runtime = context.runtime
    actor = context.require_actor()
    try:
        async with runtime.database.transaction() as session:
            result = await referrals.answer(
                session, actor, runtime.cipher, referral_id, message.text, now=runtime.clock.now()
            )
            draft = await drafting.find_draft(session, actor, runtime.cipher)
    except PermissionDenied:
        await answer(update, tr.gettext("You are not allowed to do that."))
        return ConversationHandler.END
    except referrals.NotWaitingForAnswer:
        await _answered_already(update, context)
        return ConversationHandler.END
    if isinstance(result, Rejected):
        await answer(update, rejection_text(result, REPLY, tr))
        return REPLY
    context.user_data.pop(REPLY_TO, None)  # type: ignore[union-attr]
    deleted, _failed = await _delete_messages(
        context, actor.chat_id, [[message.message_id, _unix(message.date)]]
    )
    lines = [
        tr.gettext("Thank you. Your answer about {code} was sent to the coordinators.").format(
            code=result.code
        ),
        deleted,
    ]
    if draft is not None:
        lines.append(tr.gettext("Your unfinished referral is kept: /refer continues it."))
    await answer(update, "\n\n".join(line for line in lines if line))
    await notify(
        context,
        result.coordinators,
        lambda tr: tr.gettext("The referrer answered the question about {code}.").format(
            code=result.code
        ),
        lambda tr: keyboard(
            [[(tr.gettext("Open {code}").format(code=result.code), f"rf:o:{result.referral_id}")]]
        ),
    )
    return ConversationHandler.END


async def _answered_already(update: Update, context: Context) -> None:
    await answer(
        update,
        context.tr.gettext(
            "That question has already been answered, or the referral has been decided."
        ),
    )


# /myreferrals


async def my_referrals(update: Update, context: Context) -> None:
    actor = context.require_actor()
    async with context.runtime.database.transaction() as session:
        own = await referrals.own_referrals(session, actor)
    tr = context.tr
    _ = tr.gettext
    if not own:
        await answer(update, _("You have not reported any concern yet. /refer reports one."))
        return
    lines = [_("Your referrals:")]
    for item in own[:30]:
        status = _(STATUS_NAMES[item.status])
        if item.code is None:
            lines.append(
                _("Unfinished draft, last changed {date}: /refer continues it.").format(
                    date=tr.date(item.at)
                )
            )
        else:
            lines.append(f"{item.code} · {status} · {tr.date(item.at)}")
    await answer(update, "\n".join(lines))


def handlers() -> HandlerList:
    dialog = Dialog(DIALOG)
    incoming = filters.UpdateType.MESSAGE & ~filters.COMMAND
    # Every button of the dialog is an entry point: the draft and its step are in the database,
    # so a press on the draft's message brings the person back into it from any other dialog.
    typed_here: HandlerList = [MessageHandler(incoming, dialog.step(typed))]
    states: dict[object, HandlerList] = {step: typed_here for step in (*drafting.STEPS, RESUME)}
    states[REPLY] = [MessageHandler(incoming, dialog.step(reply_typed))]
    return [
        ConversationHandler[Context](
            entry_points=[
                CommandHandler("refer", dialog.entry(start_refer)),
                CallbackQueryHandler(dialog.entry(pressed), pattern=r"^ref:"),
                CallbackQueryHandler(dialog.entry(start_reply), pattern=r"^rf:r:"),
            ],
            states=states,
            fallbacks=[
                CommandHandler("cancel", dialog.step(cancel)),
                ends_on_other_commands(),
            ],
            allow_reentry=True,
            name="refer",
            persistent=True,
        )
    ]


def command_handlers() -> HandlerList:
    """Outside the dialog's group: a command that ends the dialog still reaches these."""
    return [CommandHandler("myreferrals", consuming(my_referrals))]
