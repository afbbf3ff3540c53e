"""The vault builds exactly the token its public route documents (ADR 11), and shows no
more of the card than brand, last 4, expiry and funding."""

from datetime import UTC, datetime

from bastion.vault import service
from bastion.vault.domain import CardDetails
from bastion.vault.resources import Token
from bastion.vault.routes import public_router
from tests.support.resources import check_resource, documented_properties

CARD = CardDetails(number="4242424242424242", exp_month=12, exp_year=2034, cvc="123", name="Ada Lovelace")


def test_token_resource() -> None:
    result = service.token_resource("tok_0000000000000000000000000001", CARD, datetime(2025, 1, 2, tzinfo=UTC), livemode=False)
    documented = documented_properties(public_router)
    check_resource(Token, result, documented["Token"])
    assert list(result["card"]) == documented["TokenCard"]
    assert result["expires_at"] - result["created"] == service.TOKEN_TTL.total_seconds()
    assert not {CARD.number, CARD.cvc, CARD.name} & {str(value) for value in result["card"].values()}
