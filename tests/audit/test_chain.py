"""The audit chain's arithmetic, without a database: the canonical form of a row, the keyed
hash linking each row to the one before, and the signed checkpoints."""

import os
import uuid
from datetime import UTC, datetime, timedelta, timezone
from ipaddress import ip_address
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bastion.audit import chain
from bastion.kernel.errors import InvariantViolated

KEY = os.urandom(32)
CREATED_AT = datetime(2026, 12, 5, 12, 0, 0, 123456, tzinfo=UTC)


def row(**changes: Any) -> dict[str, Any]:
    return {
        "id": uuid.UUID("8c1c0c1e-4b6f-4d39-9a52-0d5c6f1c2a01"),
        "merchant_id": "mer_0000000000000000000000000001",
        "livemode": False,
        "actor": "key_0000000000000000000000000001",
        "action_type": "customer.create",
        "resource_type": "customer",
        "resource_id": "cus_0000000000000000000000000001",
        "before_state": None,
        "after_state": {"name": "Zoë", "metadata": {"b": "2", "a": "1"}},
        "ip_address": ip_address("127.0.0.1"),
        "device_id": None,
        "request_id": "req_0000000000000000000000000001",
        "created_at": CREATED_AT,
        "insert_order": 7,
    } | changes


def test_the_canonical_form_is_sorted_compact_utf8_and_leaves_out_batching_hints() -> None:
    encoded = chain.canonical_row(1, row()).decode()
    assert encoded.startswith('{"action_type":"customer.create","actor":')
    assert '"after_state":{"metadata":{"a":"1","b":"2"},"name":"Zoë"}' in encoded
    assert '"created_at":"2026-12-05T12:00:00.123456+00:00"' in encoded
    assert '"ip_address":"127.0.0.1"' in encoded
    assert '"seq":1' in encoded
    assert "insert_order" not in encoded
    assert " " not in encoded.replace("customer.create", "")


def test_the_same_moment_in_another_zone_is_the_same_row() -> None:
    elsewhere = CREATED_AT.astimezone(timezone(timedelta(hours=-5)))
    assert chain.canonical_row(1, row(created_at=elsewhere)) == chain.canonical_row(1, row())


def test_a_naive_timestamp_is_refused() -> None:
    with pytest.raises(InvariantViolated):
        chain.canonical_row(1, row(created_at=CREATED_AT.replace(tzinfo=None)))


@pytest.mark.parametrize("field", chain.CHAINED_FIELDS)
def test_every_chained_field_changes_the_hash(field: str) -> None:
    original = row()
    changed = {
        "livemode": True,
        "created_at": CREATED_AT + timedelta(microseconds=1),
        "id": uuid.uuid4(),
        "ip_address": ip_address("::1"),
        "after_state": {"name": "Zoe"},
    }.get(field, "changed")
    base = chain.row_hash(KEY, chain.GENESIS_HASH, 1, original)
    assert chain.row_hash(KEY, chain.GENESIS_HASH, 1, row(**{field: changed})) != base


def test_a_link_depends_on_the_previous_hash_the_seq_and_the_key() -> None:
    base = chain.row_hash(KEY, chain.GENESIS_HASH, 1, row())
    assert len(base) == 64
    assert chain.row_hash(KEY, chain.GENESIS_HASH, 1, row()) == base, "deterministic"
    assert chain.row_hash(KEY, "1" * 64, 1, row()) != base
    assert chain.row_hash(KEY, chain.GENESIS_HASH, 2, row()) != base
    assert chain.row_hash(os.urandom(32), chain.GENESIS_HASH, 1, row()) != base, "a writer without the key cannot recompute it"


def test_editing_one_row_breaks_every_link_after_it() -> None:
    rows = [row(resource_id=f"cus_{index:026d}") for index in range(5)]

    def links(chained: list[dict[str, Any]]) -> list[str]:
        hashes, previous = [], chain.GENESIS_HASH
        for seq, each in enumerate(chained, 1):
            previous = chain.row_hash(KEY, previous, seq, each)
            hashes.append(previous)
        return hashes

    sealed = links(rows)
    edited = links([*rows[:2], row(resource_id="cus_forged"), *rows[3:]])
    assert [a == b for a, b in zip(sealed, edited, strict=True)] == [True, True, False, False, False]


def test_hashes_compare_whole() -> None:
    digest = chain.row_hash(KEY, chain.GENESIS_HASH, 1, row())
    assert chain.hashes_equal(digest, digest)
    assert not chain.hashes_equal(digest, digest[:-1] + ("0" if digest[-1] != "0" else "1"))
    assert not chain.hashes_equal(digest, digest[:32])


def test_a_checkpoint_verifies_with_the_public_key_alone_and_only_for_its_head() -> None:
    signing_key = Ed25519PrivateKey.generate()
    head = chain.row_hash(KEY, chain.GENESIS_HASH, 1, row())
    checkpoint = chain.sign_checkpoint(signing_key, 10, head)
    public_key = signing_key.public_key()
    assert (checkpoint["seq"], checkpoint["chain_hash"], len(checkpoint["key_id"])) == (10, head, 16)
    assert chain.checkpoint_signature_valid(public_key, 10, head, checkpoint["signature"])
    assert not chain.checkpoint_signature_valid(public_key, 11, head, checkpoint["signature"])
    assert not chain.checkpoint_signature_valid(public_key, 10, "0" * 64, checkpoint["signature"])
    assert not chain.checkpoint_signature_valid(Ed25519PrivateKey.generate().public_key(), 10, head, checkpoint["signature"])
    assert not chain.checkpoint_signature_valid(public_key, 10, head, "not hex")
