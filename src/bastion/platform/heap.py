"""The garbage collector in long-running servers."""

import gc


def freeze_startup_objects() -> None:
    """Move everything alive after start-up (modules, apps, pools) out of the collector's reach.

    Without it, each full collection under load walks those ~160,000 objects for nothing
    (they live as long as the process): 90-160 ms stalls every few seconds in the vault,
    which were its slowest requests (docs/benchmarks.md, vault)."""
    gc.freeze()
