"""The vault's key-encryption keys (KEKs) and its card fingerprint root.

A KEK only ever wraps 32-byte data keys (see `envelope`). Both providers wrap the same way,
AES-256-GCM under the KEK with a random 12-byte nonce, so a wrapped key is
nonce (12) || ciphertext (32) || tag (16) whichever provider made it:

- `local`: one 32-byte key file per KEK version, `kek-v{n}.key`, and `fingerprint.key`, in a
  directory private to the owner, and the CVC keys in `cvc/epoch-{n}.key`. For development and
  single-machine installs: a deleted file is unlinked, not securely erased.
- `pkcs11`: KEK version n is the non-extractable AES-256 key labelled `bastion-vault-kek-v{n}`
  on an HSM token, used only inside the HSM (C_Encrypt/C_Decrypt with CKM_AES_GCM); the
  fingerprint root is the non-extractable generic secret `bastion-vault-fingerprint`; the CVC
  key of epoch n is the AES-256 key `bastion-vault-cvc-e{n}`, destroyed in the HSM (C_DestroyObject).

CVC keys (`vault/cvc_keys.py`) encrypt CVCs the same way (nonce || ciphertext || tag); the
keyring reads the file or finds the object at each `cvc_key`, and `cvc_keys` keeps a key in
memory only until its destruction time.

Fingerprint keys, one per merchant and mode, are HMAC-SHA256(root, prefix + merchant id) in both
providers, the prefix `bastion:fingerprint:` in live mode and `bastion:fingerprint:test:` in test
mode: the root is already uniformly random, so HKDF's extract step adds nothing and its
single-block expand is this same HMAC; and CKM_SHA256_HMAC is what every HSM offers (SoftHSM2 has
no CKM_HKDF_DERIVE). The fixed prefixes keep the root from serving any other purpose; merchant ids
start with `mer_`, never `test:`, so no two inputs coincide. Test mode has a key of its own so
that a test secret key cannot confirm a live card by its fingerprint; live mode keeps the
derivation it had before modes were split, so live fingerprints did not change.
"""

import hmac
import os
import secrets
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path
from typing import Any, Protocol

import pkcs11
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pkcs11 import Attribute, GCMParams, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11.types import DecryptMixin, EncryptMixin, SignMixin

from bastion.kernel.errors import ConfigurationError, InvariantViolated, invariant
from bastion.platform.secret_files import read_secret
from bastion.vault.errors import DecryptionFailed

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
WRAPPED_KEY_BYTES = NONCE_BYTES + KEY_BYTES + TAG_BYTES
# Envelopes encode the version as an unsigned 32-bit integer.
KEK_VERSION_MAX = 2**32 - 1
# Merchants whose fingerprint key stays in memory (oldest dropped first): one HSM call each otherwise.
FINGERPRINT_KEYS_CACHED_MAX = 10_000
_FINGERPRINT_PREFIX = {True: b"bastion:fingerprint:", False: b"bastion:fingerprint:test:"}
_FINGERPRINT_ROOT_LABEL = "bastion-vault-fingerprint"


class CvcKey(Protocol):
    """One hour's CVC key, used where it lives (a key file's bytes, or inside the HSM)."""

    def encrypt(self, plaintext: bytes, aad: bytes) -> bytes:
        """nonce || ciphertext || tag."""
        ...

    def decrypt(self, sealed: bytes, aad: bytes) -> bytes:
        """What `encrypt` was given; `DecryptionFailed` if `sealed` or `aad` differ."""
        ...


class KeyEncryptionKeys(Protocol):
    provider: str

    def create_version(self, version: int) -> None:
        """Create KEK `version` unless it exists; safe to re-run after a crash at any point."""
        ...

    def has_version(self, version: int) -> bool: ...

    def wrap(self, version: int, data_key: bytes, aad: bytes) -> bytes:
        """The 32-byte `data_key` encrypted and authenticated (with `aad`) under KEK `version`."""
        ...

    def unwrap(self, version: int, wrapped: bytes, aad: bytes) -> bytes:
        """The data key; `DecryptionFailed` if `wrapped` or `aad` is not what `wrap` was given."""
        ...

    def create_fingerprint_root(self) -> None:
        """Create the fingerprint root unless it exists. At install only (with the first key
        version): a new root would give every card a new fingerprint."""
        ...

    def has_fingerprint_root(self) -> bool: ...

    def fingerprint_key(self, merchant_id: str, livemode: bool) -> bytes:
        """The 32-byte HMAC key of `merchant_id`'s card fingerprints in one mode;
        `ConfigurationError` without a fingerprint root."""
        ...

    def create_cvc_key(self, epoch: int) -> None:
        """Create the CVC key of `epoch` unless it exists (callers serialize creators: `cvc_keys`)."""
        ...

    def has_cvc_key(self, epoch: int) -> bool: ...

    def cvc_key_epochs(self) -> list[int]:
        """The epochs whose CVC key exists, oldest first."""
        ...

    def destroy_cvc_key(self, epoch: int) -> None:
        """Destroy the CVC key of `epoch`, if it exists: what it encrypted cannot be opened again."""
        ...

    def cvc_key(self, epoch: int) -> "CvcKey | None":
        """The CVC key of `epoch`, or None if it does not exist (not made yet, or destroyed)."""
        ...

    def close(self) -> None: ...


def _check_version(version: int) -> None:
    invariant(1 <= version <= KEK_VERSION_MAX, "a key-encryption key version is 1 to 2**32 - 1")


def missing_fingerprint_root(where: str) -> ConfigurationError:
    """The refusal when `where` (a key directory, an HSM token, a keyring) lost its fingerprint root."""
    return ConfigurationError(
        f"{where} holds no card fingerprint root: restore it from the keyring's backup (a new root "
        "would give every card a new fingerprint, and the same card would no longer match itself)"
    )


def _kek_label(version: int) -> str:
    return f"bastion-vault-kek-v{version}"


_CVC_KEY_LABEL_PREFIX = "bastion-vault-cvc-e"


def _cvc_key_label(epoch: int) -> str:
    return f"{_CVC_KEY_LABEL_PREFIX}{epoch}"


def _check_epoch(epoch: int) -> None:
    invariant(epoch >= 0, "a CVC key epoch is not negative")


def _gcm_open(key: AESGCM, sealed: bytes, aad: bytes, what: str) -> bytes:
    """AES-256-GCM's nonce || ciphertext || tag opened; `DecryptionFailed` naming `what` otherwise."""
    try:
        return key.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad)
    except InvalidTag as error:
        raise DecryptionFailed(f"the {what} does not authenticate") from error


class _MerchantKeys:
    """Fingerprint keys per merchant and mode, derived once and kept up to a bound."""

    def __init__(self, derive: Callable[[bytes], bytes]) -> None:
        self._derive = derive
        self._keys: dict[tuple[str, bool], bytes] = {}
        self._lock = threading.Lock()

    def get(self, merchant_id: str, livemode: bool) -> bytes:
        with self._lock:
            key = self._keys.get((merchant_id, livemode))
        if key is None:
            # Derived outside the lock: a race costs one extra derivation of the same key.
            key = self._derive(_FINGERPRINT_PREFIX[livemode] + merchant_id.encode())
            with self._lock:
                if len(self._keys) >= FINGERPRINT_KEYS_CACHED_MAX:
                    del self._keys[next(iter(self._keys))]  # dicts keep insertion order: the oldest
                self._keys[(merchant_id, livemode)] = key
        return key

    def clear(self) -> None:
        with self._lock:
            self._keys.clear()


# --- local -------------------------------------------------------------------------------------


def _create_key_file(path: Path) -> None:
    """A fresh random key at `path`, unless a key is there already. It is written and synced under
    a temporary name (mkstemp: mode 0600) and hard-linked into place: a link never replaces, so a
    crash leaves no key or a whole one, and a concurrent creator cannot overwrite a key that may
    already wrap data (its link fails and the first key stands). A crash before the unlink can
    leave a hidden `.kek-v{n}.key.*.tmp` file, which nothing reads."""
    if path.exists():
        return
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(secrets.token_bytes(KEY_BYTES))
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)  # the new name survives a power cut
        finally:
            os.close(directory)
    finally:
        os.unlink(temporary)


def _read_key_file(path: Path) -> bytes:
    key = read_secret(path)
    if len(key) != KEY_BYTES:
        raise ConfigurationError(f"the key file {path} must hold {KEY_BYTES} bytes")
    return key


@dataclass(frozen=True, slots=True)
class _LocalCvcKey:
    key: AESGCM

    def encrypt(self, plaintext: bytes, aad: bytes) -> bytes:
        nonce = secrets.token_bytes(NONCE_BYTES)
        return nonce + self.key.encrypt(nonce, plaintext, aad)

    def decrypt(self, sealed: bytes, aad: bytes) -> bytes:
        return _gcm_open(self.key, sealed, aad, "CVC")


class LocalKeyEncryptionKeys:
    """Key files in `directory` (created 0700; refused if group or others may enter it)."""

    provider = "local"

    def __init__(self, directory: Path) -> None:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if directory.stat().st_mode & 0o077:
            raise ConfigurationError(f"the key directory {directory} must be accessible to its owner only (mode 0700)")
        self._directory = directory
        self._keks: dict[int, AESGCM] = {}
        self._root_path = directory / "fingerprint.key"
        self._cvc_directory = directory / "cvc"
        self._root: bytes | None = None
        self._fingerprint_keys = _MerchantKeys(self._derive_fingerprint_key)

    def _derive_fingerprint_key(self, message: bytes) -> bytes:
        if self._root is None:
            if not self._root_path.exists():
                raise missing_fingerprint_root(f"the key directory {self._directory}")
            self._root = _read_key_file(self._root_path)
        return hmac.new(self._root, message, sha256).digest()

    def _path(self, version: int) -> Path:
        return self._directory / f"kek-v{version}.key"

    def _kek(self, version: int) -> AESGCM | None:
        _check_version(version)
        kek = self._keks.get(version)
        if kek is None:
            path = self._path(version)
            if not path.exists():
                return None
            kek = self._keks[version] = AESGCM(_read_key_file(path))
        return kek

    def create_version(self, version: int) -> None:
        _check_version(version)
        _create_key_file(self._path(version))

    def create_fingerprint_root(self) -> None:
        _create_key_file(self._root_path)

    def has_fingerprint_root(self) -> bool:
        return self._root_path.exists()

    def has_version(self, version: int) -> bool:
        return self._kek(version) is not None

    def wrap(self, version: int, data_key: bytes, aad: bytes) -> bytes:
        invariant(len(data_key) == KEY_BYTES, "a data key is 32 bytes")
        kek = self._kek(version)
        if kek is None:
            raise ConfigurationError(f"there is no key-encryption key version {version}: create it first")
        nonce = secrets.token_bytes(NONCE_BYTES)
        return nonce + kek.encrypt(nonce, data_key, aad)

    def unwrap(self, version: int, wrapped: bytes, aad: bytes) -> bytes:
        kek = self._kek(version)
        if kek is None:
            raise DecryptionFailed(f"there is no key-encryption key version {version}")
        if len(wrapped) != WRAPPED_KEY_BYTES:
            raise DecryptionFailed("the wrapped data key does not authenticate")
        return _gcm_open(kek, wrapped, aad, "wrapped data key")

    def fingerprint_key(self, merchant_id: str, livemode: bool) -> bytes:
        return self._fingerprint_keys.get(merchant_id, livemode)

    def _cvc_path(self, epoch: int) -> Path:
        _check_epoch(epoch)
        return self._cvc_directory / f"epoch-{epoch}.key"

    def create_cvc_key(self, epoch: int) -> None:
        self._cvc_directory.mkdir(mode=0o700, exist_ok=True)
        _create_key_file(self._cvc_path(epoch))

    def has_cvc_key(self, epoch: int) -> bool:
        return self._cvc_path(epoch).exists()

    def cvc_key_epochs(self) -> list[int]:
        if not self._cvc_directory.is_dir():
            return []
        names = (path.name.removeprefix("epoch-").removesuffix(".key") for path in self._cvc_directory.glob("epoch-*.key"))
        return sorted(int(name) for name in names if name.isdigit())

    def destroy_cvc_key(self, epoch: int) -> None:
        self._cvc_path(epoch).unlink(missing_ok=True)

    def cvc_key(self, epoch: int) -> CvcKey | None:
        try:
            return _LocalCvcKey(AESGCM(_read_key_file(self._cvc_path(epoch))))
        except FileNotFoundError:
            return None

    def close(self) -> None:
        self._keks.clear()
        self._fingerprint_keys.clear()


# --- pkcs11 ------------------------------------------------------------------------------------

# python-pkcs11 initialises a module with C_Initialize(NULL), which promises the module that no two
# threads call it at once; the module then takes no locks of its own (SoftHSM2 crashes when two
# threads use two sessions). So every call into a module, on any session, holds this lock: one
# session and one lock rather than a session per thread, which could not run in parallel anyway.
# The calls release the GIL, so other Python threads run meanwhile.
_PKCS11_LOCK = threading.Lock()

# Compares PINs of keyrings sharing a login without keeping the PIN itself.
_PIN_DIGEST_KEY = secrets.token_bytes(KEY_BYTES)

# SoftHSM2 reports a GCM tag mismatch as CKR_GENERAL_ERROR; the standard says ENCRYPTED_DATA_INVALID.
_TAG_REJECTED = (pkcs11.GeneralError, pkcs11.EncryptedDataInvalid, pkcs11.EncryptedDataLenRange)


@dataclass
class _Login:
    """The process's one logged-in session on a token. PKCS#11 login belongs to the application,
    not the session: a second C_Login fails with USER_ALREADY_LOGGED_IN without checking its PIN,
    and any logout ends every session's access. So keyrings on one token share this session, and
    the last to close logs out. Guarded by _PKCS11_LOCK."""

    session: pkcs11.Session
    pin_digest: bytes
    users: int


_logins: dict[tuple[str, str], _Login] = {}


def _pin_digest(pin: str) -> bytes:
    return hmac.new(_PIN_DIGEST_KEY, pin.encode(), sha256).digest()


def _log_in(module_path: str, token_label: str, pin: str) -> _Login:
    """Caller holds _PKCS11_LOCK."""
    login = _logins.get((module_path, token_label))
    if login is not None:
        if not hmac.compare_digest(login.pin_digest, _pin_digest(pin)):
            raise ConfigurationError(f"the PKCS#11 token {token_label!r} refused the PIN")
        login.users += 1
        return login
    try:
        token = pkcs11.lib(module_path).get_token(token_label=token_label)
        session = token.open(rw=True, user_pin=pin)
    except pkcs11.NoSuchToken as error:
        raise ConfigurationError(f"there is no PKCS#11 token labelled {token_label!r} in {module_path}") from error
    except (pkcs11.PinIncorrect, pkcs11.PinInvalid, pkcs11.PinLenRange) as error:
        raise ConfigurationError(f"the PKCS#11 token {token_label!r} refused the PIN") from error
    except pkcs11.PinLocked as error:
        raise ConfigurationError(f"the PIN of PKCS#11 token {token_label!r} is locked: its officer must reset it") from error
    except pkcs11.PKCS11Error as error:
        reason = f"{type(error).__name__} {error}".strip()
        raise ConfigurationError(f"cannot open PKCS#11 token {token_label!r} with {module_path}: {reason}") from error
    login = _logins[(module_path, token_label)] = _Login(session, _pin_digest(pin), users=1)
    return login


def _log_out(module_path: str, token_label: str, login: _Login) -> None:
    """Caller holds _PKCS11_LOCK."""
    login.users -= 1
    if login.users == 0:
        del _logins[(module_path, token_label)]
        login.session.close()  # logs out, then closes


class _Kek(Protocol):
    """What python-pkcs11 makes of a key with encrypt and decrypt capabilities."""

    def encrypt(self, data: bytes, **kwargs: Any) -> bytes | Iterator[bytes]: ...

    def decrypt(self, data: bytes, **kwargs: Any) -> bytes | Iterator[bytes]: ...


class _SigningKey(Protocol):
    def sign(self, data: bytes, **kwargs: Any) -> bytes: ...


def _as_kek(key: pkcs11.Object, label: str) -> _Kek:
    if isinstance(key, EncryptMixin) and isinstance(key, DecryptMixin):
        return key
    raise ConfigurationError(f"the key labelled {label!r} on the PKCS#11 token cannot encrypt and decrypt")


def _as_signing_key(key: pkcs11.Object, label: str) -> _SigningKey:
    if isinstance(key, SignMixin):
        return key
    raise ConfigurationError(f"the key labelled {label!r} on the PKCS#11 token cannot sign")


def _as_bytes(result: bytes | Iterator[bytes]) -> bytes:
    # python-pkcs11 returns bytes for bytes input, an iterator only for streamed input.
    if isinstance(result, bytes):
        return result
    raise InvariantViolated("a PKCS#11 operation on bytes returned an iterator")


def _hsm_gcm_seal(key: _Kek, plaintext: bytes, aad: bytes) -> bytes:
    """Caller holds _PKCS11_LOCK. nonce || ciphertext || tag, as the local provider makes it.
    Random nonces from the OS, not the HSM (one call fewer): unique with overwhelming
    probability for far more uses than one key sees."""
    nonce = secrets.token_bytes(NONCE_BYTES)
    return nonce + _as_bytes(key.encrypt(plaintext, mechanism=Mechanism.AES_GCM, mechanism_param=GCMParams(nonce, aad)))


def _hsm_gcm_open(key: _Kek, sealed: bytes, aad: bytes, what: str) -> bytes:
    """Caller holds _PKCS11_LOCK. What `_hsm_gcm_seal` was given; `DecryptionFailed` naming `what` otherwise."""
    try:
        parameters = GCMParams(sealed[:NONCE_BYTES], aad)
        opened = key.decrypt(sealed[NONCE_BYTES:], mechanism=Mechanism.AES_GCM, mechanism_param=parameters)
    except _TAG_REJECTED as error:
        raise DecryptionFailed(f"the {what} does not authenticate") from error
    return _as_bytes(opened)


@dataclass(frozen=True, slots=True)
class _HsmCvcKey:
    """A handle on the token: valid while the keyring's session is open and the key exists."""

    key: _Kek

    def encrypt(self, plaintext: bytes, aad: bytes) -> bytes:
        with _PKCS11_LOCK:
            return _hsm_gcm_seal(self.key, plaintext, aad)

    def decrypt(self, sealed: bytes, aad: bytes) -> bytes:
        with _PKCS11_LOCK:
            return _hsm_gcm_open(self.key, sealed, aad, "CVC")


class Pkcs11KeyEncryptionKeys:
    """KEKs and the fingerprint root inside an HSM token. Key handles are looked up once per
    version and kept; the session stays open until `close`."""

    provider = "pkcs11"

    def __init__(self, module_path: str, token_label: str, pin: str) -> None:
        self._module_path = module_path
        self._token_label = token_label
        self._keks: dict[int, _Kek] = {}
        with _PKCS11_LOCK:
            self._login: _Login | None = _log_in(module_path, token_label, pin)
            try:
                self._fingerprint_root = self._find_fingerprint_root()
            except BaseException:
                _log_out(module_path, token_label, self._login)
                raise
        self._fingerprint_keys = _MerchantKeys(self._derive_fingerprint_key)

    def _session(self) -> pkcs11.Session:
        if self._login is None:
            raise ConfigurationError("the PKCS#11 keyring is closed")
        return self._login.session

    def _find_all(self, key_type: KeyType, label: str | None = None) -> list[pkcs11.Object]:
        """Caller holds _PKCS11_LOCK. The search runs to its end: an unfinished one keeps the
        session's operation open."""
        template: dict[Attribute, Any] = {Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.KEY_TYPE: key_type}
        if label is not None:
            template[Attribute.LABEL] = label
        return list(self._session().get_objects(template))

    def _find(self, label: str, key_type: KeyType) -> pkcs11.Object | None:
        """Caller holds _PKCS11_LOCK."""
        found = self._find_all(key_type, label)
        if len(found) > 1:
            # Only two creators racing on a first use can do this; which key wrapped what is unknown.
            raise ConfigurationError(f"{len(found)} keys are labelled {label!r} on the PKCS#11 token: resolve by hand")
        return found[0] if found else None

    def _generate(self, label: str, key_type: KeyType, capabilities: MechanismFlag) -> pkcs11.SecretKey:
        """Caller holds _PKCS11_LOCK. A token key that never leaves the HSM, usable only for
        `capabilities`, whose attributes cannot be changed or copied to a laxer object."""
        return self._session().generate_key(
            key_type,
            KEY_BYTES * 8,
            label=label,
            store=True,
            capabilities=capabilities,
            template={
                Attribute.PRIVATE: True,
                Attribute.SENSITIVE: True,
                Attribute.EXTRACTABLE: False,
                Attribute.MODIFIABLE: False,
                Attribute.COPYABLE: False,
            },
        )

    def _kek(self, version: int) -> _Kek | None:
        """Caller holds _PKCS11_LOCK."""
        _check_version(version)
        kek = self._keks.get(version)
        if kek is None:
            label = _kek_label(version)
            found = self._find(label, KeyType.AES)
            if found is None:
                return None
            kek = self._keks[version] = _as_kek(found, label)
        return kek

    def _find_fingerprint_root(self) -> _SigningKey | None:
        root = self._find(_FINGERPRINT_ROOT_LABEL, KeyType.GENERIC_SECRET)
        return None if root is None else _as_signing_key(root, _FINGERPRINT_ROOT_LABEL)

    def create_fingerprint_root(self) -> None:
        # Generation is atomic in the HSM and found by label afterwards: re-running is safe.
        with _PKCS11_LOCK:
            if self._fingerprint_root is None:
                self._fingerprint_root = self._find_fingerprint_root()
            if self._fingerprint_root is None:
                generated = self._generate(_FINGERPRINT_ROOT_LABEL, KeyType.GENERIC_SECRET, MechanismFlag.SIGN)
                self._fingerprint_root = _as_signing_key(generated, _FINGERPRINT_ROOT_LABEL)

    def has_fingerprint_root(self) -> bool:
        with _PKCS11_LOCK:
            return self._find_fingerprint_root() is not None

    def _derive_fingerprint_key(self, message: bytes) -> bytes:
        with _PKCS11_LOCK:
            self._session()  # raises once closed: the root's handle is gone with the session
            if self._fingerprint_root is None:
                raise missing_fingerprint_root(f"the PKCS#11 token {self._token_label!r}")
            return self._fingerprint_root.sign(message, mechanism=Mechanism.SHA256_HMAC)

    def create_version(self, version: int) -> None:
        # Generation is atomic in the HSM and found by label afterwards: re-running is safe.
        with _PKCS11_LOCK:
            if self._kek(version) is None:
                label = _kek_label(version)
                generated = self._generate(label, KeyType.AES, MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT)
                self._keks[version] = _as_kek(generated, label)

    def has_version(self, version: int) -> bool:
        with _PKCS11_LOCK:
            return self._kek(version) is not None

    def wrap(self, version: int, data_key: bytes, aad: bytes) -> bytes:
        invariant(len(data_key) == KEY_BYTES, "a data key is 32 bytes")
        with _PKCS11_LOCK:
            kek = self._kek(version)
            if kek is None:
                raise ConfigurationError(f"there is no key-encryption key version {version}: create it first")
            return _hsm_gcm_seal(kek, data_key, aad)

    def unwrap(self, version: int, wrapped: bytes, aad: bytes) -> bytes:
        with _PKCS11_LOCK:
            kek = self._kek(version)
            if kek is None:
                raise DecryptionFailed(f"there is no key-encryption key version {version}")
            if len(wrapped) != WRAPPED_KEY_BYTES:
                raise DecryptionFailed("the wrapped data key does not authenticate")
            return _hsm_gcm_open(kek, wrapped, aad, "wrapped data key")

    def fingerprint_key(self, merchant_id: str, livemode: bool) -> bytes:
        return self._fingerprint_keys.get(merchant_id, livemode)

    def _cvc_key(self, epoch: int) -> _Kek | None:
        """Caller holds _PKCS11_LOCK. Found at each call, never kept here (see the module)."""
        _check_epoch(epoch)
        label = _cvc_key_label(epoch)
        found = self._find(label, KeyType.AES)
        return None if found is None else _as_kek(found, label)

    def create_cvc_key(self, epoch: int) -> None:
        with _PKCS11_LOCK:
            if self._cvc_key(epoch) is None:
                self._generate(_cvc_key_label(epoch), KeyType.AES, MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT)

    def has_cvc_key(self, epoch: int) -> bool:
        with _PKCS11_LOCK:
            return self._cvc_key(epoch) is not None

    def cvc_key_epochs(self) -> list[int]:
        with _PKCS11_LOCK:
            labels = [str(key[Attribute.LABEL]) for key in self._find_all(KeyType.AES)]
        suffixes = (label.removeprefix(_CVC_KEY_LABEL_PREFIX) for label in labels if label.startswith(_CVC_KEY_LABEL_PREFIX))
        return sorted(int(suffix) for suffix in suffixes if suffix.isdigit())

    def destroy_cvc_key(self, epoch: int) -> None:
        _check_epoch(epoch)
        with _PKCS11_LOCK:
            # Every one, should two creators ever have raced: none may outlive the schedule.
            for key in self._find_all(KeyType.AES, _cvc_key_label(epoch)):
                key.destroy()

    def cvc_key(self, epoch: int) -> CvcKey | None:
        with _PKCS11_LOCK:
            key = self._cvc_key(epoch)
        return None if key is None else _HsmCvcKey(key)

    def close(self) -> None:
        with _PKCS11_LOCK:
            login, self._login = self._login, None
            self._keks.clear()
            self._fingerprint_keys.clear()
            if login is not None:
                _log_out(self._module_path, self._token_label, login)


def open_key_encryption_keys(
    provider: str,
    *,
    local_directory: Path,
    pkcs11_module: str | None,
    pkcs11_token_label: str | None,
    pkcs11_pin: str | None,
) -> KeyEncryptionKeys:
    """The configured keyring; `ConfigurationError` saying what is wrong otherwise."""
    if provider == "local":
        return LocalKeyEncryptionKeys(local_directory)
    if provider == "pkcs11":
        if not pkcs11_module or not pkcs11_token_label or not pkcs11_pin:
            missing = [
                name
                for name, value in (("module path", pkcs11_module), ("token label", pkcs11_token_label), ("PIN", pkcs11_pin))
                if not value
            ]
            raise ConfigurationError(f"the pkcs11 key-encryption keyring needs its {', '.join(missing)}")
        return Pkcs11KeyEncryptionKeys(pkcs11_module, pkcs11_token_label, pkcs11_pin)
    raise ConfigurationError(f"unknown key-encryption keyring provider {provider!r}: use local or pkcs11")
