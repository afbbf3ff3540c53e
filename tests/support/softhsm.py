"""A SoftHSM2 token for the tests: one CI prepared (all of BASTION_TEST_PKCS11_MODULE,
BASTION_TEST_PKCS11_TOKEN_LABEL, BASTION_TEST_PKCS11_PIN and SOFTHSM2_CONF set), or else a
private one made here with random PINs, in its own token directory.

SoftHSM2 reads SOFTHSM2_CONF once, when the module is first initialised in a process, so the
token must be made before anything in the process loads the module.
"""

import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

# Debian's softhsm2 package, then the multiarch paths other distributions use.
MODULE_PATHS = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
)
INIT_TIMEOUT_S = 30
_PREPARED = ("BASTION_TEST_PKCS11_MODULE", "BASTION_TEST_PKCS11_TOKEN_LABEL", "BASTION_TEST_PKCS11_PIN", "SOFTHSM2_CONF")
_NOT_INSTALLED = "SoftHSM2 is not installed: install Debian's softhsm2 package (apt-get install softhsm2)"


@dataclass(frozen=True)
class SoftHsmToken:
    module_path: str
    token_label: str
    pin: str
    conf_path: Path

    def env(self) -> dict[str, str]:
        """The environment a subprocess needs to see this token."""
        return {**os.environ, "SOFTHSM2_CONF": str(self.conf_path)}


def module_path() -> str:
    for candidate in MODULE_PATHS:
        if Path(candidate).is_file():
            return candidate
    raise RuntimeError(f"{_NOT_INSTALLED} (no module at {', '.join(MODULE_PATHS)})")


def prepare_token(directory: Path, label: str = "bastion-test") -> SoftHsmToken:
    """The prepared token, or a new one configured in `directory`; sets SOFTHSM2_CONF for this process."""
    if all(os.environ.get(name) for name in _PREPARED):
        return SoftHsmToken(
            module_path=os.environ["BASTION_TEST_PKCS11_MODULE"],
            token_label=os.environ["BASTION_TEST_PKCS11_TOKEN_LABEL"],
            pin=os.environ["BASTION_TEST_PKCS11_PIN"],
            conf_path=Path(os.environ["SOFTHSM2_CONF"]),
        )
    util = shutil.which("softhsm2-util")
    if util is None:
        raise RuntimeError(f"{_NOT_INSTALLED} (no softhsm2-util on PATH)")
    module = module_path()
    tokens = directory / "tokens"
    tokens.mkdir(mode=0o700)
    conf_path = directory / "softhsm2.conf"
    conf_path.write_text(
        f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n"
    )
    os.environ["SOFTHSM2_CONF"] = str(conf_path)
    pin = secrets.token_hex(8)
    subprocess.run(
        [util, "--init-token", "--free", "--label", label, "--so-pin", secrets.token_hex(8), "--pin", pin],
        check=True,
        capture_output=True,
        timeout=INIT_TIMEOUT_S,
    )
    return SoftHsmToken(module_path=module, token_label=label, pin=pin, conf_path=conf_path)
