"""What all dialogs share: the callback context, answering, escaping, and callback-data parsing."""

from __future__ import annotations

import contextlib
import functools
import html
import re
import warnings
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from telegram import (
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    Update,
)
from telegram.error import BadRequest, TelegramError
from telegram.ext import (
    Application,
    ApplicationHandlerStop,
    BaseHandler,
    CallbackContext,
    ConversationHandler,
    ExtBot,
    MessageHandler,
    filters,
)
from telegram.warnings import PTBUserWarning

from bot.core.i18n import Translator, pick_locale
from bot.core.runtime import Runtime
from bot.services.board import recipient_of
from bot.services.members import Actor

Data = dict[str, Any]
RUNTIME_KEY = "runtime"

# Dialogs are tracked per chat and user on purpose: a person has one dialog of a kind at a time,
# whichever message its buttons sit on. python-telegram-bot warns about that choice; it is made.
warnings.filterwarnings("ignore", message="If 'per_message=False'", category=PTBUserWarning)


class Context(CallbackContext[ExtBot[None], Data, Data, Data]):
    """The callback context of Round Table: the runtime, and who is talking (set by the guard)."""

    def __init__(
        self,
        application: Application[Any, Any, Any, Any, Any, Any],
        chat_id: int | None = None,
        user_id: int | None = None,
    ) -> None:
        super().__init__(application, chat_id=chat_id, user_id=user_id)
        self.actor: Actor | None = None
        self.client_language: str | None = None
        self.handled = False  # a command some dialog has answered (see consuming)

    @classmethod
    def from_update(
        cls, update: object, application: Application[Any, Any, Any, Any, Any, Any]
    ) -> Context:
        context = super().from_update(update, application)
        if isinstance(update, Update) and update.effective_user is not None:
            context.client_language = update.effective_user.language_code
        return context

    @property
    def runtime(self) -> Runtime:
        runtime: Runtime = self.bot_data[RUNTIME_KEY]
        return runtime

    @property
    def tr(self) -> Translator:
        """The translator of the person talking: their chosen language, else their client's."""
        if self.actor is not None:
            locale = self.actor.locale
        else:
            locale = pick_locale(self.client_language, self.runtime.settings.default_locale)
        return self.runtime.translator(locale)

    def require_actor(self) -> Actor:
        if self.actor is None:  # the guard stops strangers before any dialog runs
            raise RuntimeError("a dialog ran without a registered member")
        return self.actor


def esc(value: object) -> str:
    """Text from people (names, institutions) made safe for HTML parse mode."""
    return html.escape(str(value), quote=False)


def keyboard(rows: Sequence[Sequence[tuple[str, str]]]) -> InlineKeyboardMarkup:
    """An inline keyboard from rows of (label, callback data)."""
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(label, callback_data=data) for label, data in row] for row in rows]
    )


T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a long list shown with ◀ ▶ buttons."""

    items: list[T]
    number: int
    count: int

    def nav_row(self, namespace: str) -> list[tuple[str, str]]:
        """The ◀ ▶ buttons; their data is "namespace:p:N"."""
        row = []
        if self.number > 0:
            row.append(("◀", f"{namespace}:p:{self.number - 1}"))
        if self.number < self.count - 1:
            row.append(("▶", f"{namespace}:p:{self.number + 1}"))
        return row


def paginate(items: Sequence[T], page: int, size: int) -> Page[T]:
    """The page asked for, clamped to the pages there are (a stale button may ask for more)."""
    count = max(1, -(-len(items) // size))
    number = min(max(page, 0), count - 1)
    return Page(list(items[number * size : (number + 1) * size]), number, count)


def paged_keyboard(
    page: Page[T],
    button: Callable[[T], tuple[str, str]],
    namespace: str,
    extra: Sequence[Sequence[tuple[str, str]]] = (),
) -> InlineKeyboardMarkup:
    """One button per item of the page, the ◀ ▶ row, then the `extra` rows every page keeps."""
    rows = [[button(item)] for item in page.items]
    if nav := page.nav_row(namespace):
        rows.append(nav)
    rows += [list(row) for row in extra]
    return keyboard(rows)


# Telegram's limits on what one message carries, counted after entity parsing: the raw HTML
# is never shorter, so measuring it is safe.
MAX_TEXT = 4096
MAX_CAPTION = 1024  # a document's caption
_OPEN_TAG_AT_END = re.compile(r"<[^>]*$")
_OPEN_ENTITY_AT_END = re.compile(r"&[#\w]*$")
_TAG = re.compile(r"<(/?)([a-zA-Z][\w-]*)[^>]*>")


def chunks(items: Sequence[str], limit: int = MAX_TEXT, separator: str = "\n") -> list[str]:
    """Items (lines, or paragraphs with `separator` "\\n\\n") joined into as few texts as fit
    `limit` each. A text breaks only between items, so no tag or entity is cut; an item too
    long on its own is cut short (see clip)."""
    texts: list[str] = []
    current: list[str] = []
    size = 0
    for item in (clip(item, limit) for item in items):
        grown = size + len(separator) + len(item) if current else len(item)
        if current and grown > limit:
            texts.append(separator.join(current))
            current, grown = [], len(item)
        current.append(item)
        size = grown
    if current:
        texts.append(separator.join(current))
    return texts


def clip(text: str, limit: int) -> str:
    """HTML text cut to `limit` characters with a visible "…": never inside a tag or an entity,
    and the tags it leaves open are closed."""
    if len(text) <= limit:
        return text
    end = limit - 1
    while True:
        kept = _OPEN_ENTITY_AT_END.sub("", _OPEN_TAG_AT_END.sub("", text[:end]))
        closing = _closing_tags(kept)
        over = len(kept) + 1 + len(closing) - limit
        if over <= 0:
            return kept + "…" + closing
        end = len(kept) - over


def _closing_tags(text: str) -> str:
    stack: list[str] = []
    for match in _TAG.finditer(text):
        closing, name = match.group(1), match.group(2).lower()
        if not closing:
            stack.append(name)
        elif name in stack:
            del stack[len(stack) - 1 - stack[::-1].index(name)]
    return "".join(f"</{name}>" for name in reversed(stack))


def parse_callback(data: str | None, namespace: str) -> list[str] | None:
    """The parts after "namespace:" of callback data, or None if it is not of this dialog."""
    if not data or not data.startswith(namespace + ":"):
        return None
    return data.split(":")[1:]


MAX_ID = 2**31 - 1  # the database's integer ids


def parse_number(part: str, *, digits: int = 10) -> int | None:
    """A number from callback data, or None for forged or garbled data: ASCII digits only
    (`str.isdigit` also takes "²", which `int` refuses, and "٣", which it reads), at most
    `digits` of them. Every number a button carries is read through here."""
    if not (0 < len(part) <= digits and part.isascii() and part.isdigit()):
        return None
    return int(part)


def parse_id(part: str) -> int | None:
    """A positive id from callback data; forged or garbled data gives None."""
    value = parse_number(part)
    return value if value is not None and 0 < value <= MAX_ID else None


def callback_ids(update: Update, prefix: str, count: int) -> list[int] | None:
    """The `count` ids after "prefix:" in a button's data ("pv:12:34", "cf:c:5:67"); None for
    anything else (garbled, forged, of another kind)."""
    query = update.callback_query
    data = query.data if query else None
    if not data or not data.startswith(prefix + ":"):
        return None
    ids = [parse_id(part) for part in data[len(prefix) + 1 :].split(":")]
    if len(ids) != count or any(value is None for value in ids):
        return None
    return [value for value in ids if value is not None]


async def pressed_ids(
    update: Update, context: Context, prefix: str, count: int = 1
) -> list[int] | None:
    """The `count` ids after "prefix:" in the pressed button's data, as callback_ids reads them;
    data that does not read so is answered as a stale button."""
    ids = callback_ids(update, prefix, count)
    if ids is None:
        await no_longer_active(update, context)
    return ids


async def recipient_tr(context: Context, member_id: int) -> Translator:
    """The translator for a notification's recipient, in the language they chose."""
    async with context.runtime.database.reading() as session:
        recipient = await recipient_of(session, member_id)
    return context.runtime.translator(recipient.locale)


async def answer(
    update: Update,
    text: str,
    markup: InlineKeyboardMarkup | None = None,
    *,
    protect: bool = False,
) -> Message | None:
    """Reply to a message, or replace the message whose button was pressed.

    protect=True (a child's details): the text goes out as a new message that cannot be
    forwarded or saved; a message under a pressed button is deleted instead of edited, since an
    edit cannot add the protection.
    """
    query = update.callback_query
    if query is not None:
        await acknowledge(query)
        if not protect:
            return await edit(query, text, markup)
        if isinstance(query.message, Message):
            with contextlib.suppress(TelegramError):
                await query.message.delete()
    chat = update.effective_chat
    if chat is None:
        return None
    return await update.get_bot().send_message(
        chat.id, text, reply_markup=markup, protect_content=protect or None
    )


async def acknowledge(
    query: CallbackQuery, text: str | None = None, *, alert: bool = False
) -> None:
    """Stop the button's spinner. A press handled late (after a restart, say) can no longer be
    acknowledged; it is still handled."""
    try:
        await query.answer(text, show_alert=alert)
    except BadRequest as error:
        if "query is too old" not in error.message.lower():
            raise


async def alert(update: Update, text: str) -> None:
    """A refusal: a pop-up on the pressed button, else a reply; nothing in the chat changes."""
    if update.callback_query is not None:
        await acknowledge(update.callback_query, text, alert=True)
    else:
        await answer(update, text)


async def say_below(
    update: Update,
    context: Context,
    text: str,
    markup: InlineKeyboardMarkup | None = None,
    *,
    protect: bool = False,
) -> Message | None:
    """A new message (what is above stays as it is), after acknowledging a press; `protect`ed
    (not to be forwarded or saved) when it shows protected text."""
    if update.callback_query is not None:
        await acknowledge(update.callback_query)
    if update.effective_chat is None:
        return None
    return await context.bot.send_message(
        update.effective_chat.id, text, reply_markup=markup, protect_content=protect or None
    )


async def no_longer_active(update: Update, context: Context) -> None:
    """A button from an old or finished dialog, or data no dialog can read: say so, change
    nothing."""
    if update.callback_query is not None:
        await acknowledge(
            update.callback_query, context.tr.gettext("This button is no longer active.")
        )


async def edit(
    query: CallbackQuery, text: str, markup: InlineKeyboardMarkup | None = None
) -> Message | None:
    """Replace the message under a pressed button; if it cannot be edited, send a new one.

    An identical edit is not an error. A message Telegram no longer lets us edit (deleted, too
    old, inaccessible) gets the answer as a new message instead of an error.
    """
    if isinstance(query.message, Message):
        try:
            result = await query.edit_message_text(text, reply_markup=markup)
        except BadRequest as error:
            if "not modified" in error.message:
                return None
            if not any(reason in error.message.lower() for reason in _UNEDITABLE):
                raise
        else:
            return result if isinstance(result, Message) else None
    if query.message is None:
        return None
    return await query.get_bot().send_message(query.message.chat.id, text, reply_markup=markup)


# Gone, too old, or a document's caption (a button of another message's, pressed by a modified
# client on a calendar invitation, say): the answer comes as a new message.
_UNEDITABLE = (
    "message to edit not found",
    "message can't be edited",
    "there is no text in the message to edit",
)


HandlerList = list[BaseHandler[Update, Context, Any]]
Callback = Callable[[Update, Context], Coroutine[Any, Any, Any]]


def consuming(callback: Callback) -> Callback:
    """The update is handled here; no later handler gets to answer it.

    Each dialog has its own handler group (see bot/app.py). A command goes on through the later
    groups, marked as handled, so that every other dialog sees it and ends (a person who starts
    something new has left what they were doing); anything else stops here. In a
    ConversationHandler the callback's return value stays the new state.
    """

    @functools.wraps(callback)
    async def handled_here(update: Update, context: Context) -> Any:
        result = await callback(update, context)
        if _is_command(update):
            context.handled = True
            return result
        raise ApplicationHandlerStop(result)

    return handled_here


def _is_command(update: Update) -> bool:
    message = update.message
    return bool(message and message.text and message.text.startswith("/"))


async def _leave(update: Update, context: Context) -> int:
    return ConversationHandler.END


def ends_on_other_commands() -> BaseHandler[Update, Context, Any]:
    """A dialog's last fallback: another command ends it quietly and goes on to its own dialog."""
    return MessageHandler(filters.COMMAND, _leave)


# What a dialog's step takes as typed: a new message (an edit of an old one is no answer) that is
# not a command; TYPED_TEXT only text.
TYPED = filters.UpdateType.MESSAGE & ~filters.COMMAND
TYPED_TEXT = TYPED & filters.TEXT


ACTIVE_DIALOG = "dialog"


class Dialog:
    """The callbacks of one ConversationHandler, made aware of which dialog a person is in.

    A person is in one dialog at a time: the one they entered last. Commands already end every
    other dialog (see consuming). Buttons do not, so a coordinator who is typing an invite and
    presses "Decline" on a referral is in two dialogs at once; whatever they type next must go
    to the one they entered last. So entering a dialog marks it active, and a step of a dialog
    that is no longer active ends it and lets the update go on to the active one.
    """

    def __init__(self, name: str) -> None:
        self.name = name

    def entry(self, callback: Callback) -> Callback:
        inner = consuming(callback)

        @functools.wraps(callback)
        async def entered(update: Update, context: Context) -> Any:
            data: Data = context.user_data  # type: ignore[assignment]
            before = data.get(ACTIVE_DIALOG)
            data[ACTIVE_DIALOG] = self.name
            try:
                state = await inner(update, context)  # a command comes back here
            except ApplicationHandlerStop as stop:
                self._settle(data, before, stop.state)
                raise
            self._settle(data, before, state)
            return state

        return entered

    def _settle(self, data: Data, before: object, state: object) -> None:
        """After an entry callback: a refusal or a stale press (END or None, "nothing
        changed") leaves the person in the dialog they were in; an ended dialog is left."""
        if state is None or (state == ConversationHandler.END and before != self.name):
            if before is None:
                data.pop(ACTIVE_DIALOG, None)
            else:
                data[ACTIVE_DIALOG] = before
        elif state == ConversationHandler.END:
            data.pop(ACTIVE_DIALOG, None)

    def step(self, callback: Callback) -> Callback:
        inner = consuming(callback)

        @functools.wraps(callback)
        async def stepped(update: Update, context: Context) -> Any:
            if (context.user_data or {}).get(ACTIVE_DIALOG) != self.name:
                return ConversationHandler.END
            return await inner(update, context)

        return stepped

    def conversation(
        self,
        entry_points: HandlerList,
        states: dict[object, HandlerList],
        fallbacks: HandlerList | None = None,
    ) -> ConversationHandler[Context]:
        """The dialog's ConversationHandler, under the dialog's name: kept across restarts,
        entered afresh from any step, and ended by a command none of its steps takes."""
        return ConversationHandler[Context](
            entry_points=entry_points,
            states=states,
            fallbacks=[*(fallbacks or []), ends_on_other_commands()],
            allow_reentry=True,
            name=self.name,
            persistent=True,
        )
