"""Merchants, their API keys, scopes and modes, and the errors its functions refuse with."""

from bastion.merchants.domain import SCOPES, Principal
from bastion.merchants.errors import OriginInvalid, OriginsLimitReached, ScopeUnknown
from bastion.merchants.service import (
    IssuedKey,
    add_allowed_origin,
    allowed_origins,
    authenticate,
    create_api_key,
    create_merchant,
    remove_allowed_origin,
    secret_digest,
)

__all__ = [
    "SCOPES",
    "IssuedKey",
    "OriginInvalid",
    "OriginsLimitReached",
    "Principal",
    "ScopeUnknown",
    "add_allowed_origin",
    "allowed_origins",
    "authenticate",
    "create_api_key",
    "create_merchant",
    "remove_allowed_origin",
    "secret_digest",
]
