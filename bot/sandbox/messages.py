"""The Bot API methods on the people's chats: messages sent, edited and deleted, the documents
they carry, and the answers to pressed buttons."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from .callbacks import CallbackRegistry
from .content import check_reply_markup, render_caption, render_text
from .errors import ApiError
from .files import FileStore, StoredFile
from .flood import FloodGate
from .html_text import FormattedText
from .models import BotMessage, CallbackAnswer, SandboxStats, inline_keyboard
from .params import ApiRequest, Handler
from .people import Person

_DELETE_WINDOW_SECONDS = 48 * 3600
_MAX_DELETE_BATCH = 100
_MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024  # getFile refuses bigger files for bots
_MAX_CALLBACK_ANSWER = 200
_NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly "
    "the same as a current content and reply markup of the message"
)


class ChatMethods:
    """What the bot does in the people's chats, as Telegram allows and refuses it."""

    def __init__(
        self,
        *,
        people: dict[int, Person],
        stats: SandboxStats,
        files: FileStore,
        callbacks: CallbackRegistry,
        flood_gate: FloodGate,
        clock: Callable[[], float],
    ) -> None:
        self._people = people
        self._stats = stats
        self._files = files
        self._callbacks = callbacks
        self._flood_gate = flood_gate
        self._clock = clock

    def methods(self) -> dict[str, Handler]:
        return {
            "sendMessage": self._send_message,
            "editMessageText": self._edit_message_text,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "editMessageCaption": self._edit_message_caption,
            "deleteMessage": self._delete_message,
            "deleteMessages": self._delete_messages,
            "answerCallbackQuery": self._answer_callback_query,
            "sendDocument": self._send_document,
            "getFile": self._get_file,
        }

    # --- sending --------------------------------------------------------------------------

    async def _send_message(self, request: ApiRequest) -> dict[str, Any]:
        person = self._reachable_person(request)
        text = _text(request)
        return self._send(
            person, request, text=text.text, entities=text.entities, html=_html(request, "text")
        )

    async def _send_document(self, request: ApiRequest) -> dict[str, Any]:
        person = self._reachable_person(request)
        document = self._document_file(request).document_dict()
        caption = _caption(request)
        if caption is None:
            return self._send(person, request, document=document)
        return self._send(
            person,
            request,
            document=document,
            caption=caption.text,
            caption_entities=caption.entities,
            html=_html(request, "caption"),
        )

    def _send(self, person: Person, request: ApiRequest, **content: Any) -> dict[str, Any]:
        """Add the bot's new message to the chat, unless its keyboard or the flood limits
        refuse it."""
        markup = check_reply_markup(request.object("reply_markup"))
        self._throttle(person.chat_id)
        message = BotMessage(
            message_id=person.chat.new_message_id(),
            chat_id=person.chat_id,
            from_bot=True,
            date=self._now(),
            text=None,
            html=None,
            caption=None,
            reply_markup=markup,
            document=None,
            protect_content=request.flag("protect_content"),
            edited=False,
            deleted=False,
        )
        message = replace(message, **content)
        person.chat.add(message)
        return person.chat.to_dict(message)

    def _throttle(self, chat_id: int) -> None:
        retry_after = self._flood_gate.acquire(chat_id)
        if retry_after is not None:
            raise ApiError.too_many_requests(retry_after)

    # --- editing --------------------------------------------------------------------------

    async def _edit_message_text(self, request: ApiRequest) -> dict[str, Any]:
        person, message = self._message_to_edit(request)
        if message.text is None:
            raise ApiError.bad_request("there is no text in the message to edit")
        text = _text(request)
        return self._edit(
            person,
            message,
            request,
            text=text.text,
            entities=text.entities,
            html=_html(request, "text"),
        )

    async def _edit_message_caption(self, request: ApiRequest) -> dict[str, Any]:
        person, message = self._message_to_edit(request)
        if message.text is not None:
            raise ApiError.bad_request("there is no caption in the message to edit")
        caption = _caption(request)
        return self._edit(
            person,
            message,
            request,
            caption=caption.text if caption is not None else None,
            caption_entities=caption.entities if caption is not None else [],
            html=_html(request, "caption"),
        )

    async def _edit_message_reply_markup(self, request: ApiRequest) -> dict[str, Any]:
        person, message = self._message_to_edit(request)
        return self._edit(person, message, request)

    def _message_to_edit(self, request: ApiRequest) -> tuple[Person, BotMessage]:
        if request.text("inline_message_id"):
            raise ApiError.bad_request("MESSAGE_ID_INVALID")  # no inline mode in the sandbox
        person = self._reachable_person(request)
        message = person.chat.messages.get(request.message_id())
        if message is None or message.deleted:
            raise ApiError.bad_request("message to edit not found")
        if not message.from_bot:
            raise ApiError.bad_request("message can't be edited")
        return person, message

    def _edit(
        self, person: Person, message: BotMessage, request: ApiRequest, **content: Any
    ) -> dict[str, Any]:
        """Show the message edited, unless it would look just as before (Telegram refuses)."""
        # Without reply_markup Telegram drops the inline keyboard, so None is a real value.
        markup = check_reply_markup(request.object("reply_markup"))
        new = replace(message, reply_markup=markup, **content)
        if _shown(new) == _shown(message):
            raise ApiError.bad_request(_NOT_MODIFIED)
        edited = replace(new, edited=True, edit_date=self._now())
        person.chat.update(edited, "edited")
        return person.chat.to_dict(edited)

    # --- deleting -------------------------------------------------------------------------

    async def _delete_message(self, request: ApiRequest) -> bool:
        self._delete(self._person_for(request), request.message_id())
        return True

    async def _delete_messages(self, request: ApiRequest) -> bool:
        """Like Telegram: 1 to 100 ids; messages that cannot be found or deleted are skipped."""
        person = self._person_for(request)
        ids = request.object("message_ids")
        if not isinstance(ids, list) or not 1 <= len(ids) <= _MAX_DELETE_BATCH:
            raise ApiError.bad_request("message_ids must be a list of 1 to 100 identifiers")
        for message_id in ids:
            if isinstance(message_id, int):
                with contextlib.suppress(ApiError):
                    self._delete(person, message_id)
        return True

    def _delete(self, person: Person, message_id: int) -> None:
        message = person.chat.messages.get(message_id)
        if message is None or message.deleted:
            raise ApiError.bad_request("message to delete not found")
        if self._clock() - message.date > _DELETE_WINDOW_SECONDS:
            raise ApiError.bad_request("message can't be deleted for everyone")
        person.chat.update(replace(message, deleted=True), "deleted")

    # --- files and buttons ----------------------------------------------------------------

    def _document_file(self, request: ApiRequest) -> StoredFile:
        reference = request.text("document") or ""
        upload = request.uploads.get("document")
        if upload is None and reference.startswith("attach://"):
            upload = request.uploads.get(reference.removeprefix("attach://"))
        if upload is not None:
            if not upload.content:
                raise ApiError.bad_request("file must be non-empty")
            return self._files.add(
                upload.content,
                kind="document",
                file_name=upload.file_name,
                mime_type=upload.content_type,
            )
        if not reference:
            raise ApiError.bad_request("there is no document in the request")
        stored = self._files.by_id(reference)
        if stored is None:
            raise ApiError.bad_request("wrong file identifier/HTTP URL specified")
        return stored

    async def _get_file(self, request: ApiRequest) -> dict[str, Any]:
        stored = self._files.by_id(request.text("file_id") or "")
        if stored is None:
            raise ApiError.bad_request("invalid file_id")
        if stored.size > _MAX_DOWNLOAD_BYTES:
            raise ApiError.bad_request("file is too big")
        return stored.file_dict()

    async def _answer_callback_query(self, request: ApiRequest) -> bool:
        text = request.text("text")
        if text is not None and len(text) > _MAX_CALLBACK_ANSWER:
            raise ApiError.bad_request("MESSAGE_TOO_LONG")
        answer = CallbackAnswer(text=text, show_alert=request.flag("show_alert"))
        self._callbacks.answer(request.text("callback_query_id") or "", answer)
        return True

    # --- whose chat -----------------------------------------------------------------------

    def _person_for(self, request: ApiRequest) -> Person:
        person = self._people.get(request.chat_id())
        if person is None:
            raise ApiError.bad_request("chat not found")
        return person

    def _reachable_person(self, request: ApiRequest) -> Person:
        person = self._person_for(request)
        if person.blocked:
            self._stats.forbidden[person.chat_id] += 1
            raise ApiError.forbidden("bot was blocked by the user")
        return person

    def _now(self) -> int:
        return int(self._clock())


def _text(request: ApiRequest) -> FormattedText:
    return render_text(request.text("text"), request.text("parse_mode"), request.array("entities"))


def _caption(request: ApiRequest) -> FormattedText | None:
    return render_caption(
        request.text("caption"), request.text("parse_mode"), request.array("caption_entities")
    )


def _html(request: ApiRequest, name: str) -> str | None:
    """The text or caption as the bot wrote it, when it wrote HTML."""
    return request.text(name) if (request.text("parse_mode") or "").lower() == "html" else None


def _shown(message: BotMessage) -> tuple[Any, ...]:
    """What the chat shows of a message: whether an edit changes anything."""
    return (
        message.text,
        message.entities,
        message.caption,
        message.caption_entities,
        _normal_markup(message.reply_markup),
    )


def _normal_markup(markup: dict[str, Any] | None) -> dict[str, Any] | None:
    # An empty inline keyboard shows the same as none at all.
    if not markup or ("inline_keyboard" in markup and not any(inline_keyboard(markup))):
        return None
    return markup
