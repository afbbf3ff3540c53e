"""What the platform charges each merchant: a price per currency set by an operator
(`bastion merchant pricing set`), the default price for any other (docs/payments.md, Fees)."""

from bastion import audit
from bastion.kernel.errors import ResourceMissing
from bastion.kernel.money import exponent
from bastion.payments import repository
from bastion.payments.domain import Pricing
from bastion.payments.resources import MerchantPrice
from bastion.platform.db import AnyRow, UnitOfWork


def _price(row: AnyRow) -> MerchantPrice:
    return MerchantPrice(currency=row["currency"], basis_points=row["basis_points"], fixed_minor=row["fixed_minor"])


async def set_price(uow: UnitOfWork, currency: str, basis_points: int, fixed_minor: int) -> MerchantPrice:
    """The tenant's merchant pays `basis_points` / 10,000 of each capture in `currency`, plus
    `fixed_minor`, from now on; audited."""
    exponent(currency)
    pricing = Pricing(basis_points, fixed_minor)  # refuses what is out of bounds, naming the field
    merchant_id = uow.tenant.merchant_id
    before = await _price_of(uow, currency)
    row = await repository.upsert_pricing(
        uow.connection,
        merchant_id,
        currency,
        basis_points=pricing.basis_points,
        fixed_minor=pricing.fixed_minor,
        moment=uow.now(),
    )
    if row is None:
        raise ResourceMissing(f"No such merchant: '{merchant_id}'", param="merchant")
    after = _price(row)
    audit.record(
        uow,
        action_type="merchant_pricing.set",
        resource_type="merchant_pricing",
        resource_id=f"{merchant_id}:{currency}",
        before=before,
        after=after,
    )
    return after


async def prices(uow: UnitOfWork) -> list[MerchantPrice]:
    """The prices set for the tenant's merchant, by currency; every other currency pays the default."""
    return [_price(row) for row in await repository.pricing_rows(uow.connection, uow.tenant.merchant_id)]


async def _price_of(uow: UnitOfWork, currency: str) -> MerchantPrice | None:
    return next((price for price in await prices(uow) if price["currency"] == currency), None)


async def price_in(uow: UnitOfWork, currency: str) -> tuple[Pricing, bool]:
    """The price the tenant's merchant pays in `currency`, and whether an operator set it
    (otherwise it is the default)."""
    exponent(currency)
    price = await _price_of(uow, currency)
    if price is None:
        return Pricing.default(currency), False
    return Pricing(price["basis_points"], price["fixed_minor"]), True
