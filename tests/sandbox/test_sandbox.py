"""End-to-end tests of the Bot API sandbox, driven by a real python-telegram-bot client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from telegram import (
    Bot,
    BotCommand,
    BotCommandScopeChat,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputFile,
    Message,
    MessageEntity,
    Update,
)
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    Conflict,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
)
from telegram.request import HTTPXRequest

from bot.sandbox import BotApiSandbox, CallbackAnswer, FloodLimits, Person
from bot.sandbox.faults import Faults
from bot.sandbox.flood import FloodGate

TOKEN = "123456:sandbox-test-token"
ALICE = 1001
BOB = 1002
NO_FLOOD = FloodLimits(enabled=False)


@asynccontextmanager
async def running_sandbox(token: str = TOKEN, **options: Any) -> AsyncIterator[BotApiSandbox]:
    """A started stand-in for the block, stopped after it."""
    box = BotApiSandbox(token=token, **options)
    await box.start()
    try:
        yield box
    finally:
        await box.stop()


@asynccontextmanager
async def client(box: BotApiSandbox, token: str = TOKEN) -> AsyncIterator[Bot]:
    async with Bot(token, base_url=box.base_url, base_file_url=box.base_file_url) as bot:
        yield bot


@pytest.fixture
async def sandbox() -> AsyncIterator[BotApiSandbox]:
    async with running_sandbox(flood=NO_FLOOD) as box:
        yield box


@pytest.fixture
async def bot(sandbox: BotApiSandbox) -> AsyncIterator[Bot]:
    async with client(sandbox) as connected:
        yield connected


@pytest.fixture
def alice(sandbox: BotApiSandbox) -> Person:
    return sandbox.person(ALICE, "Alice", username="alice")


def language_keyboard() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton("Čeština", callback_data="lang:cs"),
                InlineKeyboardButton("English", callback_data="lang:en"),
            ],
            [InlineKeyboardButton("Help", url="https://example.org/help")],
        ]
    )


# --- identity and plain messages ---------------------------------------------------------


async def test_get_me_returns_the_sandbox_bot(sandbox: BotApiSandbox, bot: Bot) -> None:
    me = await bot.get_me()

    assert me.id == sandbox.bot_id
    assert me.username == "roundtable_sandbox_bot"
    assert me.is_bot


async def test_wrong_token_is_unauthorized(sandbox: BotApiSandbox) -> None:
    with pytest.raises(InvalidToken):
        async with client(sandbox, token="999:wrong"):
            pass
    assert sandbox.stats.http_errors[401] == 1


async def test_sent_message_reaches_person_as_plain_text_with_buttons(
    bot: Bot, alice: Person
) -> None:
    sent = await bot.send_message(
        ALICE,
        "<b>Vítejte</b> &amp; welcome",
        parse_mode=ParseMode.HTML,
        reply_markup=language_keyboard(),
        protect_content=True,
    )

    message = await alice.next_message()
    assert message.message_id == sent.message_id
    assert message.text == "Vítejte & welcome"
    assert message.html == "<b>Vítejte</b> &amp; welcome"
    assert message.protect_content
    assert message.buttons() == [
        [("Čeština", "lang:cs"), ("English", "lang:en")],
        [("Help", None)],
    ]
    assert sent.text == "Vítejte & welcome"
    assert sent.entities == (MessageEntity(MessageEntity.BOLD, 0, 7),)
    assert sent.has_protected_content
    assert alice.transcript() == "Bot: Vítejte & welcome\n   [Čeština] [English]\n   [Help]"


async def test_numeric_and_boolean_looking_texts_stay_strings(bot: Bot, alice: Person) -> None:
    await bot.send_message(ALICE, "123")
    await bot.send_message(ALICE, "true")

    assert (await alice.next_message()).text == "123"
    assert (await alice.next_message()).text == "true"


async def test_edit_changes_the_message_and_identical_edit_is_refused(
    bot: Bot, alice: Person
) -> None:
    sent = await bot.send_message(ALICE, "Pick a language", reply_markup=language_keyboard())
    await alice.next_message()

    edited = await bot.edit_message_text(
        "Language: <i>English</i>", ALICE, sent.message_id, parse_mode=ParseMode.HTML
    )
    event = await alice.next_event()

    assert isinstance(edited, type(sent))
    assert edited.text == "Language: English"
    assert event.kind == "edited"
    assert event.message is not None
    assert event.message.text == "Language: English"
    assert event.message.buttons() == []  # editing without reply_markup drops the keyboard
    assert alice.messages[sent.message_id].edited
    with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
        await bot.edit_message_text(
            "Language: <i>English</i>", ALICE, sent.message_id, parse_mode=ParseMode.HTML
        )


async def test_edit_reply_markup(bot: Bot, alice: Person) -> None:
    sent = await bot.send_message(ALICE, "Pick", reply_markup=language_keyboard())

    await bot.edit_message_reply_markup(ALICE, sent.message_id, reply_markup=None)

    assert alice.last_bot_message().buttons() == []
    with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
        await bot.edit_message_reply_markup(ALICE, sent.message_id, reply_markup=None)


async def test_edit_errors(bot: Bot, alice: Person) -> None:
    own = await alice.send_text("hello")

    with pytest.raises(BadRequest, match=r"(?i)message can't be edited"):
        await bot.edit_message_text("x", ALICE, own)
    with pytest.raises(BadRequest, match=r"(?i)message to edit not found"):
        await bot.edit_message_text("x", ALICE, 999)


async def test_delete_message(bot: Bot, alice: Person) -> None:
    sent = await bot.send_message(ALICE, "Temporary")

    assert await bot.delete_message(ALICE, sent.message_id)

    assert (await alice.next_event()).kind == "sent"
    deleted = await alice.next_event()
    assert deleted.kind == "deleted"
    assert alice.messages[sent.message_id].deleted
    assert alice.transcript().splitlines()[-1] == "Bot deleted a message"
    with pytest.raises(AssertionError, match=r"(?i)nothing"):
        alice.last_bot_message()
    with pytest.raises(BadRequest, match=r"(?i)message to delete not found"):
        await bot.delete_message(ALICE, sent.message_id)
    with pytest.raises(BadRequest, match=r"(?i)message to edit not found"):
        await bot.edit_message_text("again", ALICE, sent.message_id)


async def test_messages_older_than_48_hours_cannot_be_deleted() -> None:
    now = [1_700_000_000.0]
    async with running_sandbox(clock=lambda: now[0]) as box, client(box) as bot:
        box.person(ALICE, "Alice")
        sent = await bot.send_message(ALICE, "Old news")
        now[0] += 49 * 3600

        with pytest.raises(BadRequest, match=r"(?i)message can't be deleted for everyone"):
            await bot.delete_message(ALICE, sent.message_id)
        assert sent.date.timestamp() == 1_700_000_000


async def test_delete_messages_skips_what_cannot_be_deleted() -> None:
    now = [1_700_000_000.0]
    async with running_sandbox(clock=lambda: now[0]) as box, client(box) as bot:
        alice = box.person(ALICE, "Alice")
        old = await alice.send_text("an old message of hers")
        now[0] += 49 * 3600
        recent = await alice.send_text("a recent one")
        mine = await bot.send_message(ALICE, "the bot's")

        assert await bot.delete_messages(ALICE, [old, recent, mine.message_id, 999])

        assert not alice.messages[old].deleted
        assert alice.messages[recent].deleted
        assert alice.messages[mine.message_id].deleted
        with pytest.raises(BadRequest, match="1 to 100"):
            await bot.delete_messages(ALICE, list(range(1, 102)))


async def test_next_message_skips_deletions(bot: Bot, alice: Person) -> None:
    first = await bot.send_message(ALICE, "one")
    await bot.delete_message(ALICE, first.message_id)
    await bot.send_message(ALICE, "two")

    assert (await alice.next_message()).text == "one"
    assert (await alice.next_message()).text == "two"


async def test_next_event_times_out_with_transcript(alice: Person) -> None:
    await alice.send_text("anyone there?")

    with pytest.raises(AssertionError, match=r"(?s)No new bot activity.*Alice: anyone there\?"):
        await alice.next_event(timeout=0.05)


# --- errors like Telegram's --------------------------------------------------------------


async def test_unknown_chat_and_blocked_person(bot: Bot, alice: Person) -> None:
    with pytest.raises(BadRequest, match=r"(?i)chat not found"):
        await bot.send_message(424242, "hi")

    alice.block()
    with pytest.raises(Forbidden, match=r"(?i)bot was blocked by the user"):
        await bot.send_message(ALICE, "hi")
    alice.unblock()
    await bot.send_message(ALICE, "hi again")

    assert (await alice.next_message()).text == "hi again"


@pytest.mark.parametrize(
    ("markup", "reason"),
    [
        ("<b>unclosed", "Can't find end tag"),
        ("<blink>x</blink>", 'Unsupported start tag "blink"'),
        ("<b>a<i>b</b></i>", "Unmatched end tag"),
        ("Tom &foo; Jerry", "Unsupported HTML entity"),
        ("1 < 2", "Unsupported start tag at byte offset 2"),
        ("<br/>", 'Unsupported start tag "br"'),
    ],
)
async def test_invalid_html_is_refused(bot: Bot, alice: Person, markup: str, reason: str) -> None:
    with pytest.raises(BadRequest, match=r"(?i)can't parse entities") as caught:
        await bot.send_message(ALICE, markup, parse_mode=ParseMode.HTML)
    assert reason.lower() in caught.value.message.lower()


async def test_supported_html_is_accepted(bot: Bot, alice: Person) -> None:
    markup = (
        "<b>b</b><strong>s</strong><i>i</i><em>e</em><u>u</u><ins>n</ins><s>s</s>"
        '<strike>k</strike><del>d</del><a href="https://example.org">a</a><code>c</code>'
        '<pre><code class="language-python">p</code></pre><tg-spoiler>t</tg-spoiler>'
        '<span class="tg-spoiler">x</span><blockquote>q</blockquote>'
        '<tg-emoji emoji-id="5368324170671202286">👍</tg-emoji> &lt;&gt;&amp;&quot;&#65;'
    )

    sent = await bot.send_message(ALICE, markup, parse_mode=ParseMode.HTML)

    assert sent.text == 'bsieunskdacptxq👍 <>&"A'
    assert sent.text_html.startswith("<b>b</b><b>s</b><i>i</i>")


async def test_text_and_caption_limits(bot: Bot, alice: Person) -> None:
    await bot.send_message(ALICE, "x" * 4096)
    # Tags do not count: the limit applies to the text after parsing.
    await bot.send_message(ALICE, "<b>" + "x" * 4096 + "</b>", parse_mode=ParseMode.HTML)

    with pytest.raises(BadRequest, match=r"(?i)message is too long"):
        await bot.send_message(ALICE, "x" * 4097)
    with pytest.raises(BadRequest, match=r"(?i)message text is empty"):
        await bot.send_message(ALICE, "   ")
    with pytest.raises(BadRequest, match=r"(?i)message caption is too long"):
        await bot.send_document(ALICE, InputFile(b"data", filename="a.txt"), caption="c" * 1025)


async def test_callback_data_over_64_bytes_is_refused(bot: Bot, alice: Person) -> None:
    fits = InlineKeyboardMarkup([[InlineKeyboardButton("ok", callback_data="é" * 32)]])
    too_long = InlineKeyboardMarkup([[InlineKeyboardButton("no", callback_data="é" * 33)]])

    await bot.send_message(ALICE, "fits", reply_markup=fits)
    with pytest.raises(BadRequest, match=r"(?i)BUTTON_DATA_INVALID"):
        await bot.send_message(ALICE, "too long", reply_markup=too_long)


async def test_keyboards_past_100_buttons_or_8_in_a_row_are_refused(
    bot: Bot, alice: Person
) -> None:
    def markup(rows: int, per_row: int) -> InlineKeyboardMarkup:
        return InlineKeyboardMarkup(
            [
                [
                    InlineKeyboardButton(f"{r}.{b}", callback_data=f"b:{r}:{b}")
                    for b in range(per_row)
                ]
                for r in range(rows)
            ]
        )

    sent = await bot.send_message(ALICE, "fits", reply_markup=markup(25, 4))
    await bot.send_message(ALICE, "a full row", reply_markup=markup(1, 8))
    for too_long in (markup(101, 1), markup(1, 9)):
        with pytest.raises(BadRequest, match=r"(?i)reply markup is too long"):
            await bot.send_message(ALICE, "too long", reply_markup=too_long)
        with pytest.raises(BadRequest, match=r"(?i)reply markup is too long"):
            await bot.edit_message_text("edited", ALICE, sent.message_id, reply_markup=too_long)
        with pytest.raises(BadRequest, match=r"(?i)reply markup is too long"):
            await bot.edit_message_reply_markup(ALICE, sent.message_id, reply_markup=too_long)
        with pytest.raises(BadRequest, match=r"(?i)reply markup is too long"):
            await bot.send_document(
                ALICE, InputFile(b"data", filename="a.txt"), reply_markup=too_long
            )
    document = await bot.send_document(ALICE, InputFile(b"data", filename="a.txt"), caption="c")
    with pytest.raises(BadRequest, match=r"(?i)reply markup is too long"):
        await bot.edit_message_caption(
            ALICE, document.message_id, caption="d", reply_markup=markup(1, 9)
        )
    assert alice.last_bot_message().caption == "c"


async def test_unimplemented_method_is_reported(sandbox: BotApiSandbox, bot: Bot) -> None:
    with pytest.raises(TelegramError, match=r"(?i)sendPoll is not implemented"):
        await bot.send_poll(ALICE, "Question?", ["a", "b"])

    assert sandbox.unimplemented == ["sendPoll"]
    assert sandbox.stats.http_errors[404] == 1


# --- updates: long polling -------------------------------------------------------------


async def test_person_text_arrives_via_get_updates_and_offset_confirms(
    sandbox: BotApiSandbox, bot: Bot, alice: Person
) -> None:
    message_id = await alice.send_text("/start invite-42")

    updates = await bot.get_updates()

    assert len(updates) == 1
    message = updates[0].message
    assert message is not None
    assert message.message_id == message_id
    assert message.text == "/start invite-42"
    assert message.from_user is not None
    assert message.from_user.language_code == "cs"
    assert message.parse_entities([MessageEntity.BOT_COMMAND]) == {
        MessageEntity(MessageEntity.BOT_COMMAND, 0, 6): "/start"
    }
    assert sandbox.pending_updates() == 1
    assert await bot.get_updates(offset=updates[0].update_id + 1) == ()
    assert sandbox.pending_updates() == 0


async def test_long_poll_returns_as_soon_as_an_update_arrives(
    sandbox: BotApiSandbox, bot: Bot, alice: Person
) -> None:
    loop = asyncio.get_running_loop()
    poll = asyncio.create_task(bot.get_updates(timeout=30))
    await sandbox.wait_for_long_poll()

    started = loop.time()
    await alice.send_text("wake up")
    updates = await poll

    assert loop.time() - started < 1.0
    assert [u.message.text for u in updates if u.message] == ["wake up"]


async def test_newer_get_updates_terminates_the_waiting_one(
    sandbox: BotApiSandbox, bot: Bot
) -> None:
    first = asyncio.create_task(bot.get_updates(timeout=30))
    await sandbox.wait_for_long_poll()

    # A second bot instance with the same token, as when a deployment runs twice.
    async with client(sandbox) as second_instance:
        assert await second_instance.get_updates(timeout=0) == ()
    with pytest.raises(Conflict, match=r"(?i)terminated by other getUpdates request"):
        await first


async def test_unsupported_content_updates_parse(bot: Bot, alice: Person) -> None:
    await alice.send_photo()
    await alice.send_voice()
    await alice.send_sticker()

    messages = [u.message for u in await bot.get_updates()]

    assert [bool(m and m.photo) for m in messages] == [True, False, False]
    assert [bool(m and m.voice) for m in messages] == [False, True, False]
    assert [bool(m and m.sticker) for m in messages] == [False, False, True]
    assert "Alice sent a photo" in alice.transcript()


# --- callback queries ----------------------------------------------------------------------


async def test_press_round_trip_with_a_real_application(sandbox: BotApiSandbox) -> None:
    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_chat is not None
        await context.bot.send_message(
            update.effective_chat.id, "Pick a language", reply_markup=language_keyboard()
        )

    async def choose(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None
        await query.answer(f"Saved {query.data}")
        await query.edit_message_text("Language saved")

    app = (
        Application.builder()
        .token(TOKEN)
        .base_url(sandbox.base_url)
        .base_file_url(sandbox.base_file_url)
        .build()
    )
    app.add_handler(CommandHandler("start", start))
    app.add_handler(CallbackQueryHandler(choose))
    alice = sandbox.person(ALICE, "Alice")
    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0, timeout=5)
        try:
            await alice.send_text("/start")
            assert (await alice.next_message()).text == "Pick a language"

            answer = await alice.press("Engl")
            edited = await alice.next_message()
        finally:
            await app.updater.stop()
            await app.stop()

    assert answer == CallbackAnswer(text="Saved lang:en", show_alert=False)
    assert edited.edited
    assert edited.text == "Language saved"
    assert alice.transcript().splitlines() == [
        "Alice: /start",
        "Bot: Pick a language",
        "   [Čeština] [English]",
        "   [Help]",
        "Alice pressed [English]",
        "Bot (edited): Language saved",
    ]
    assert sandbox.pending_updates() == 0


async def test_answer_callback_query_only_once(
    sandbox: BotApiSandbox, bot: Bot, alice: Person
) -> None:
    await bot.send_message(ALICE, "Pick", reply_markup=language_keyboard())
    press = asyncio.create_task(alice.press("Čeština"))

    (update,) = await bot.get_updates(timeout=5)
    query = update.callback_query
    assert query is not None
    assert query.data == "lang:cs"
    assert isinstance(query.message, Message)
    assert query.message.reply_markup == language_keyboard()
    assert await query.answer("Hotovo", show_alert=True)

    assert await press == CallbackAnswer(text="Hotovo", show_alert=True)
    with pytest.raises(BadRequest, match=r"(?i)query is too old"):
        await query.answer()


async def test_press_failures_raise_assertion_errors(bot: Bot, alice: Person) -> None:
    await bot.send_message(ALICE, "Pick", reply_markup=language_keyboard())

    with pytest.raises(AssertionError, match=r"(?s)No button \[Deutsch\].*Bot: Pick"):
        await alice.press("Deutsch")
    with pytest.raises(AssertionError, match=r"(?i)no callback data"):
        await alice.press("Help")
    with pytest.raises(AssertionError, match=r"(?i)did not answer"):
        await alice.press_data("forged:data", timeout=0.05)

    (stale,) = [u for u in await bot.get_updates() if u.callback_query]
    assert stale.callback_query is not None
    assert stale.callback_query.data == "forged:data"
    with pytest.raises(BadRequest, match=r"(?i)query is too old"):
        await stale.callback_query.answer()


# --- flood control -------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
async def test_per_chat_flood_limit() -> None:
    limits = FloodLimits(global_per_second=1000, chat_per_second=1, chat_burst=10)
    async with running_sandbox(flood=limits) as box, client(box) as bot:
        box.person(ALICE, "Alice")
        box.person(BOB, "Bob")
        with pytest.raises(RetryAfter):
            for number in range(15):
                await bot.send_message(ALICE, f"message {number}")

        assert box.stats.messages_sent == 10
        assert box.stats.http_429 == 1
        await bot.send_message(BOB, "other chats are not affected")


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
async def test_global_flood_limit() -> None:
    limits = FloodLimits(global_per_second=3, chat_per_second=100, chat_burst=100)
    async with running_sandbox(flood=limits) as box, client(box) as bot:
        for user_id in range(1, 5):
            box.person(user_id, f"Person {user_id}")
        for user_id in range(1, 4):
            await bot.send_message(user_id, "hi")

        with pytest.raises(RetryAfter):
            await bot.send_message(4, "hi")
        assert box.stats.http_429 == 1


def test_flood_gate_refills_over_time() -> None:
    now = [0.0]
    gate = FloodGate(
        FloodLimits(global_per_second=100, chat_per_second=0.5, chat_burst=2), lambda: now[0]
    )

    assert gate.acquire(1) is None
    assert gate.acquire(1) is None
    assert gate.acquire(1) == 2
    now[0] = 1.0
    assert gate.acquire(1) == 1
    now[0] = 2.0
    assert gate.acquire(1) is None


def test_global_window_slides() -> None:
    now = [0.0]
    gate = FloodGate(FloodLimits(global_per_second=2, chat_burst=100), lambda: now[0])

    assert gate.acquire(1) is None
    now[0] = 0.5
    assert gate.acquire(2) is None
    assert gate.acquire(3) == 1
    now[0] = 1.01
    assert gate.acquire(3) is None


# --- files ---------------------------------------------------------------------------------


async def test_bot_document_round_trip(bot: Bot, alice: Person) -> None:
    content = b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n"

    sent = await bot.send_document(
        ALICE,
        InputFile(content, filename="invite.ics"),
        caption="<b>Invite</b>",
        parse_mode=ParseMode.HTML,
    )

    event = await alice.next_event()
    assert event.kind == "document"
    assert event.message is not None
    assert event.message.caption == "Invite"
    assert event.message.document is not None
    assert event.message.document["file_name"] == "invite.ics"
    assert sent.document is not None
    downloaded = await (await bot.get_file(sent.document.file_id)).download_as_bytearray()
    assert bytes(downloaded) == content
    assert alice.transcript() == "Bot sent document invite.ics: Invite"
    resent = await bot.send_document(ALICE, sent.document.file_id)
    assert resent.document is not None
    assert resent.document.file_unique_id == sent.document.file_unique_id


async def test_person_document_is_downloadable_by_the_bot(bot: Bot, alice: Person) -> None:
    await alice.send_document("report.pdf", b"%PDF-1.4 minutes", "application/pdf", "Minutes")

    (update,) = await bot.get_updates()
    message = update.message
    assert message is not None
    assert message.caption == "Minutes"
    assert message.document is not None
    assert message.document.mime_type == "application/pdf"
    file = await bot.get_file(message.document.file_id)
    assert file.file_path is not None
    assert file.file_path.endswith(".pdf")
    assert bytes(await file.download_as_bytearray()) == b"%PDF-1.4 minutes"
    with pytest.raises(BadRequest, match=r"(?i)invalid file_id"):
        await bot.get_file("no-such-file")


async def test_unknown_file_path_is_not_found(sandbox: BotApiSandbox) -> None:
    url = f"{sandbox.base_file_url}{TOKEN}/documents/file_99.pdf"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 404


# --- webhook -------------------------------------------------------------------------------


@asynccontextmanager
async def recording_webhook(
    statuses: list[int],
) -> AsyncIterator[tuple[str, asyncio.Queue[tuple[str | None, dict[str, Any]]]]]:
    """A tiny webhook receiver answering with `statuses` in turn (then 200)."""
    received: asyncio.Queue[tuple[str | None, dict[str, Any]]] = asyncio.Queue()

    async def receive(request: web.Request) -> web.Response:
        secret = request.headers.get("X-Telegram-Bot-Api-Secret-Token")
        await received.put((secret, await request.json()))
        return web.Response(status=statuses.pop(0) if statuses else 200)

    async with webhook_receiver(receive) as url:
        yield url, received


@asynccontextmanager
async def webhook_receiver(
    receive: Callable[[web.Request], Awaitable[web.Response]],
) -> AsyncIterator[str]:
    """A webhook served by `receive`; its URL."""
    app = web.Application()
    app.router.add_post("/hook", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    finally:
        await runner.cleanup()


async def test_webhook_delivers_with_secret_and_retries(
    sandbox: BotApiSandbox, bot: Bot, alice: Person
) -> None:
    async with recording_webhook([500]) as (url, received):
        await alice.send_text("queued before the webhook")
        assert await bot.set_webhook(url, secret_token="s3cret-token")
        assert sandbox.webhook_url == url
        assert sandbox.webhook_secret == "s3cret-token"

        failed_secret, failed = await received.get()
        retried_secret, retried = await received.get()
        await alice.send_text("second")
        _, second = await received.get()

        assert failed_secret == retried_secret == "s3cret-token"
        assert failed == retried
        assert retried["message"]["text"] == "queued before the webhook"
        assert second["message"]["text"] == "second"
        assert second["update_id"] == retried["update_id"] + 1
        with pytest.raises(Conflict, match=r"(?i)webhook is active"):
            await bot.get_updates()
        info = await bot.get_webhook_info()
        assert info.url == url
        assert info.last_error_message == "Wrong response from the webhook: 500"

        assert await bot.delete_webhook()
        assert sandbox.webhook_url is None


async def test_webhook_sends_a_chats_updates_one_at_a_time_and_chats_side_by_side(
    sandbox: BotApiSandbox, bot: Bot, alice: Person
) -> None:
    """As Telegram: a chat's next update only after the bot answered the last one 2xx, other
    chats' updates meanwhile, at most max_connections at once; a broken connection is retried."""
    bob, carol = sandbox.person(BOB, "Bob"), sandbox.person(1003, "Carol")
    both, gate, done = asyncio.Event(), asyncio.Event(), asyncio.Event()
    answering: list[str] = []  # texts whose POST waits for its answer now
    order: list[str] = []
    dropped: list[str] = []

    async def receive(request: web.Request) -> web.Response:
        text = (await request.json())["message"]["text"]
        if text == "alice 1" and not dropped:  # the first try dies with the connection
            dropped.append(text)
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=200)
        answering.append(text)
        if len(answering) == 2:
            both.set()
        await gate.wait()
        answering.remove(text)
        order.append(text)
        if len(order) == 4:
            done.set()
        return web.Response(status=200)

    async with webhook_receiver(receive) as url:
        for person, text in ((alice, "alice 1"), (alice, "alice 2"), (bob, "bob"), (carol, "c")):
            await person.send_text(text)
        assert await bot.set_webhook(url, max_connections=2)
        await asyncio.wait_for(both.wait(), timeout=30)
        assert sandbox.webhook_posts == 2  # no third while two wait
        assert sorted(answering) == ["alice 1", "bob"]  # the retry, not alice's next
        gate.set()
        await asyncio.wait_for(done.wait(), timeout=30)
    assert dropped == ["alice 1"]
    assert order.index("alice 1") < order.index("alice 2")
    info = await bot.get_webhook_info()
    assert info.last_error_message == "Connection failed: ServerDisconnectedError"


# --- commands and raw HTTP -----------------------------------------------------------------


async def test_my_commands_per_scope_and_language(sandbox: BotApiSandbox, bot: Bot) -> None:
    default = [BotCommand("start", "Start"), BotCommand("help", "Help")]
    czech = [BotCommand("start", "Začít")]

    await bot.set_my_commands(default)
    await bot.set_my_commands(czech, scope=BotCommandScopeChat(ALICE), language_code="cs")

    assert sandbox.my_commands() == [
        {"command": "start", "description": "Start"},
        {"command": "help", "description": "Help"},
    ]
    assert sandbox.my_commands(scope={"type": "chat", "chat_id": ALICE}, language_code="cs") == [
        {"command": "start", "description": "Začít"}
    ]
    assert sandbox.my_commands(language_code="cs") == []
    assert await bot.get_my_commands() == tuple(default)
    assert await bot.delete_my_commands()
    assert sandbox.my_commands() == []
    with pytest.raises(BadRequest, match=r"(?i)BOT_COMMAND_INVALID"):
        await bot.set_my_commands([BotCommand("Start", "Upper case is not allowed")])


async def test_raw_http_json_form_and_case_insensitive_method(
    sandbox: BotApiSandbox, alice: Person
) -> None:
    url = f"{sandbox.base_url}{TOKEN}"
    markup = {"inline_keyboard": [[{"text": "Go", "callback_data": "go"}]]}
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{url}/SENDMESSAGE",
            json={
                "chat_id": str(ALICE),
                "text": 123,
                "reply_markup": markup,
            },
        ) as response:
            body = await response.json()
        async with session.get(f"{url}/sendMessage", params={"chat_id": "bad", "text": "x"}) as bad:
            bad_body = await bad.json()

    assert body["ok"]
    assert body["result"]["text"] == "123"
    assert alice.last_bot_message().buttons() == [[("Go", "go")]]
    assert bad.status == 400
    assert bad_body == {
        "ok": False,
        "error_code": 400,
        "description": "Bad Request: chat not found",
    }
    assert sandbox.stats.requests["sendMessage"] == 2


async def test_round_trip_time_is_emulated() -> None:
    async with running_sandbox(rtt_ms=50) as box, client(box) as bot:
        loop = asyncio.get_running_loop()
        started = loop.time()
        await bot.get_me()

        assert loop.time() - started >= 0.05


async def test_a_method_can_be_made_to_fail_the_next_times(
    sandbox: BotApiSandbox, bot: Bot, alice: Person
) -> None:
    sandbox.fail_next("sendMessage", 502, times=2)
    for _ in range(2):
        with pytest.raises(NetworkError, match="Bad Gateway"):
            await bot.send_message(ALICE, "lost")
    assert (await bot.send_message(ALICE, "third time")).text == "third time"
    assert sandbox.stats.http_errors[502] == 2


# --- faults at a rate ----------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")  # retry_after
async def test_faults_at_a_rate_replay_from_the_seed(alice: Person) -> None:
    """The same seed fails the same calls the same way; every kind of the mix turns up and
    surfaces as the exception python-telegram-bot raises for it."""
    kinds_seen: list[list[str]] = []
    for _run in range(2):
        faults = Faults(rate=0.5, seed=7, retry_after=1, hold_seconds=0.3)
        async with running_sandbox(flood=NO_FLOOD, faults=faults) as box:
            box.person(ALICE, "Alice")
            request = HTTPXRequest(read_timeout=0.1)
            async with Bot(TOKEN, base_url=box.base_url, request=request) as bot:
                outcomes = []
                for number in range(40):
                    try:
                        await bot.send_message(ALICE, f"message {number}")
                        outcomes.append("ok")
                    except RetryAfter:
                        outcomes.append("429")
                    except TimedOut:
                        outcomes.append("timeout")
                    except NetworkError as error:
                        outcomes.append("502" if "Bad Gateway" in error.message else "other")
            await box.wait_for_calls_to_end()
            kinds_seen.append(outcomes)
            # One call at a time here, so the record is in the order of the calls.
            seen_as = {"429": "429", "500": "other", "502": "502", "drop": "other"}
            injected = [seen_as.get(record.kind, record.kind) for record in box.faults.injected]
            assert injected == [outcome for outcome in outcomes if outcome != "ok"]
            assert {"500", "drop"} <= {record.kind for record in box.faults.injected}
            # A "timeout" send did arrive; the other faults sent nothing.
            arrived = [m for m in box.people[ALICE].messages.values() if m.from_bot]
            assert len(arrived) == outcomes.count("ok") + outcomes.count("timeout")
            timed_out = [r for r in box.faults.injected if r.kind == "timeout"]
            assert all(r.message_id in box.people[ALICE].messages for r in timed_out)
    assert kinds_seen[0] == kinds_seen[1]
    assert {"ok", "429", "timeout", "502", "other"} <= set(kinds_seen[0])


async def test_a_failed_long_poll_confirms_nothing(alice: Person) -> None:
    """getUpdates meets only quick faults, and the updates it would have returned stay queued
    until the bot asks with a higher offset: that moment is in the journal."""
    faults = Faults(rate=1.0, mix={"500": 1.0, "timeout": 1.0})
    async with running_sandbox(flood=NO_FLOOD) as box:
        person = box.person(ALICE, "Alice")
        await person.send_text("hello")
        update_id = person.last_update_id
        assert update_id is not None
        async with client(box) as bot:
            box.inject(faults)
            with pytest.raises(NetworkError):
                await bot.get_updates(offset=update_id + 1)  # a 500, never a hold
            assert box.pending_updates() == 1
            assert box.journal[update_id].acknowledged_at is None
            box.inject(Faults())
            (update,) = await bot.get_updates()
            assert update.message is not None and update.message.text == "hello"
            assert box.journal[update_id].acknowledged_at is None  # delivered, not confirmed
            assert await bot.get_updates(offset=update_id + 1) == ()
        entry = box.journal[update_id]
        assert entry.acknowledged_at is not None
        assert (entry.kind, entry.chat_id, entry.what) == ("message", ALICE, "hello")
        assert [record.kind for record in box.faults.injected] == ["500"]


async def test_a_held_call_waits_without_effect_until_released(
    sandbox: BotApiSandbox, bot: Bot, alice: Person
) -> None:
    sandbox.hold_next("sendMessage")
    sending = asyncio.create_task(bot.send_message(ALICE, "in flight"))
    assert await sandbox.wait_for_calls(lambda: sandbox.held == 1, timeout=5)
    assert not sending.done()
    sandbox.release_held()
    with pytest.raises(NetworkError, match="Bad Gateway"):
        await sending
    assert sandbox.held == 0 and alice.messages == {}
    assert (await bot.send_message(ALICE, "next")).text == "next"


async def test_a_tap_goes_out_without_waiting_for_the_answer(bot: Bot, alice: Person) -> None:
    sent = await bot.send_message(ALICE, "Pick", reply_markup=language_keyboard())
    answer = await alice.tap("lang:en", message_id=sent.message_id)
    (update,) = await bot.get_updates()
    assert update.update_id == alice.last_update_id
    assert update.callback_query is not None and update.callback_query.data == "lang:en"
    assert not answer.done()
    await update.callback_query.answer("ok")
    assert (await answer).text == "ok"
