from datetime import UTC, datetime


def now() -> datetime:
    return datetime.now(UTC)


def unix_seconds(moment: datetime) -> int:
    return int(moment.timestamp())
