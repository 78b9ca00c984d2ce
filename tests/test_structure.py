"""The house rules of the code's structure, checked on every run of the suite.

- The layers and the directions between them are import-linter contracts (pyproject.toml,
  `[tool.importlinter]`): the wiring over the dialogs over the transport over the services over
  the core over the pure time logic; the core, the services and the time logic import nothing of
  Telegram; no cycles between services; the stand-in is independent of the bot.
- Importing every module of the core and the services loads no `telegram` module at all.
- No module imports another module's `_private` name.
- No module of the application is much over 600 lines.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bot", "handlers", "scheduling")
MAX_LINES = 650  # "about 600"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
CORE = ("core", "services")  # the folders of bot/ that must not speak Telegram


def _modules() -> list[Path]:
    return sorted(
        path
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if "migrations" not in path.parts
    )


def _name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


# Loads every module it is given, then prints the telegram modules that came with them.
IMPORT_ALL = """
import importlib, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
print("\\n".join(sorted(m for m in sys.modules if m.split(".")[0] == "telegram")))
"""


def test_the_core_and_the_services_import_nothing_of_telegram() -> None:
    """What the contracts check statically, at run time: nothing the core or the services
    import, however indirectly or late, brings Telegram in. (The migrations are left out:
    Alembic loads them, and importing their environment runs them.)"""
    modules = [
        _name(path)
        for path in _modules()
        if any(path.is_relative_to(ROOT / "bot" / folder) for folder in CORE)
    ]
    assert "bot.core.outbox" in modules and "bot.services.members" in modules
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL, *modules],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},  # this tree, not an installed one
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.split() == []


def _lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    """lint-imports on the packages under `tree`, with the contracts of its pyproject.toml."""
    environment = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tree,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_import_contracts_are_kept() -> None:
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


# Each contract broken once, in a copy of the tree: the module, the import added to it, and
# what lint-imports must then report.
BREAKS = {
    "layers": (
        "bot/core/clock.py",
        "from bot.services import errors",
        "bot.core.clock -> bot.services.errors",
    ),
    "telegram-free": ("bot/core/clock.py", "import telegram", "bot.core.clock -> telegram"),
    "web-page": (
        "bot/transport/web/limits.py",
        "import telegram",
        "bot.transport.web.limits -> telegram",
    ),
    "pure-time": ("scheduling/policy.py", "import sqlalchemy", "scheduling.policy -> sqlalchemy"),
    "stand-in": (
        "bot/sandbox/errors.py",
        "from bot.services import members",
        "bot.sandbox.errors -> bot.services.members",
    ),
    "services-acyclic": (
        "bot/services/audit.py",
        "from bot.services import cases",
        ".audit -> .cases",
    ),
    "dialogs": (
        "handlers/poll.py",
        "from handlers import tasks",
        "handlers.poll -> handlers.tasks",
    ),
}


@pytest.mark.parametrize("contract", sorted(BREAKS))
def test_every_contract_fails_when_broken(tmp_path: Path, contract: str) -> None:
    """The contracts can fail: a copy of the tree with one import against the contract."""
    module, line, reported = BREAKS[contract]
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package)
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    broken = tmp_path / module
    broken.write_text(broken.read_text() + f"\n{line}  # against the contract\n")
    result = _lint_imports(tmp_path)
    assert result.returncode != 0
    assert "1 broken" in result.stdout
    assert reported in result.stdout


def _imported_privates(path: Path) -> list[str]:
    """`from project.module import _name`, and `module._name` where module is a project module
    imported here (by its alias, or by its dotted name: `bot.services.members._name`)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[str] = []
    project_aliases: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module.split(".")[0] not in PACKAGES:
                continue
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append(f"{node.module}.{alias.name}")
                if (ROOT / node.module.replace(".", "/") / f"{alias.name}.py").exists():
                    project_aliases.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in PACKAGES and alias.asname:
                    project_aliases.add(alias.asname)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name | ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            owner = ast.unparse(node.value)
            if owner in project_aliases or _is_module(owner):
                found.append(f"{owner}.{node.attr}")
    return found


def _is_module(dotted: str) -> bool:
    """A dotted name of one of the project's modules, e.g. bot.services.members."""
    path = ROOT / dotted.replace(".", "/")
    return dotted.split(".", maxsplit=1)[0] in PACKAGES and (
        path.with_suffix(".py").exists() or path.is_dir()
    )


def test_no_module_uses_another_modules_private_names() -> None:
    offences = {
        str(path.relative_to(ROOT)): names
        for path in _modules()
        if (names := _imported_privates(path))
    }
    assert offences == {}


def test_the_private_name_check_sees_every_form(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from bot.services.members import _secret\n"
        "from bot.services import members\n"
        "members._hidden()\n"
        "import bot.services.cases\n"
        "bot.services.cases._deep()\n"
    )
    assert _imported_privates(sample) == [
        "bot.services.members._secret",
        "members._hidden",
        "bot.services.cases._deep",
    ]


@pytest.mark.parametrize("path", _modules(), ids=lambda path: str(path.relative_to(ROOT)))
def test_no_module_is_much_over_600_lines(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{lines} lines: split it by what its parts are about"


def test_every_dialog_is_in_the_dialogs_contract() -> None:
    """A new dialog (a module of handlers/ exposing its handlers) is held to the contract too."""
    with (ROOT / "pyproject.toml").open("rb") as file:
        contracts = tomllib.load(file)["tool"]["importlinter"]["contracts"]
    (dialogs,) = [contract for contract in contracts if contract["id"] == "dialogs"]
    exposing = {
        f"handlers.{path.stem}"
        for path in (ROOT / "handlers").glob("*.py")
        if re.search(r"^def (command_|general_)?handlers\(", path.read_text(), re.M)
    }
    assert set(dialogs["modules"]) == exposing
