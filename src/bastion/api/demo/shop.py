"""The demo shop's merchant, made once per install by `bastion serve`: test mode only."""

from pathlib import Path

from bastion.api.demo.routes import load_credentials, save_credentials
from bastion.kernel.ids import new_id
from bastion.merchants import add_allowed_origin, create_api_key, create_merchant
from bastion.platform.crypto import KeyedHasher
from bastion.platform.db import Actor, Database, Tenant

_ACTOR = Actor(id="demo-setup")
_SCOPES = ["payment_methods:read", "payment_methods:write", "payment_intents:read", "payment_intents:write"]


async def ensure_demo_shop(database: Database, hasher: KeyedHasher, data_dir: Path, origin: str) -> str:
    """The demo merchant's id; its page `origin` is registered to frame the card fields."""
    saved = load_credentials(data_dir)
    if saved is not None:
        # The API may listen elsewhere than last time: its origin must still frame the fields.
        async with database.unit_of_work(Tenant(saved["merchant_id"], livemode=False), _ACTOR) as uow:
            await add_allowed_origin(uow, origin)
            if saved.get("scopes") != " ".join(_SCOPES):
                # A shop made by an older Bastion, whose key cannot do what the page does now.
                issued = await create_api_key(uow, hasher, _SCOPES)
                saved = saved | {"secret": issued.secret, "publishable": issued.publishable, "scopes": " ".join(_SCOPES)}
                save_credentials(data_dir, saved)
        return saved["merchant_id"]
    merchant_id = new_id("mer")
    async with database.unit_of_work(Tenant(merchant_id, livemode=False), _ACTOR) as uow:
        await create_merchant(uow, "Bastion demo shop")
        issued = await create_api_key(uow, hasher, _SCOPES)
        await add_allowed_origin(uow, origin)
    save_credentials(
        data_dir,
        {"merchant_id": merchant_id, "secret": issued.secret, "publishable": issued.publishable, "scopes": " ".join(_SCOPES)},
    )
    return merchant_id
