"""A device's id, from what the card fields saw of it: the vault counts card testing by it, and
the risk engine its velocity and its new cards."""

from collections.abc import Mapping
from hashlib import sha256
from typing import Any

import orjson


def device_id(device: Mapping[str, Any]) -> str | None:
    """A digest of the device signals (`timezone`, `languages`, `screen`, `platform`,
    `user_agent_sha256`), when they hold the user agent's; None for a client that sends none."""
    if device.get("user_agent_sha256") is None:
        return None
    return sha256(orjson.dumps(device, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]
