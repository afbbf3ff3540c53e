"""Local servers that speak the payment processors' wire formats, for tests with no network."""

import os
from pathlib import Path


def vendor_specs() -> Path:
    """Where the providers' published descriptions are: `$BASTION_VENDOR_SPECS`, else the
    repository's sibling `shared/vendor-specs` (as CI lays it)."""
    configured = os.environ.get("BASTION_VENDOR_SPECS")
    return Path(configured) if configured else Path(__file__).resolve().parents[3].parent / "shared" / "vendor-specs"
