"""A real headless browser for the web page's tests: Debian's Chromium, driven by Playwright
(no browser download), with axe-core's accessibility rules run inside it. `.ci/run` installs
Chromium when missing (as root); without it, those tests are skipped and say why."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Browser, Page, async_playwright

PHONE = {"width": 390, "height": 844}  # a common phone, in CSS pixels
DESKTOP = {"width": 1280, "height": 900}
# As the machine's probe starts it: no sandbox as root, and nothing fetched from the network.
_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium() -> str | None:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and Path("/usr/bin/chromium").exists():
        found = "/usr/bin/chromium"
    return found


SKIP_REASON = "Chromium is not installed (Debian's chromium; .ci/run installs it as root)"


@asynccontextmanager
async def running() -> AsyncIterator[Browser]:
    executable = chromium()
    assert executable is not None, SKIP_REASON
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, args=_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


async def serious_violations(page: Page) -> list[str]:
    """axe-core's findings on the page that are serious or critical, one line each."""
    results = await Axe().run(page)
    return [
        f"{violation['id']}: {violation['help']}"
        for violation in results.response["violations"]
        if violation.get("impact") in ("serious", "critical")
    ]
