"""The layers hold: the core and the services know nothing of Telegram (only the transport does)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Alembic's environment runs the migrations when loaded: alembic loads it, nothing imports it.
NOT_IMPORTABLE = {"bot.core.migrations.env"}

IMPORT_ALL = """
import importlib, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
print("\\n".join(sorted(m for m in sys.modules if m.split(".")[0] == "telegram")))
"""


def _modules(*packages: str) -> list[str]:
    """Every module of these packages, found from the files (not by importing them)."""
    found: list[str] = []
    for package in packages:
        for path in sorted((ROOT / package.replace(".", "/")).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            if name not in NOT_IMPORTABLE:
                found.append(name)
    return found


def test_the_core_and_the_services_import_nothing_of_telegram() -> None:
    modules = _modules("bot.core", "bot.services")
    assert "bot.core.outbox" in modules and "bot.services.members" in modules
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}  # this tree, not an installed one
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL, *modules],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.split() == []
