"""Every error code is defined once, as a class, and documented in docs/api.md: the table
there and the classes cannot drift apart."""

import functools
import importlib
import pkgutil
import re
from pathlib import Path

import bastion
from bastion.kernel import errors
from bastion.platform.http.errors import HttpError, status_of

DOCS = Path(__file__).resolve().parents[2] / "docs" / "api.md"
# A row of the table: | `code` | `type` | status | when |
_ROW = re.compile(r"^\| `([a-z_]+)` \| `([a-z_]+)` \| (\d{3}) \|", re.MULTILINE)
_SNAKE = re.compile(r"^[a-z]+(_[a-z0-9]+)*$")

# Codes that unrelated classes define alike on purpose: one meaning at two layers.
SHARED_CODES = {
    # Money arithmetic in the kernel; in the ledger a posting in another currency than its
    # account's, a LedgerRejected like every refusal its batches collect.
    "currency_mismatch": {"bastion.kernel.money.CurrencyMismatch", "bastion.ledger.errors.CurrencyMismatch"},
}


def _name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


@functools.cache
def _error_classes() -> tuple[type[errors.BastionError], ...]:
    # Every module of every context, so that an errors.py nobody imports here is seen too. Not
    # the migrations (Alembic runs env.py on import) nor `python -m bastion` (it runs the CLI).
    for module in pkgutil.walk_packages(bastion.__path__, "bastion."):
        if not module.name.startswith("bastion.migrations") and not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    found: list[type[errors.BastionError]] = []
    pending: list[type[errors.BastionError]] = [errors.BastionError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return tuple(found)


def _status(cls: type[errors.BastionError]) -> int:
    if cls is HttpError:
        return 400  # the framework's own status, 400 when it gives none
    # status_of looks at the class only: an instance without __init__ serves.
    return status_of(cls.__new__(cls))


def _documented() -> dict[str, tuple[str, int]]:
    return {code: (type_, int(status)) for code, type_, status in _ROW.findall(DOCS.read_text())}


def test_every_context_is_walked() -> None:
    modules = {cls.__module__ for cls in _error_classes()}
    assert {"bastion.vault.errors", "bastion.payments.errors", "bastion.merchants.errors", "bastion.ledger.errors"} <= modules


def test_every_code_is_snake_case_and_one_meaning() -> None:
    meanings: dict[str, set[tuple[str, int]]] = {}
    for cls in _error_classes():
        assert _SNAKE.fullmatch(cls.code), f"{cls.__qualname__}.code {cls.code!r}"
        meanings.setdefault(cls.code, set()).add((cls.type, _status(cls)))
    shared = {code: found for code, found in meanings.items() if len(found) > 1}
    assert not shared, f"codes with more than one type or status: {shared}"


def test_each_code_is_defined_by_one_class() -> None:
    # A subclass may inherit its parent's code (LedgerRejected is `parameter_invalid`); two
    # classes outside one line of descent may not define the same one, but for SHARED_CODES.
    defined: dict[str, list[type[errors.BastionError]]] = {}
    for cls in _error_classes():
        if "code" in vars(cls):
            defined.setdefault(cls.code, []).append(cls)
    shared: dict[str, set[str]] = {}
    for code, classes in defined.items():
        roots = [cls for cls in classes if not any(other is not cls and issubclass(cls, other) for other in classes)]
        if len(roots) > 1:
            shared[code] = {_name(cls) for cls in roots}
    assert shared == SHARED_CODES


def test_every_code_says_when() -> None:
    silent = {_name(cls) for cls in _error_classes() if "code" in vars(cls) and not (cls.__doc__ or "").strip()}
    assert silent == set()


def test_the_code_table_in_the_docs_is_the_classes() -> None:
    classes = {cls.code: (cls.type, _status(cls)) for cls in _error_classes()}
    documented = _documented()
    assert sorted(set(classes) - set(documented)) == [], "codes missing from docs/api.md"
    assert sorted(set(documented) - set(classes)) == [], "codes in docs/api.md that no class raises"
    wrong = {code: (documented[code], classes[code]) for code in classes if documented[code] != classes[code]}
    assert not wrong, f"(documented, actual) type and status: {wrong}"


def test_no_raise_site_names_a_code() -> None:
    source = Path(bastion.__file__).resolve().parent
    sites = [
        f"{path.relative_to(source)}:{number}"
        for path in source.rglob("*.py")
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\bcode=f?[\"']", line)
    ]
    assert sites == []
