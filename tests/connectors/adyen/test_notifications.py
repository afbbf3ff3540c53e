"""Adyen's notifications: verified with the `Adyen` package's HMAC validator, read into Bastion's
Notification; replays are the same notification, and Adyen signs no time, so an old one is read
like a new one (Bastion takes each id once)."""

import json
import ssl
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from structlog.testing import capture_logs

from bastion.kernel.errors import AuthenticationFailed, InvalidRequest
from bastion.payments.adyen import AdyenConnector
from bastion.payments.connectors import Answer, AttemptResult, DisputeState, Subject
from bastion.platform.db import Tenant
from bastion.platform.vault_client import VaultClient
from tests.connectors.adyen.conftest import account
from tests.support.providers.adyen import HMAC_KEY, LocalAdyen, body_of, psp_reference, signature

MERCHANT = "mer_adyen_notifications"
CHARGE = "ch_01ADYENNOTIFICATIONS0000001"
# Not the account's key: 64 other hex digits.
OTHER_HMAC_KEY = "00" * 32


@pytest.fixture
def connector() -> AdyenConnector:
    # Notifications call nothing: neither the vault nor Adyen is there.
    vault = VaultClient("https://127.0.0.1:9", ssl.create_default_context(), timeout_s=1)
    return AdyenConnector(account(Tenant(MERCHANT, livemode=False), "http://127.0.0.1:9"), vault)


@pytest.fixture
def signer() -> LocalAdyen:
    """Builds and signs notifications, as Adyen does, with no server running."""
    return LocalAdyen(base_url="http://127.0.0.1:9")


def authorisation(signer: LocalAdyen, psp: str, **changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "psp": psp,
        "merchant_reference": CHARGE,
        "value": 1000,
        "currency": "EUR",
        "additional_data": {"metadata": {"bastionCapture": "manual"}},
    }
    return signer.notification("AUTHORISATION", **(fields | changes))


def later(signer: LocalAdyen, event_code: str, psp: str, **changes: Any) -> dict[str, Any]:
    """A notification of something that happened to the payment after its authorization."""
    fields: dict[str, Any] = {
        "original_reference": psp_reference(),
        "merchant_reference": CHARGE,
        "value": 1000,
        "currency": "EUR",
    }
    return signer.notification(event_code, psp=psp, **(fields | changes))


def item(document: dict[str, Any]) -> dict[str, Any]:
    told: dict[str, Any] = document["notificationItems"][0]["NotificationRequestItem"]
    return told


def test_an_authorisation_is_the_answer_authorize_would_give(connector: AdyenConnector, signer: LocalAdyen) -> None:
    psp = psp_reference()
    told = connector.handle_notification(body_of(authorisation(signer, psp)), {}, now=0)

    assert (told.id, told.type, told.subject) == (f"{psp}:AUTHORISATION:true", "AUTHORISATION", Subject.PAYMENT)
    assert (told.merchant_id, told.livemode, told.reference, told.amount, told.currency) == (MERCHANT, False, CHARGE, 1000, "EUR")
    assert told.answer == Answer(AttemptResult.AUTHORIZED, f"{psp}:EUR")


def test_an_automatic_capture_is_captured_and_the_flat_metadata_adyen_sends_is_read(
    connector: AdyenConnector, signer: LocalAdyen
) -> None:
    document = authorisation(signer, psp_reference(), additional_data={"metadata": {"bastionCapture": "automatic"}})
    # Adyen's JSON notifications carry metadata flat ("metadata.<key>"), outside the signed fields.
    del item(document)["additionalData"]["metadata"]
    item(document)["additionalData"]["metadata.bastionCapture"] = "automatic"

    told = connector.handle_notification(body_of(document), {}, now=0)

    assert told.answer is not None
    assert told.answer.result == AttemptResult.CAPTURED


def test_a_refused_authorisation_is_declined_with_its_code(connector: AdyenConnector, signer: LocalAdyen) -> None:
    document = authorisation(signer, psp_reference(), success=False, reason="Not enough balance")

    told = connector.handle_notification(body_of(document), {}, now=0)

    assert told.answer is not None
    assert (told.answer.result, told.answer.decline_code, told.answer.failover) == (
        AttemptResult.DECLINED,
        "insufficient_funds",
        False,
    )


def test_a_payment_bastion_did_not_make_settles_nothing(connector: AdyenConnector, signer: LocalAdyen) -> None:
    told = connector.handle_notification(body_of(authorisation(signer, psp_reference(), additional_data={})), {}, now=0)

    assert told.answer is not None
    assert told.answer.result == AttemptResult.UNKNOWN


@pytest.mark.parametrize(
    "case",
    [
        ("CAPTURE", CHARGE, Subject.PAYMENT, AttemptResult.CAPTURED),
        ("CANCELLATION", CHARGE, Subject.PAYMENT, AttemptResult.VOIDED),
        ("REFUND", "re_01ADYENREFUND00000000000001", Subject.REFUND, AttemptResult.REFUNDED),
    ],
)
def test_a_modification_that_succeeded_confirms_it(
    connector: AdyenConnector, signer: LocalAdyen, case: tuple[str, str, Subject, AttemptResult]
) -> None:
    event_code, reference, subject, result = case
    psp = psp_reference()
    document = later(signer, event_code, psp, merchant_reference=reference, value=400)

    told = connector.handle_notification(body_of(document), {}, now=0)

    assert (told.subject, told.reference, told.amount, told.answer) == (subject, reference, 400, Answer(result, psp))


@pytest.mark.parametrize(
    ("event_code", "success", "subject"),
    [
        ("CAPTURE", False, Subject.PAYMENT),
        ("CANCELLATION", False, Subject.PAYMENT),
        ("REFUND", False, Subject.REFUND),
        ("CAPTURE_FAILED", True, Subject.PAYMENT),
        ("REFUND_FAILED", True, Subject.REFUND),
        ("REFUNDED_REVERSED", True, Subject.REFUND),
    ],
)
def test_a_modification_that_failed_after_received_is_failed_and_an_alert(
    connector: AdyenConnector, signer: LocalAdyen, event_code: str, success: bool, subject: Subject
) -> None:
    psp = psp_reference()
    document = later(signer, event_code, psp, value=400, success=success, reason="Insufficient balance on payment")

    with capture_logs() as logs:
        told = connector.handle_notification(body_of(document), {}, now=0)

    assert told.subject == subject
    assert told.answer == Answer(AttemptResult.FAILED, psp, message="Insufficient balance on payment")
    (alert,) = [log for log in logs if log["event"] == "adyen_modification_failed"]
    assert (alert["log_level"], alert["event_code"], alert["reference"]) == ("warning", event_code, CHARGE)


@pytest.mark.parametrize(
    ("event_code", "dispute_status", "status"),
    [
        ("NOTIFICATION_OF_CHARGEBACK", "Undefended", "needs_response"),
        ("REQUEST_FOR_INFORMATION", "Unresponded", "needs_response"),
        ("CHARGEBACK", "Undefended", "needs_response"),
        ("CHARGEBACK", "Responded", "under_review"),
        ("CHARGEBACK", "Accepted", "lost"),
        ("INFORMATION_SUPPLIED", "Responded", "under_review"),
        ("CHARGEBACK_REVERSED", "Won", "won"),
        ("SECOND_CHARGEBACK", "Lost", "lost"),
        ("PREARBITRATION_WON", "Won", "won"),
        ("PREARBITRATION_LOST", "Lost", "lost"),
        ("DISPUTE_DEFENSE_PERIOD_ENDED", "Undefended", "lost"),
    ],
)
def test_dispute_events_open_and_move_the_dispute(
    connector: AdyenConnector, signer: LocalAdyen, event_code: str, dispute_status: str, status: str
) -> None:
    dispute = psp_reference()
    due = datetime(2031, 7, 31, 3, 3, 7, tzinfo=UTC)
    document = later(
        signer,
        event_code,
        dispute,
        additional_data={
            "chargebackReasonCode": " 4837",
            "chargebackSchemeCode": "mc",
            "defensePeriodEndsAt": due.isoformat(),
            "disputeStatus": dispute_status,
        },
    )

    told = connector.handle_notification(body_of(document), {}, now=0)

    assert (told.subject, told.reference, told.answer) == (Subject.DISPUTE, CHARGE, None)
    assert told.dispute == DisputeState(dispute, status, 1000, "EUR", "fraudulent", int(due.timestamp()))


def test_other_events_settle_nothing(connector: AdyenConnector, signer: LocalAdyen) -> None:
    document = signer.notification("EXPIRE", psp=psp_reference(), merchant_reference=CHARGE, value=1000, currency="EUR")

    told = connector.handle_notification(body_of(document), {}, now=0)

    assert (told.type, told.answer, told.dispute) == ("EXPIRE", None, None)


def test_a_replay_is_the_same_notification_however_old(connector: AdyenConnector, signer: LocalAdyen) -> None:
    psp = psp_reference()
    old = authorisation(signer, psp, event_date=datetime.now(UTC) - timedelta(days=400))

    first = connector.handle_notification(body_of(old), {}, now=0)
    again = connector.handle_notification(body_of(old), {}, now=int(datetime.now(UTC).timestamp()))

    assert first == again
    # A second delivery of the same event differs only outside the signed fields: same id.
    assert connector.handle_notification(body_of(authorisation(signer, psp)), {}, now=0).id == first.id


@pytest.mark.parametrize(
    "tamper",
    [
        lambda told: told["amount"].update(value=1),
        lambda told: told.update(merchantReference="ch_01SOMEONEELSESCHARGE000001"),
        lambda told: told.update(success="false"),
        lambda told: told.update(eventCode="CAPTURE"),
        lambda told: told["additionalData"].pop("hmacSignature"),
        lambda told: told["additionalData"].update(hmacSignature=""),
        lambda told: told.pop("additionalData"),
    ],
)
def test_a_tampered_or_unsigned_notification_is_refused(connector: AdyenConnector, signer: LocalAdyen, tamper: Any) -> None:
    document = authorisation(signer, psp_reference())
    tamper(item(document))

    with pytest.raises(AuthenticationFailed):
        connector.handle_notification(body_of(document), {}, now=0)


def test_a_notification_signed_with_another_key_is_refused(connector: AdyenConnector, signer: LocalAdyen) -> None:
    with pytest.raises(AuthenticationFailed):
        connector.handle_notification(body_of(authorisation(signer, psp_reference(), hmac_key=OTHER_HMAC_KEY)), {}, now=0)


@pytest.mark.parametrize(
    ("change", "param"),
    [
        (lambda document: document.update(live="true"), "live"),
        (lambda document: item(document).update(merchantAccountCode="SomeoneElsesECOM"), "merchantAccountCode"),
    ],
)
def test_a_notification_of_another_account_is_refused(
    connector: AdyenConnector, signer: LocalAdyen, change: Any, param: str
) -> None:
    # Signed with the account's key: the fields are checked once the signature holds.
    document = authorisation(signer, psp_reference())
    change(document)
    if param == "merchantAccountCode":
        item(document)["additionalData"]["hmacSignature"] = signature(item(document), HMAC_KEY)

    with pytest.raises(InvalidRequest) as refused:
        connector.handle_notification(body_of(document), {}, now=0)
    assert refused.value.param == param


def test_a_batch_of_several_items_is_refused(connector: AdyenConnector, signer: LocalAdyen) -> None:
    document = authorisation(signer, psp_reference())
    document["notificationItems"].append(authorisation(signer, psp_reference())["notificationItems"][0])

    with pytest.raises(InvalidRequest) as refused:
        connector.handle_notification(body_of(document), {}, now=0)
    assert refused.value.param == "notificationItems"
    assert "one notification item" in refused.value.message


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"not json", "body"),
        (json.dumps({"live": "false", "notificationItems": []}).encode(), "notificationItems"),
        (json.dumps({"live": "false"}).encode(), "notificationItems"),
        (
            json.dumps({"live": "false", "notificationItems": [{"NotificationRequestItem": {"pspReference": "X"}}]}).encode(),
            "notificationItems.0.NotificationRequestItem.merchantAccountCode",
        ),
    ],
)
def test_an_unreadable_notification_names_its_field(connector: AdyenConnector, body: bytes, param: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        connector.handle_notification(body, {}, now=0)
    assert refused.value.param == param
