"""How the sandbox connector reads the acquirer's answers: Bastion's outcome for each, `unknown`
for what it cannot map or for another amount or currency than asked (the attempt is then held,
nothing posted), and no outcome at all for a server error (the command is asked again)."""

import pytest

from bastion.kernel.errors import ProcessorUnavailable
from bastion.payments.connectors import AttemptResult
from bastion.payments.sandbox import read_answer

PAYMENT = {"id": "acqp_1", "status": "captured", "amount": 1000, "currency": "EUR", "decline_code": None}


@pytest.mark.parametrize(
    ("status", "fields", "result"),
    [
        (200, PAYMENT, AttemptResult.CAPTURED),
        (200, PAYMENT | {"status": "authorized"}, AttemptResult.AUTHORIZED),
        (200, PAYMENT | {"status": "voided"}, AttemptResult.VOIDED),
        (200, PAYMENT | {"status": "declined", "decline_code": "lost_card"}, AttemptResult.DECLINED),
        (200, PAYMENT | {"status": "settled_yesterday"}, AttemptResult.UNKNOWN),
        (200, PAYMENT | {"amount": 999}, AttemptResult.UNKNOWN),
        (200, PAYMENT | {"currency": "USD"}, AttemptResult.UNKNOWN),
        (200, None, AttemptResult.UNKNOWN),
        (400, {"error": {"message": "amount must be between 1 and 1000"}}, AttemptResult.FAILED),
        (401, None, AttemptResult.FAILED),
    ],
)
def test_each_answer_maps_to_one_outcome(status: int, fields: dict[str, object] | None, result: AttemptResult) -> None:
    assert read_answer(status, fields, amount=1000, currency="EUR").result == result


def test_another_amount_is_held_with_the_processors_reference() -> None:
    answer = read_answer(200, PAYMENT | {"amount": 1}, amount=1000, currency="EUR")
    assert (answer.result, answer.reference) == (AttemptResult.UNKNOWN, "acqp_1")
    assert answer.message is not None
    assert "amount" in answer.message


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_a_server_error_is_no_answer(status: int) -> None:
    with pytest.raises(ProcessorUnavailable):
        read_answer(status, None, amount=1000, currency="EUR")
