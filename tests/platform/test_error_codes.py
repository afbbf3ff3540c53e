"""Every error code is defined once, as a class, and documented in docs/api.md: the table
there and the classes cannot drift apart."""

import re
from pathlib import Path

# Every module that defines error classes, imported so that the walk of subclasses sees them all.
import bastion.api.context
import bastion.customers
import bastion.kernel.money
import bastion.ledger
import bastion.merchants.errors
import bastion.payments.errors
import bastion.platform.http.errors
import bastion.vault.errors
from bastion.kernel import errors
from bastion.platform.http.errors import status_of

DOCS = Path(__file__).resolve().parents[2] / "docs" / "api.md"
# A row of the table: | `code` | `type` | status | when |
_ROW = re.compile(r"^\| `([a-z_]+)` \| `([a-z_]+)` \| (\d{3}) \|", re.MULTILINE)
_SNAKE = re.compile(r"^[a-z]+(_[a-z0-9]+)*$")


def _error_classes() -> list[type[errors.BastionError]]:
    found: list[type[errors.BastionError]] = []
    pending: list[type[errors.BastionError]] = [errors.BastionError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


def _status(cls: type[errors.BastionError]) -> int:
    if cls is bastion.platform.http.errors.HttpError:
        return 400  # the framework's own status, 400 when it gives none
    # status_of looks at the class only: an instance without __init__ serves.
    return status_of(cls.__new__(cls))


def _documented() -> dict[str, tuple[str, int]]:
    return {code: (type_, int(status)) for code, type_, status in _ROW.findall(DOCS.read_text())}


def test_every_code_is_snake_case_and_one_meaning() -> None:
    meanings: dict[str, set[tuple[str, int]]] = {}
    for cls in _error_classes():
        assert _SNAKE.fullmatch(cls.code), f"{cls.__qualname__}.code {cls.code!r}"
        meanings.setdefault(cls.code, set()).add((cls.type, _status(cls)))
    shared = {code: found for code, found in meanings.items() if len(found) > 1}
    assert not shared, f"codes with more than one type or status: {shared}"


def test_the_code_table_in_the_docs_is_the_classes() -> None:
    classes = {cls.code: (cls.type, _status(cls)) for cls in _error_classes()}
    documented = _documented()
    assert sorted(set(classes) - set(documented)) == [], "codes missing from docs/api.md"
    assert sorted(set(documented) - set(classes)) == [], "codes in docs/api.md that no class raises"
    wrong = {code: (documented[code], classes[code]) for code in classes if documented[code] != classes[code]}
    assert not wrong, f"(documented, actual) type and status: {wrong}"


def test_no_raise_site_names_a_code() -> None:
    source = Path(bastion.api.context.__file__).resolve().parents[1]
    sites = [
        f"{path.relative_to(source)}:{number}"
        for path in source.rglob("*.py")
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\bcode=f?[\"']", line)
    ]
    assert sites == []
