"""The API's client of the vault's internal listener: mutual TLS, explicit timeouts, and
the vault's errors translated back into Bastion errors."""

import ssl
from typing import Any

import httpx

from bastion.kernel.errors import (
    AuthenticationFailed,
    BastionError,
    InvalidRequest,
    PermissionDenied,
    ProcessorUnavailable,
    ResourceMissing,
    VaultUnavailable,
)
from bastion.platform.db import Tenant

CONNECTIONS_MAX = 100
# The vault closes a connection idle for VAULT_KEEP_ALIVE_S; the client lets go of it well
# before, so it never sends a request down a connection the vault is closing at that moment.
VAULT_KEEP_ALIVE_S = 5
CLIENT_KEEP_ALIVE_S = 2.0
_ERRORS: dict[int, type[BastionError]] = {
    400: InvalidRequest,
    401: AuthenticationFailed,
    403: PermissionDenied,
    404: ResourceMissing,
    413: InvalidRequest,
    502: ProcessorUnavailable,
}


class VaultClient:
    def __init__(self, base_url: str, ssl_context: ssl.SSLContext, *, timeout_s: float) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url,
            verify=ssl_context,
            # Neither HTTPS_PROXY nor SSL_CERT_FILE in the environment may reroute or re-trust
            # the API's door to the vault: only the install's private CA and the vault's URL.
            trust_env=False,
            timeout=httpx.Timeout(timeout_s),
            limits=httpx.Limits(
                max_connections=CONNECTIONS_MAX,
                max_keepalive_connections=CONNECTIONS_MAX,
                keepalive_expiry=CLIENT_KEEP_ALIVE_S,
            ),
        )

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            response = await self._client.post(path, json=body)
        except httpx.HTTPError as failure:
            raise VaultUnavailable(f"The vault could not be reached ({type(failure).__name__}).") from None
        try:
            answer: dict[str, Any] = response.json()
        except ValueError:
            raise VaultUnavailable(f"The vault answered {response.status_code} without a JSON body.") from None
        if response.status_code >= 400:
            error = answer.get("error", {})
            kind = _ERRORS.get(response.status_code)
            if kind is None:
                raise VaultUnavailable(f"The vault failed ({response.status_code}).")
            refusal = kind(str(error.get("message", "The vault refused the request")), param=error.get("param"))
            # Passed on as the vault said it: its codes are defined in its own zone (`bastion.vault.errors`).
            refusal.code = str(error.get("code", refusal.code))
            raise refusal
        return answer

    async def exchange_token(self, tenant: Tenant, token_id: str, payment_method_id: str) -> dict[str, Any]:
        """Use a single-use token for `payment_method_id`: the card's metadata and the token's signals."""
        return await self._post(
            f"/internal/v1/tokens/{token_id}/exchange",
            {"merchant_id": tenant.merchant_id, "livemode": tenant.livemode, "payment_method_id": payment_method_id},
        )

    async def forward(
        self, tenant: Tenant, *, card: str, connector: str, request: dict[str, Any], answer: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """Have the vault send `request` (a template with `{{card.number}}`... in its body) to a
        connector; with `answer` (name -> JSON Pointer), only those fields of its answer come back."""
        body: dict[str, Any] = {
            "merchant_id": tenant.merchant_id,
            "livemode": tenant.livemode,
            "card": card,
            "connector": connector,
            "request": request,
        }
        if answer is not None:
            body["answer"] = {"fields": answer}
        return await self._post("/internal/v1/forward", body)

    async def close(self) -> None:
        await self._client.aclose()
