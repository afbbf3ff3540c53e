from datetime import UTC, datetime, timedelta

from bastion.kernel.ids import created_at, new_id


def test_an_id_tells_when_it_was_made() -> None:
    before = datetime.now(UTC)
    made = created_at(new_id("ch"))
    assert before - timedelta(milliseconds=1) <= made <= datetime.now(UTC)
