"""The browser of the end-to-end tests: Debian's chromium driven by Playwright."""

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, async_playwright

# Debian's chromium (`make test` installs it: scripts/system-packages); never a downloaded browser.
CHROMIUM = "/usr/bin/chromium"
# What the probe of this machine found Chromium needs headless, offline and as root.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield launched
        await launched.close()
