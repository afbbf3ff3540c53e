"""Metadata, Stripe's way: up to 50 string pairs a merchant attaches to an object."""


def merge_metadata(current: dict[str, str], changes: dict[str, str | None] | None) -> dict[str, str]:
    """Stripe's rule: keys sent are set, keys sent empty or null are removed, others stay;
    `metadata: null` clears everything."""
    if changes is None:
        return {}
    merged = dict(current)
    for key, value in changes.items():
        if value is None or value == "":
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged
