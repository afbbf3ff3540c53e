"""Local servers that speak the payment processors' wire formats, for tests with no network."""

import os
from pathlib import Path


def vendor_specs() -> Path:
    """Where the providers' published descriptions are: `$BASTION_VENDOR_SPECS`, else the
    repository's sibling `shared/vendor-specs` (as CI lays it)."""
    configured = os.environ.get("BASTION_VENDOR_SPECS")
    return Path(configured) if configured else Path(__file__).resolve().parents[3].parent / "shared" / "vendor-specs"


def require_vendor_specs(*names: str) -> None:
    """Skip the calling test, naming what is missing, unless each of `names` (paths under the
    vendor specs) is there: a clone without the shared folder has none of them."""
    import pytest

    missing = [str(vendor_specs() / name) for name in names if not (vendor_specs() / name).is_file()]
    if missing:
        pytest.skip(f"the processors' published descriptions are missing: {', '.join(missing)} (set BASTION_VENDOR_SPECS)")
