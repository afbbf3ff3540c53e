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
was given (2 h 1 min); each vault process forgets a key at that time too, whether or not the
janitor has run. The janitor makes the current and the next epoch's key ahead of time, and a
tokenization that finds none makes it; creators hold a PostgreSQL advisory lock, so vault
processes never make two keys for one epoch.
"""

import struct
from datetime import UTC, datetime, timedelta

from bastion.kernel.errors import ConfigurationError
from bastion.platform.db import Database
from bastion.vault import repository
from bastion.vault.errors import DecryptionFailed
from bastion.vault.keyring import CvcKey, KeyEncryptionKeys

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


def _sealed_epoch(plaintext: bytes) -> int:
    if len(plaintext) < _EPOCH.size:
        raise DecryptionFailed("the CVC does not authenticate")
    epoch: int = _EPOCH.unpack_from(plaintext)[0]
    return epoch


def open_cvc(keys: KeyEncryptionKeys, plaintext: bytes, binding: bytes) -> str | None:
    """The CVC in an opened envelope as the keyring alone opens it, whatever the time (what a
    backup and the keyring give); None once its epoch's key is destroyed."""
    epoch = _sealed_epoch(plaintext)
    key = keys.cvc_key(epoch)
    return None if key is None else key.decrypt(plaintext[_EPOCH.size :], _aad(epoch, binding)).decode()


class CvcKeys:
    """The vault process's CVC keys: each read from the keyring once and kept in memory until
    its destruction time, never after, even before the janitor destroys it in the keyring."""

    def __init__(self, keys: KeyEncryptionKeys) -> None:
        self._keys = keys
        self._held: dict[int, CvcKey] = {}

    def _key(self, epoch: int, moment: datetime) -> CvcKey | None:
        for due in [held for held in self._held if moment >= destruction_due(held)]:
            del self._held[due]
        if moment >= destruction_due(epoch):
            return None
        key = self._held.get(epoch)
        if key is None:
            key = self._keys.cvc_key(epoch)
            if key is not None:
                self._held[epoch] = key
        return key

    async def seal(self, database: Database, cvc: str, binding: bytes, moment: datetime) -> bytes:
        """`cvc` under the key of `moment`'s epoch, as the envelope's plaintext (see the module)."""
        epoch = epoch_of(moment)
        key = self._key(epoch, moment)
        if key is None:
            # The janitor makes each hour's key ahead: only a vault's first hour gets here.
            await _create(database, self._keys, [epoch])
            key = self._key(epoch, moment)
        if key is None:
            raise ConfigurationError(f"the CVC key of epoch {epoch} vanished as it was made")
        return _EPOCH.pack(epoch) + key.encrypt(cvc.encode(), _aad(epoch, binding))

    def open(self, plaintext: bytes, binding: bytes, moment: datetime) -> str | None:
        """The CVC in an opened envelope; None once its epoch's key is due for destruction."""
        epoch = _sealed_epoch(plaintext)
        key = self._key(epoch, moment)
        return None if key is None else key.decrypt(plaintext[_EPOCH.size :], _aad(epoch, binding)).decode()

    async def keep(self, database: Database, moment: datetime) -> list[int]:
        """The janitor's part: destroy the keys that are due, make the current and the next
        epoch's; the epochs whose keys were destroyed."""
        destroyed = [epoch for epoch in self._keys.cvc_key_epochs() if moment >= destruction_due(epoch)]
        for epoch in destroyed:
            self._held.pop(epoch, None)
            self._keys.destroy_cvc_key(epoch)
        current = epoch_of(moment)
        await _create(database, self._keys, [epoch for epoch in (current, current + 1) if not self._keys.has_cvc_key(epoch)])
        return destroyed


async def _create(database: Database, keys: KeyEncryptionKeys, epochs: list[int]) -> None:
    if not epochs:
        return
    async with database.transaction() as connection:
        await repository.lock_cvc_keys(connection)
        for epoch in epochs:
            # Another vault process may have made it while this one waited for the lock.
            keys.create_cvc_key(epoch)
