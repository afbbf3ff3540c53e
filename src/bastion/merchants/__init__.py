"""Merchants, their API keys, scopes and modes."""

from bastion.merchants.domain import SCOPES, Principal
from bastion.merchants.service import IssuedKey, authenticate, create_api_key, create_merchant, secret_digest

__all__ = ["SCOPES", "IssuedKey", "Principal", "authenticate", "create_api_key", "create_merchant", "secret_digest"]
