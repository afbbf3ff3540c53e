"""The API's interactive docs in a real browser: the Swagger UI page renders the API's
operations from assets served by the API itself (not a blank page)."""

import pytest
from playwright.async_api import Browser

from tests.support.postgres import ApiProcess

TIMEOUT_MS = 20_000

pytestmark = pytest.mark.slow


async def test_the_docs_page_renders_the_swagger_ui_with_every_operation(browser: Browser, api_process: ApiProcess) -> None:
    context = await browser.new_context()
    try:
        page = await context.new_page()
        failed: list[str] = []
        page.on("requestfailed", lambda request: failed.append(request.url))
        page.on("pageerror", lambda error: failed.append(str(error)))
        await page.goto(f"{api_process.url}/docs")
        title = page.locator(".swagger-ui .info .title")
        await title.wait_for(timeout=TIMEOUT_MS)
        assert "Bastion" in await title.inner_text()
        await page.locator(".opblock-summary-path", has_text="/v1/customers").first.wait_for(timeout=TIMEOUT_MS)
        assert await page.locator(".opblock").count() >= 10
        assert failed == []
    finally:
        await context.close()
