"""What the vault's origin serves to browsers besides tokens (its scripts, and nothing else), and
what it refuses to tokenize whatever the input: live-mode cards without an HSM."""

import httpx
import pytest

from tests.support.platform import Platform
from tests.support.postgres import ApiProcess


@pytest.mark.parametrize(
    ("name", "media_type"),
    [("bastion.js", "text/javascript"), ("card-fields.js", "text/javascript"), ("card-fields.css", "text/css")],
)
async def test_scripts_are_served_for_other_origins_to_load(vault: ApiProcess, name: str, media_type: str) -> None:
    async with httpx.AsyncClient(base_url=vault.url) as client:
        response = await client.get(f"/static/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(media_type)
    # Exactly one policy each: a merchant page on another origin loads bastion.js.
    assert response.headers.get_list("cross-origin-resource-policy") == ["cross-origin"]
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_nothing_else_is_served(vault: ApiProcess) -> None:
    async with httpx.AsyncClient(base_url=vault.url) as client:
        for path in ("/static/card-fields.html", "/static/..%2F..%2Fservice.py", "/static/", "/internal/v1/forward", "/docs"):
            response = await client.get(path)
            assert response.status_code in (404, 405), path


async def test_live_mode_cards_are_refused_under_the_local_keyring(platform: Platform, vault: ApiProcess) -> None:
    live = await platform.merchant(livemode=True)
    card = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2040, "cvc": "123"}
    async with httpx.AsyncClient(base_url=vault.url) as client:
        response = await client.post("/v1/tokens", json={"card": card}, headers={"Authorization": f"Bearer {live.publishable}"})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "live_mode_requires_hsm"
