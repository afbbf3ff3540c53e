"""Files served to browsers arrive whole through a real server: the assets of the API's `/docs`
page (Swagger UI, streamed from its package by the edge middleware's app) and the vault's
scripts. A streaming response stops when it hears `http.disconnect`, so the edge must not
invent one after replaying the body it read."""

import re
from importlib import resources
from pathlib import Path

import httpx
from swagger_ui_bundle import swagger_ui_path

from tests.support.postgres import ApiProcess


async def test_every_asset_of_the_docs_page_arrives_whole(api_process: ApiProcess) -> None:
    async with httpx.AsyncClient(base_url=api_process.url, timeout=10) as client:
        page = await client.get("/docs")
        assert page.status_code == 200
        assets = re.findall(r"""(?:src|href)=['"](/docs/assets/[^'"]+)['"]""", page.text)
        assert len(assets) >= 3, page.text  # the bundle, its styles, the icon
        for path in assets:
            response = await client.get(path)
            assert response.status_code == 200, path
            expected = (Path(swagger_ui_path) / path.removeprefix("/docs/assets/")).read_bytes()
            assert response.headers["content-length"] == str(len(expected)), path
            assert response.content == expected, path
    assert "ASGI callable returned without completing response" not in api_process.logs()


async def test_the_vaults_static_files_arrive_whole(vault: ApiProcess) -> None:
    async with httpx.AsyncClient(base_url=vault.url, timeout=10) as client:
        for name in ("bastion.js", "card-fields.js", "card-fields.css"):
            response = await client.get(f"/static/{name}")
            assert response.status_code == 200, name
            assert response.content == (resources.files("bastion.vault") / "static" / name).read_bytes(), name
