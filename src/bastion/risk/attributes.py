"""The attribute catalogue: every value a rule may name (`:amount_in_usd:`), its type, and the
kind of list it may be looked up in (`:customer_email: in @vip_emails`). `GET
/v1/risk/attributes` serves it; the rules checker refuses any other name (docs/risk.md)."""

from dataclasses import dataclass
from enum import StrEnum


class ValueType(StrEnum):
    NUMBER = "number"
    STRING = "string"
    BOOLEAN = "boolean"
    IP = "ip"


class ListKind(StrEnum):
    """What a list (`@name`) holds; an attribute is looked up only in lists of its own kind."""

    CARD_FINGERPRINT = "card_fingerprint"
    EMAIL = "email"
    EMAIL_DOMAIN = "email_domain"
    IP = "ip"  # addresses and CIDR ranges
    DEVICE_ID = "device_id"
    CARD_BIN = "card_bin"
    COUNTRY = "country"


@dataclass(frozen=True, slots=True)
class Attribute:
    name: str
    type: ValueType
    description: str
    list_kind: ListKind | None = None


# Velocity counters: what is counted, per whom, over which window (docs/risk.md, Velocity).
VELOCITY_SUBJECTS = {
    "card": "card fingerprint",
    "customer": "customer",
    "email": "email address",
    "ip": "IP address",
    "device": "device id",
}
VELOCITY_WINDOWS = {"hourly": "the last hour", "daily": "the last 24 hours", "weekly": "the last 7 days", "all_time": "all time"}
_VELOCITY_MEASURES = {
    "attempts_per": "Confirm attempts",
    "charges_per": "Successful charges",
    "declines_per": "Declined attempts",
    "amount_in_usd_per": "The sum in US dollars of the amounts attempted",
}
# Distinct cards seen with one IP address, device or customer.
_CARD_COUNT_SUBJECTS = ("ip", "device", "customer")


def _velocity() -> list[Attribute]:
    counters = [
        Attribute(
            f"{measure}_{subject}_{window}",
            ValueType.NUMBER,
            f"{what} with this {VELOCITY_SUBJECTS[subject]} over {span}, the current attempt included.",
        )
        for measure, what in _VELOCITY_MEASURES.items()
        for subject in VELOCITY_SUBJECTS
        for window, span in VELOCITY_WINDOWS.items()
    ]
    counters += [
        Attribute(
            f"card_count_for_{subject}_{window}",
            ValueType.NUMBER,
            f"Distinct cards used with this {VELOCITY_SUBJECTS[subject]} over {span}, the current one included.",
        )
        for subject in _CARD_COUNT_SUBJECTS
        for window, span in VELOCITY_WINDOWS.items()
    ]
    return counters


_PAYMENT = [
    Attribute("amount", ValueType.NUMBER, "The amount, in the currency's minor unit (2000 for 20.00 EUR)."),
    Attribute("currency", ValueType.STRING, "The three-letter ISO currency code."),
    Attribute("amount_in_usd", ValueType.NUMBER, "The amount in US dollars (major unit), by the loaded exchange rates."),
]
_CARD = [
    Attribute("card_brand", ValueType.STRING, "visa, mastercard, amex, discover, jcb, diners, unionpay or unknown."),
    Attribute("card_funding", ValueType.STRING, "credit, debit, prepaid or unknown."),
    Attribute(
        "card_country", ValueType.STRING, "The issuing country (ISO 3166-1 alpha-2), by the loaded IIN ranges.", ListKind.COUNTRY
    ),
    Attribute(
        "card_fingerprint", ValueType.STRING, "The card's fingerprint (the same card, the same value).", ListKind.CARD_FINGERPRINT
    ),
    Attribute("card_bin", ValueType.STRING, "The card number's first six digits.", ListKind.CARD_BIN),
]
_CUSTOMER = [
    Attribute("customer", ValueType.STRING, "The customer's id, when the payment has one."),
    Attribute("customer_age_days", ValueType.NUMBER, "Days since the customer was created."),
    Attribute("customer_email", ValueType.STRING, "The customer's email address.", ListKind.EMAIL),
    Attribute("email_domain", ValueType.STRING, "The domain of the customer's email address.", ListKind.EMAIL_DOMAIN),
    Attribute("is_disposable_email", ValueType.BOOLEAN, "Whether the email's domain is a known disposable-address domain."),
]
_NETWORK = [
    Attribute("ip_address", ValueType.IP, "The shopper's IP address.", ListKind.IP),
    Attribute(
        "ip_country", ValueType.STRING, "The IP address's country (ISO 3166-1 alpha-2), by the GeoIP database.", ListKind.COUNTRY
    ),
    Attribute("ip_city", ValueType.STRING, "The IP address's city, by the GeoIP database."),
    Attribute("ip_latitude", ValueType.NUMBER, "The IP address's latitude, by the GeoIP database."),
    Attribute("ip_longitude", ValueType.NUMBER, "The IP address's longitude, by the GeoIP database."),
]
_DEVICE = [
    Attribute("device_id", ValueType.STRING, "The device id the card fields send.", ListKind.DEVICE_ID),
    Attribute("is_new_device", ValueType.BOOLEAN, "Whether this card was never used from this device before."),
    Attribute("device_timezone", ValueType.STRING, "The browser's IANA time zone (Europe/Paris)."),
    Attribute("is_timezone_mismatch", ValueType.BOOLEAN, "Whether the browser's time zone is not one of the IP country's."),
    Attribute("device_language", ValueType.STRING, "The browser's first language (fr-FR)."),
    Attribute("screen_width", ValueType.NUMBER, "The screen's width in CSS pixels."),
    Attribute("screen_height", ValueType.NUMBER, "The screen's height in CSS pixels."),
]
_BEHAVIOUR = [
    Attribute("is_pasted_card_number", ValueType.BOOLEAN, "Whether the card number was pasted rather than typed."),
    Attribute("typing_interval_ms_mean", ValueType.NUMBER, "The mean time between key strokes in the card fields, in ms."),
    Attribute("typing_interval_ms_stddev", ValueType.NUMBER, "The standard deviation of that time, in ms."),
    Attribute("checkout_seconds", ValueType.NUMBER, "Seconds from the card fields' load to the payment."),
    Attribute("bot_likelihood", ValueType.NUMBER, "0 to 100: how much the behaviour looks like a script's."),
]
_TRAVEL = [
    Attribute(
        "travel_speed_kmh",
        ValueType.NUMBER,
        "The speed needed to reach this attempt's location from the last located attempt of the same card, "
        "customer or device (the fastest of the three), in km/h.",
    ),
    Attribute("is_impossible_travel", ValueType.BOOLEAN, "Whether that speed is above the travel threshold."),
]
_SCORE = [
    Attribute(
        "risk_score",
        ValueType.NUMBER,
        "The champion fraud model's calibrated probability of fraud, in percent (0 while no model is champion; "
        "missing when the champion could not be loaded).",
    ),
    Attribute(
        "risk_level", ValueType.STRING, "normal, elevated (a score of 20 or more), highest (60 or more), not_assessed (none)."
    ),
]

CATALOGUE: dict[str, Attribute] = {
    attribute.name: attribute
    for attribute in (*_PAYMENT, *_CARD, *_CUSTOMER, *_NETWORK, *_DEVICE, *_BEHAVIOUR, *_velocity(), *_TRAVEL, *_SCORE)
}
