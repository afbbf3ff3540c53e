"""How the Adyen connector reads Adyen's answers, with no server: every resultCode to one of
Bastion's results (fuzzed: anything else is unknown, nothing crashes), refusal reasons to decline
codes, amounts in Adyen's minor units."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.kernel.money import exponent
from bastion.payments.adyen import (
    REFUSALS,
    SOFT_DECLINES,
    adyen_value,
    bastion_amount,
    decline_code,
    payment_reference,
    read_modification,
    read_payment,
    split_reference,
)
from bastion.payments.connectors import AttemptResult

PSP = "QFQTPCQ8HXSKGK82"
AUTHORISED = {"result_code": "Authorised", "psp_reference": PSP, "value": 1000, "currency": "EUR"}
KNOWN = {
    "Authorised": AttemptResult.AUTHORIZED,
    "Refused": AttemptResult.DECLINED,
    "RedirectShopper": AttemptResult.UNKNOWN,  # no page to send the cardholder to, here
    "ChallengeShopper": AttemptResult.UNKNOWN,
    "IdentifyShopper": AttemptResult.UNKNOWN,
    "Error": AttemptResult.FAILED,
    "Cancelled": AttemptResult.VOIDED,
}


def read(fields: dict[str, object], *, status: int = 200, capture: bool = False) -> AttemptResult:
    return read_payment(status, fields, amount=1000, currency="EUR", capture=capture).result


@pytest.mark.parametrize(
    ("fields", "capture", "result"),
    [
        (AUTHORISED, False, AttemptResult.AUTHORIZED),
        (AUTHORISED, True, AttemptResult.CAPTURED),
        (AUTHORISED | {"result_code": "Refused", "refusal_reason_code": "2"}, False, AttemptResult.DECLINED),
        (
            AUTHORISED | {"result_code": "RedirectShopper", "action_url": "https://adyen.test/3ds", "action_method": "GET"},
            False,
            AttemptResult.REQUIRES_ACTION,
        ),
        (
            AUTHORISED | {"result_code": "ChallengeShopper", "action_url": "https://adyen.test/3ds"},
            False,
            AttemptResult.REQUIRES_ACTION,
        ),
        # A challenge posted to the issuer is no page Bastion can hand a browser.
        (
            AUTHORISED | {"result_code": "RedirectShopper", "action_url": "https://adyen.test/3ds", "action_method": "POST"},
            False,
            AttemptResult.UNKNOWN,
        ),
        (AUTHORISED | {"result_code": "IdentifyShopper"}, False, AttemptResult.UNKNOWN),
        (AUTHORISED | {"result_code": "Pending"}, False, AttemptResult.UNKNOWN),
        (AUTHORISED | {"result_code": "Received"}, False, AttemptResult.UNKNOWN),
        (AUTHORISED | {"result_code": "PartiallyAuthorised"}, False, AttemptResult.UNKNOWN),
        (AUTHORISED | {"result_code": "Error"}, False, AttemptResult.FAILED),
        (AUTHORISED | {"result_code": "Cancelled"}, False, AttemptResult.VOIDED),
        # Another amount or currency than asked, or none stated for an authorization.
        (AUTHORISED | {"value": 999}, False, AttemptResult.UNKNOWN),
        (AUTHORISED | {"currency": "USD"}, False, AttemptResult.UNKNOWN),
        ({"result_code": "Authorised", "psp_reference": PSP}, False, AttemptResult.UNKNOWN),
        # No reference to act on later (or one the vault masked as a card number).
        (AUTHORISED | {"psp_reference": None}, False, AttemptResult.UNKNOWN),
        (AUTHORISED | {"psp_reference": "[REDACTED PAN]"}, False, AttemptResult.UNKNOWN),
    ],
)
def test_each_result_code_maps_to_one_result(fields: dict[str, object], capture: bool, result: AttemptResult) -> None:
    assert read(fields, capture=capture) == result


@given(st.text(max_size=60))
def test_any_other_result_code_is_unknown_and_nothing_crashes(result_code: str) -> None:
    result = read(AUTHORISED | {"result_code": result_code})
    assert result == KNOWN.get(result_code, AttemptResult.UNKNOWN)


@given(
    st.dictionaries(
        st.sampled_from(
            ["result_code", "psp_reference", "value", "currency", "refusal_reason_code", "action_url", "action_method"]
        ),
        st.one_of(st.none(), st.text(max_size=20), st.integers(), st.booleans()),
    ),
    st.sampled_from([200, 400, 401, 403, 422, 500, 502, 503, 504]),
)
def test_any_answer_maps_to_a_result_and_unknown_never_fails_over(fields: dict[str, object], status: int) -> None:
    answer = read_payment(status, fields, amount=1000, currency="EUR", capture=False)
    assert answer.result in AttemptResult
    if answer.result == AttemptResult.UNKNOWN:
        assert not answer.failover


@pytest.mark.parametrize(
    ("status", "error_code", "result", "failover"),
    [
        (400, "702", AttemptResult.FAILED, True),
        (401, "000", AttemptResult.FAILED, True),
        (403, "901", AttemptResult.FAILED, True),
        (422, "14_030", AttemptResult.FAILED, True),
        # Another request with this key is in flight, or was made: it may have charged.
        (422, "704", AttemptResult.UNKNOWN, False),
        (500, "000", AttemptResult.FAILED, True),
        (503, None, AttemptResult.FAILED, True),
        (502, None, AttemptResult.UNKNOWN, False),
        (504, None, AttemptResult.UNKNOWN, False),
    ],
)
def test_error_answers_fail_over_only_when_adyen_did_not_process(
    status: int, error_code: str | None, result: AttemptResult, failover: bool
) -> None:
    answer = read_payment(status, {"error_code": error_code, "message": "m"}, amount=1000, currency="EUR", capture=False)
    assert (answer.result, answer.failover) == (result, failover)


@pytest.mark.parametrize(
    ("code", "reason", "raw", "expected"),
    [
        ("12", "Not enough balance", None, "insufficient_funds"),
        ("24", "CVC Declined", None, "incorrect_cvc"),
        ("20", "FRAUD", None, "fraudulent"),
        ("31", "Issuer Suspected Fraud", None, "fraudulent"),
        ("27", "Declined Non Generic", None, "do_not_honor"),
        ("5", "Blocked Card", None, "pickup_card"),
        ("5", "Blocked Card", "41 : Lost card", "lost_card"),
        ("5", "Blocked Card", "43 : Stolen card", "stolen_card"),
        ("5", "Blocked Card", "62 : Restricted card", "pickup_card"),
        ("99", "Something new", None, "generic_decline"),
        # A notification names the reason only.
        (None, "Expired Card", None, "expired_card"),
        (None, "authentication required", None, "authentication_required"),
        (None, None, None, "generic_decline"),
    ],
)
def test_refusal_reasons_map_to_decline_codes(code: str | None, reason: str | None, raw: str | None, expected: str) -> None:
    assert decline_code(code, reason, raw) == expected


def test_only_declines_that_say_nothing_of_the_card_fail_over() -> None:
    soft = sorted(code for code, refusal in REFUSALS.items() if refusal.decline_code in SOFT_DECLINES)
    assert soft == ["21", "4", "9"]
    answer = read_payment(
        200, AUTHORISED | {"result_code": "Refused", "refusal_reason_code": "9"}, amount=1000, currency="EUR", capture=False
    )
    assert (answer.decline_code, answer.failover) == ("issuer_not_available", True)


@pytest.mark.parametrize(
    ("amount", "currency", "value"),
    [
        (1050, "EUR", 1050),
        (500, "JPY", 500),
        (1234, "KWD", 1234),
        # Where Adyen's minor units are not ISO 4217's (Adyen's currency codes page).
        (1000, "ISK", 100_000),
        (1000, "CLP", 100_000),
        (123_400, "IDR", 1234),
        (500, "CVE", 5),
        (123_456, "IDR", None),
    ],
)
def test_amounts_are_in_adyens_minor_units(amount: int, currency: str, value: int | None) -> None:
    assert adyen_value(amount, currency) == value
    if value is not None:
        assert bastion_amount(value, currency) == amount


def test_iso_4217_gives_the_exponents_adyen_differs_from() -> None:
    assert {currency: exponent(currency) for currency in ("CLP", "CVE", "IDR", "ISK")} == {"CLP": 0, "CVE": 2, "IDR": 2, "ISK": 0}


def test_the_connector_reference_carries_the_currency_captures_and_refunds_need() -> None:
    assert split_reference(payment_reference(PSP, "EUR")) == (PSP, "EUR")


def test_a_modification_received_is_done_and_anything_else_is_not() -> None:
    received = {"status": "received", "pspReference": PSP, "amount": {"value": 600, "currency": "EUR"}}
    assert read_modification((201, received), AttemptResult.CAPTURED, value=600, currency="EUR").result == AttemptResult.CAPTURED
    assert read_modification((201, received), AttemptResult.CAPTURED, value=500, currency="EUR").result == AttemptResult.UNKNOWN
    assert (
        read_modification((201, received | {"status": "done"}), AttemptResult.CAPTURED, value=600, currency="EUR").result
        == AttemptResult.UNKNOWN
    )
    refused = read_modification(
        (422, {"errorCode": "167", "message": "Original pspReference required"}),
        AttemptResult.CAPTURED,
        value=600,
        currency="EUR",
    )
    assert refused.result == AttemptResult.FAILED
