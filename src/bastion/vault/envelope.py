"""Envelope encryption of the vault's secrets, and card fingerprints.

Algorithm 1 (`ALGORITHM_AES256GCM_WRAPPED`), stored beside each ciphertext with its KEK version:

- content: a fresh random 32-byte data key per secret; `ciphertext` = AES-256-GCM(data key,
  `nonce` (12 random bytes), plaintext, AAD = `binding(...)`), the 16-byte tag at its end;
- data key: `wrapped_key` = the keyring's AES-256-GCM wrap under KEK `key_version`
  (nonce (12) || encrypted key (32) || tag (16)), with AAD =
  b"bastion:vault:data-key" || algorithm (u32, big-endian) || key version (u32) || `binding(...)`.

The binding ties a ciphertext to its record and merchant, so a row copied onto another record or
merchant does not open; algorithm and version in the wrap's AAD keep a wrapped key from being
relabelled to another version or algorithm. Rotation re-wraps only the data key: the content
ciphertext and its nonce never change.
"""

import hmac
import secrets
import struct
from dataclasses import dataclass, replace
from hashlib import sha256

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bastion.kernel.errors import invariant
from bastion.platform.db import Tenant
from bastion.vault.errors import DecryptionFailed
from bastion.vault.keyring import KEY_BYTES, NONCE_BYTES, KeyEncryptionKeys

ALGORITHM_AES256GCM_WRAPPED = 1
PURPOSES = frozenset({"card", "cvc"})
# 128 bits: two cards of one merchant collide with probability about n^2 / 2^129 (2^-69 for
# a billion cards), while the value stays short to index and show; Stripe's is 16 characters.
FINGERPRINT_HEX_CHARS = 32
_BINDING_CONTEXT = b"bastion:vault:binding"
_WRAP_CONTEXT = b"bastion:vault:data-key"


@dataclass(frozen=True, slots=True)
class Sealed:
    algorithm: int
    key_version: int
    wrapped_key: bytes
    nonce: bytes
    ciphertext: bytes


def _length_prefixed(*parts: bytes) -> bytes:
    return b"".join(struct.pack(">I", len(part)) + part for part in parts)


def binding(record_id: str, merchant_id: str, purpose: str) -> bytes:
    """The AAD of a vault secret: which secret (`card` or `cvc`) of which record of which merchant.
    Every part is length-prefixed, so no two different triples encode alike."""
    invariant(purpose in PURPOSES, "a sealed secret's purpose is card or cvc")
    return _length_prefixed(_BINDING_CONTEXT, purpose.encode(), record_id.encode(), merchant_id.encode())


def _wrap_aad(algorithm: int, key_version: int, aad: bytes) -> bytes:
    # Fixed-width fields before the one variable part: unambiguous without prefixes.
    return _WRAP_CONTEXT + struct.pack(">II", algorithm, key_version) + aad


def seal(keys: KeyEncryptionKeys, version: int, plaintext: bytes, aad: bytes) -> Sealed:
    data_key = AESGCM.generate_key(bit_length=KEY_BYTES * 8)
    nonce = secrets.token_bytes(NONCE_BYTES)
    return Sealed(
        algorithm=ALGORITHM_AES256GCM_WRAPPED,
        key_version=version,
        wrapped_key=keys.wrap(version, data_key, _wrap_aad(ALGORITHM_AES256GCM_WRAPPED, version, aad)),
        nonce=nonce,
        ciphertext=AESGCM(data_key).encrypt(nonce, plaintext, aad),
    )


def _data_key(keys: KeyEncryptionKeys, sealed: Sealed, aad: bytes) -> bytes:
    if sealed.algorithm != ALGORITHM_AES256GCM_WRAPPED:
        raise DecryptionFailed(f"unknown envelope algorithm {sealed.algorithm}")
    return keys.unwrap(sealed.key_version, sealed.wrapped_key, _wrap_aad(sealed.algorithm, sealed.key_version, aad))


def open_sealed(keys: KeyEncryptionKeys, sealed: Sealed, aad: bytes) -> bytes:
    """The plaintext; `DecryptionFailed` if anything in `sealed` or `aad` differs from what was sealed."""
    data_key = _data_key(keys, sealed, aad)
    if len(sealed.nonce) != NONCE_BYTES:
        raise DecryptionFailed("the sealed content does not authenticate")
    try:
        return AESGCM(data_key).decrypt(sealed.nonce, sealed.ciphertext, aad)
    except InvalidTag as error:
        raise DecryptionFailed("the sealed content does not authenticate") from error


def rewrap(keys: KeyEncryptionKeys, sealed: Sealed, aad: bytes, new_version: int) -> Sealed:
    """`sealed` with its data key wrapped by KEK `new_version` instead; content untouched (and
    not decrypted: the old wrap's authentication already proves the key belongs to this record)."""
    data_key = _data_key(keys, sealed, aad)
    return replace(
        sealed,
        key_version=new_version,
        wrapped_key=keys.wrap(new_version, data_key, _wrap_aad(sealed.algorithm, new_version, aad)),
    )


def fingerprint(keys: KeyEncryptionKeys, tenant: Tenant, number: str) -> str:
    """Same card number, merchant and mode, same fingerprint; a keyed HMAC, so the fingerprint
    of a known number cannot be computed (nor a number searched for) without the keyring, and a
    test-mode fingerprint says nothing of the live one. `number` is the card's digits only, as
    `domain.clean_number` returns them."""
    invariant(number.isascii() and number.isdigit(), "a card number is fingerprinted as digits only")
    key = keys.fingerprint_key(tenant.merchant_id, tenant.livemode)
    return hmac.new(key, number.encode(), sha256).hexdigest()[:FINGERPRINT_HEX_CHARS]
