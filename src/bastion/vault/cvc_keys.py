"""CVCs under keys destroyed on a schedule, so that no backup can bring a CVC back.

A CVC may be kept only until authorization (PCI DSS 3.3.1): the vault deletes it at the first
forward of its card or after `CVC_TTL`. A deleted row still lives on in backups and WAL
archives, and so do the key-encryption keys that open it. So each CVC is first encrypted under
the key of its epoch (an hour of UTC time, `CVC_KEY_PERIOD`), and that is sealed in the vault's
envelope like every other secret (`envelope.seal`, key rotation unchanged):

    sealed plaintext = epoch (u64, big-endian) || nonce (12) || AES-256-GCM ciphertext || tag (16)
    AAD = b"bastion:vault:cvc-epoch" || epoch (u64) || binding(card, merchant, "cvc")

The key of epoch n is destroyed once every CVC it encrypted has expired: at the end of the
epoch plus `CVC_TTL`, by the vault's janitor within one round (`SWEEP_INTERVAL_S`). A CVC is thus
beyond anyone's reach, backups included, at most `CVC_KEY_PERIOD + CVC_TTL` and a round after it
was given (2 h 1 min). The janitor makes the current and the next epoch's key ahead of time, and a
tokenization that finds none makes it; creators hold a PostgreSQL advisory lock, so vault
processes never make two keys for one epoch.
"""

import struct
from datetime import UTC, datetime, timedelta

from bastion.platform.db import Database
from bastion.vault import repository
from bastion.vault.errors import DecryptionFailed
from bastion.vault.keyring import KeyEncryptionKeys

# PCI DSS 3.3.1: the security code is kept only until authorization, and never an hour.
CVC_TTL = timedelta(hours=1)
CVC_KEY_PERIOD = timedelta(hours=1)
_PERIOD_S = int(CVC_KEY_PERIOD.total_seconds())
_EPOCH = struct.Struct(">Q")
_AAD_CONTEXT = b"bastion:vault:cvc-epoch"


def epoch_of(moment: datetime) -> int:
    return int(moment.timestamp()) // _PERIOD_S


def destruction_due(epoch: int) -> datetime:
    """When the key of `epoch` goes: every CVC it encrypted has expired by then."""
    return datetime.fromtimestamp((epoch + 1) * _PERIOD_S, UTC) + CVC_TTL


def _aad(epoch: int, binding: bytes) -> bytes:
    return _AAD_CONTEXT + _EPOCH.pack(epoch) + binding


async def encrypt_cvc(database: Database, keys: KeyEncryptionKeys, cvc: str, binding: bytes, moment: datetime) -> bytes:
    """`cvc` under the key of `moment`'s epoch, as the envelope's plaintext (see the module)."""
    epoch = epoch_of(moment)
    if not keys.has_cvc_key(epoch):
        await _create(database, keys, [epoch])
    return _EPOCH.pack(epoch) + keys.encrypt_cvc(epoch, cvc.encode(), _aad(epoch, binding))


def decrypt_cvc(keys: KeyEncryptionKeys, plaintext: bytes, binding: bytes) -> str | None:
    """The CVC in an opened envelope; None once its epoch's key is destroyed."""
    if len(plaintext) < _EPOCH.size:
        raise DecryptionFailed("the CVC does not authenticate")
    (epoch,) = _EPOCH.unpack_from(plaintext)
    if not keys.has_cvc_key(epoch):
        return None
    return keys.decrypt_cvc(epoch, plaintext[_EPOCH.size :], _aad(epoch, binding)).decode()


async def keep_cvc_keys(database: Database, keys: KeyEncryptionKeys, moment: datetime) -> list[int]:
    """The janitor's part: destroy the keys that are due, make the current and the next epoch's;
    the epochs whose keys were destroyed."""
    destroyed = [epoch for epoch in keys.cvc_key_epochs() if moment >= destruction_due(epoch)]
    for epoch in destroyed:
        keys.destroy_cvc_key(epoch)
    current = epoch_of(moment)
    await _create(database, keys, [epoch for epoch in (current, current + 1) if not keys.has_cvc_key(epoch)])
    return destroyed


async def _create(database: Database, keys: KeyEncryptionKeys, epochs: list[int]) -> None:
    if not epochs:
        return
    async with database.transaction() as connection:
        await repository.lock_cvc_keys(connection)
        for epoch in epochs:
            # Another vault process may have made it while this one waited for the lock.
            keys.create_cvc_key(epoch)
