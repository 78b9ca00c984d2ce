"""Local stand-in for the Telegram Bot API with simulated people, for tests and demos."""

from .flood import FloodLimits
from .models import BotMessage, CallbackAnswer, ChatEvent, SandboxStats
from .people import Person
from .server import BotApiSandbox

__all__ = [
    "BotApiSandbox",
    "BotMessage",
    "CallbackAnswer",
    "ChatEvent",
    "FloodLimits",
    "Person",
    "SandboxStats",
]
