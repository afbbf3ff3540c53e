"""The ledger against a reference model, step by step, on the real database.

Hypothesis drives random sequences of ledger commands (accounts, transfers, FX entries,
holds posted, voided and expired on a fake clock, reversals, closed accounts, replayed
references); an in-memory model predicts for each whether it is accepted and, if not,
the acceptable rejection codes. After every step each account's balance() must equal
the model's four counters, and debits must equal credits per currency over the books.
"""

import functools
import itertools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, TypeVar

import hypothesis
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule, run_state_machine_as_test

from bastion import bootstrap, ledger
from bastion.kernel.ids import new_id
from bastion.ledger import accounts, entries, holds
from bastion.ledger.domain import Direction
from bastion.merchants import create_merchant
from bastion.platform.db import Actor, Database, Tenant, UnitOfWork
from bastion.platform.settings import Settings
from tests.support.clock import ManualClock
from tests.support.loop import LoopThread
from tests.support.postgres import TestDatabase

T = TypeVar("T")

CURRENCIES = ("USD", "EUR", "JPY")
# The model's own copy of the ISO 4217 exponents it needs.
EXPONENTS = {"USD": 2, "EUR": 2, "JPY": 0}
# Half the accounts carry a limit: often enough to hit it, not so often that nothing posts.
LIMITS = (None, None, "debits_must_not_exceed_credits", "credits_must_not_exceed_debits")
LIMIT_CODES = frozenset({"exceeds_credits", "exceeds_debits"})
ACCOUNTS_MAX = 12
# Closing more would leave little to post to.
CLOSED_MAX = 1
AMOUNT_TOTAL_MAX = 5_000
HOLD_TIMEOUT_S_MAX = 900
CLOCK_STEP_S_MAX = 1_200
ACTOR = Actor(id="test.ledger_model")
# An FX leg may be off by one minor unit (rounding); these deltas are within or beyond it.
FX_DELTAS = st.sampled_from([0, 0, 0, 1, -1, 2, -2, 5])


@dataclass(frozen=True)
class _World:
    """What every example shares: the loop, the pools (app, worker, owner) and the clock."""

    loop: LoopThread
    app: Database
    worker: Database
    owner: Database
    clock: ManualClock


# The model


@dataclass(frozen=True)
class Tally:
    debits_posted: int = 0
    credits_posted: int = 0
    debits_pending: int = 0
    credits_pending: int = 0

    def plus(self, direction: Direction, amount_minor: int, *, pending: bool) -> "Tally":
        if pending:
            if direction == "debit":
                return replace(self, debits_pending=self.debits_pending + amount_minor)
            return replace(self, credits_pending=self.credits_pending + amount_minor)
        if direction == "debit":
            return replace(self, debits_posted=self.debits_posted + amount_minor)
        return replace(self, credits_posted=self.credits_posted + amount_minor)

    def breach(self, limit: str | None) -> str | None:
        if limit == "debits_must_not_exceed_credits" and self.debits_posted + self.debits_pending > self.credits_posted:
            return "exceeds_credits"
        if limit == "credits_must_not_exceed_debits" and self.credits_posted + self.credits_pending > self.debits_posted:
            return "exceeds_debits"
        return None


@dataclass
class ModelAccount:
    id: str
    currency: str
    type: ledger.AccountType
    limit: str | None
    exchange: bool
    closed: bool = False
    # As stored: holds past their expiry count until they are released.
    stored: Tally = field(default_factory=Tally)


@dataclass
class ModelHold:
    id: str
    postings: tuple[ledger.PostingDraft, ...]
    fx: ledger.FxQuote | None
    expires_at: datetime
    resolution: str | None = None  # posted, voided or expired


@dataclass
class ModelEntry:
    id: str
    kind: str
    postings: tuple[ledger.PostingDraft, ...]
    fx: ledger.FxQuote | None = None
    reversed: bool = False


def _mirrored(postings: Sequence[ledger.PostingDraft]) -> tuple[ledger.PostingDraft, ...]:
    return tuple(replace(p, direction="credit" if p.direction == "debit" else "debit") for p in postings)


def fx_target_minor(source_minor: int, quote: ledger.FxQuote) -> int:
    """What `source_minor` of the quote's source currency make in its target currency."""
    scale = Decimal(10) ** (EXPONENTS[quote.to_currency] - EXPONENTS[quote.from_currency])
    return int((Decimal(source_minor) * quote.rate * scale).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


class LedgerModel:
    def __init__(self) -> None:
        self.accounts: dict[str, ModelAccount] = {}
        self.holds: list[ModelHold] = []
        self.entries: list[ModelEntry] = []
        self.references: dict[str, tuple[ledger.EntryDraft, str]] = {}
        # What balance() showed at the end of each moment of the clock, for balances as of then.
        self.snapshots: dict[datetime, dict[str, Tally]] = {}
        # Holds past their expiry that the last prediction releases on the way (see predict).
        self.released: list[ModelHold] = []

    def _fx_faults(self, postings: Sequence[ledger.PostingDraft], fx: ledger.FxQuote | None) -> set[str]:
        currencies = {p.currency for p in postings}
        if len(currencies) == 1:
            return {"fx_unexpected"} if fx is not None else set()
        if fx is None:
            return {"fx_required"}
        if {fx.from_currency, fx.to_currency} != currencies:
            return {"fx_currency_mismatch"}
        through = dict.fromkeys(currencies, 0)
        for p in postings:
            if self.accounts[p.account_id].exchange:
                through[p.currency] += p.amount_minor if p.direction == "debit" else -p.amount_minor
        if 0 in through.values():
            return {"exchange_account_required"}
        if abs(fx_target_minor(abs(through[fx.from_currency]), fx) - abs(through[fx.to_currency])) > 1:
            return {"fx_rate_mismatch"}
        return set()

    def predict(
        self,
        postings: Sequence[ledger.PostingDraft],
        *,
        pending: bool,
        fx: ledger.FxQuote | None = None,
        releases: Sequence[ledger.PostingDraft] = (),
        moment: datetime | None = None,
    ) -> tuple[set[str], dict[str, Tally]]:
        """Every reason to refuse the entry (any of them is an acceptable answer), and
        the stored counters it leaves behind if there is none. `releases` are the
        pending postings of a hold the entry resolves.

        When only an account limit refuses the entry at `moment`, the ledger first
        releases the holds past their expiry on the entry's accounts (the expiry job has
        not yet), and takes the entry if that makes room; `apply` then expires them."""
        self.released = []
        faults, after = self._outcome(postings, pending=pending, fx=fx, releases=releases, start={})
        if not faults or not faults <= LIMIT_CODES or moment is None:
            return faults, after
        touched = {posting.account_id for posting in postings}
        due = [
            hold
            for hold in self.holds
            if hold.resolution is None and hold.expires_at <= moment and touched & {p.account_id for p in hold.postings}
        ]
        if not due:
            return faults, after
        start: dict[str, Tally] = {}
        for hold in due:
            for posting in hold.postings:
                tally = start.get(posting.account_id, self.accounts[posting.account_id].stored)
                start[posting.account_id] = tally.plus(posting.direction, -posting.amount_minor, pending=True)
        faults, after = self._outcome(postings, pending=pending, fx=fx, releases=releases, start=start)
        if not faults:
            self.released = due
            after = {**start, **after}
        return faults, after

    def _outcome(
        self,
        postings: Sequence[ledger.PostingDraft],
        *,
        pending: bool,
        fx: ledger.FxQuote | None,
        releases: Sequence[ledger.PostingDraft],
        start: dict[str, Tally],
    ) -> tuple[set[str], dict[str, Tally]]:
        """`predict` from the stored counters, or `start` where it names an account."""
        faults: set[str] = set()
        after: dict[str, Tally] = {}
        for posting in postings:
            account = self.accounts[posting.account_id]
            if account.closed:
                faults.add("account_closed")
            if posting.currency != account.currency:
                faults.add("currency_mismatch")
            tally = after.get(posting.account_id, start.get(posting.account_id, account.stored))
            after[posting.account_id] = tally.plus(posting.direction, posting.amount_minor, pending=pending)
        if postings:
            faults |= self._fx_faults(postings, fx)
        for posting in releases:
            tally = after.get(posting.account_id, start.get(posting.account_id, self.accounts[posting.account_id].stored))
            after[posting.account_id] = tally.plus(posting.direction, -posting.amount_minor, pending=True)
        for account_id, tally in after.items():
            code = tally.breach(self.accounts[account_id].limit)
            if code is not None:
                faults.add(code)
        return faults, after

    def apply(self, after: dict[str, Tally]) -> None:
        for account_id, tally in after.items():
            self.accounts[account_id].stored = tally
        for hold in self.released:
            hold.resolution = "expired"
        self.released = []

    def visible(self, account_id: str, moment: datetime) -> Tally:
        """The counters balance() shows: holds past their expiry are left out at once."""
        tally = self.accounts[account_id].stored
        for hold in self.holds:
            if hold.resolution is None and hold.expires_at <= moment:
                for posting in hold.postings:
                    if posting.account_id == account_id:
                        tally = tally.plus(posting.direction, -posting.amount_minor, pending=True)
        return tally


def expected_balance(account: ModelAccount, tally: Tally) -> dict[str, Any]:
    debit_normal = account.type in (ledger.AccountType.ASSET, ledger.AccountType.EXPENSE)
    sign = 1 if debit_normal else -1
    posted = sign * (tally.debits_posted - tally.credits_posted)
    outflow = tally.credits_pending if debit_normal else tally.debits_pending
    return {
        "account": account.id,
        "currency": account.currency,
        "debits_posted": tally.debits_posted,
        "credits_posted": tally.credits_posted,
        "debits_pending": tally.debits_pending,
        "credits_pending": tally.credits_pending,
        "posted": posted,
        "pending": sign * (tally.debits_pending - tally.credits_pending),
        "available": posted - outflow,
    }


# The machine


Outcome = dict[str, Any] | ledger.LedgerRejected


def _split(data: st.DataObject, total: int, parts: int) -> list[int]:
    """`total` as `parts` positive amounts."""
    cuts = sorted(data.draw(st.lists(st.integers(1, total - 1), min_size=parts - 1, max_size=parts - 1, unique=True)))
    bounds = [0, *cuts, total]
    return [high - low for low, high in itertools.pairwise(bounds)]


async def _retrieve_entry(uow: UnitOfWork, entry_id: str) -> dict[str, Any]:
    return await entries.retrieve_entry(uow, entry_id)


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self, world: _World) -> None:
        super().__init__()
        self.world = world
        self.model = LedgerModel()
        self.tenant = Tenant(new_id("mer"), False)
        self.references_made = 0
        world.loop.run(self._create_merchant())

    async def _create_merchant(self) -> None:
        async with self.world.owner.unit_of_work(self.tenant, ACTOR) as uow:
            await create_merchant(uow, "Ledger model")

    # Talking to the ledger

    def attempt(self, operation: Callable[[UnitOfWork], Awaitable[dict[str, Any]]]) -> Outcome:
        async def run() -> Outcome:
            try:
                async with self.world.app.unit_of_work(self.tenant, ACTOR) as uow:
                    return await operation(uow)
            except ledger.LedgerRejected as error:
                return error

        return self.world.loop.run(run())

    @staticmethod
    def expect(outcome: Outcome, faults: set[str], what: str) -> dict[str, Any] | None:
        if faults:
            wanted = sorted(faults)
            assert isinstance(outcome, ledger.LedgerRejected), f"{what}: the model refuses it ({wanted}), the ledger took it"
            assert outcome.code in faults, f"{what}: rejected with {outcome.code} ({outcome}), the model expects {wanted}"
            return None
        assert not isinstance(outcome, ledger.LedgerRejected), (
            f"{what}: the model takes it, the ledger rejected it with {outcome.code}: {outcome} (param {outcome.param})"
        )
        return outcome

    @property
    def now(self) -> datetime:
        return self.world.clock.moment

    def _add_account(self, currency: str, type_: ledger.AccountType, limit: str | None, *, exchange: bool, stripes: int) -> None:
        draft = ledger.AccountDraft(
            currency=currency,
            type=type_,
            exchange=exchange,
            debits_must_not_exceed_credits=limit == "debits_must_not_exceed_credits",
            credits_must_not_exceed_debits=limit == "credits_must_not_exceed_debits",
            stripes=stripes,
        )
        created = self.expect(self.attempt(lambda uow: ledger.create_account(uow, draft)), set(), "create account")
        assert created is not None
        self.model.accounts[created["id"]] = ModelAccount(created["id"], currency, type_, limit, exchange)

    def _record_written(self, draft: ledger.EntryDraft, entry: dict[str, Any], after: dict[str, Tally]) -> None:
        self.model.apply(after)
        if draft.pending:
            assert entry["status"] == "pending", entry
            timeout_s = draft.timeout_s or 0
            self.model.holds.append(ModelHold(entry["id"], draft.postings, draft.fx, self.now + timedelta(seconds=timeout_s)))
            self.model.entries.append(ModelEntry(entry["id"], "pending", draft.postings, draft.fx))
        else:
            assert entry["status"] == "posted", entry
            self.model.entries.append(ModelEntry(entry["id"], "standard", draft.postings, draft.fx))
        if draft.reference is not None:
            self.model.references[draft.reference] = (draft, entry["id"])

    def _post(self, draft: ledger.EntryDraft, what: str) -> None:
        faults, after = self.model.predict(draft.postings, pending=draft.pending, fx=draft.fx, moment=self.now)
        entry = self.expect(self.attempt(lambda uow: ledger.post_entry(uow, draft)), faults, what)
        if entry is not None:
            self._record_written(draft, entry, after)

    def _draw_extras(self, data: st.DataObject, *, pending: bool) -> dict[str, Any]:
        extras: dict[str, Any] = {"description": data.draw(st.sampled_from([None, "rent", "payout"]), label="description")}
        if data.draw(st.booleans(), label="with reference"):
            self.references_made += 1
            extras["reference"] = f"ref-{self.references_made}"
        if pending:
            extras["pending"] = True
            extras["timeout_s"] = data.draw(st.integers(1, HOLD_TIMEOUT_S_MAX), label="timeout_s")
        return extras

    def _open_hold_due(self, hold: ModelHold) -> bool:
        return hold.resolution is None and hold.expires_at <= self.now

    def _pick_hold(self, data: st.DataObject) -> ModelHold:
        """Mostly a hold still open; now and then any, to see resolved ones refused."""
        open_holds = [hold for hold in self.model.holds if hold.resolution is None]
        if open_holds and data.draw(st.integers(0, 4), label="any hold if 0") != 0:
            return data.draw(st.sampled_from(open_holds), label="open hold")
        return data.draw(st.sampled_from(self.model.holds), label="hold")

    def _hold_faults(self, hold: ModelHold) -> set[str]:
        """Why a hold cannot be posted or voided now, if it cannot."""
        if hold.resolution is not None:
            return {f"hold_already_{hold.resolution}"}
        if hold.expires_at <= self.now:
            return {"hold_expired"}
        return set()

    # Rules

    @initialize(data=st.data())
    def open_books(self, data: st.DataObject) -> None:
        """An exchange account and a plain one in each currency, so that FX entries can happen early."""
        for currency in CURRENCIES:
            self._add_account(currency, ledger.AccountType.ASSET, None, exchange=True, stripes=1)
            limit = data.draw(st.sampled_from(LIMITS), label=f"limit of the {currency} account")
            type_ = data.draw(st.sampled_from(list(ledger.AccountType)), label=f"type of the {currency} account")
            self._add_account(currency, type_, limit, exchange=False, stripes=1)

    @precondition(lambda self: len(self.model.accounts) < ACCOUNTS_MAX)
    @rule(
        currency=st.sampled_from(CURRENCIES),
        type_=st.sampled_from(list(ledger.AccountType)),
        limit=st.sampled_from(LIMITS),
        exchange=st.booleans(),
        striped=st.booleans(),
    )
    def create_account(self, currency: str, type_: ledger.AccountType, limit: str | None, exchange: bool, striped: bool) -> None:
        # Striped balances take no limit (checked on one row): stripes only for unlimited accounts.
        self._add_account(currency, type_, limit, exchange=exchange, stripes=3 if striped and limit is None else 1)

    def _random_postings(self, data: st.DataObject) -> tuple[ledger.PostingDraft, ...]:
        """2 to 4 balanced postings in one currency; sometimes one names an account of another currency."""
        accounts = sorted(self.model.accounts.values(), key=lambda account: account.id)
        currency = data.draw(st.sampled_from(CURRENCIES), label="currency")
        candidates = [account.id for account in accounts if account.currency == currency]
        count = data.draw(st.integers(2, 4), label="postings")
        debits = data.draw(st.integers(1, count - 1), label="debits")
        total = data.draw(st.integers(count, AMOUNT_TOTAL_MAX), label="total")
        amounts: list[tuple[Direction, int]] = [("debit", amount) for amount in _split(data, total, debits)]
        amounts += [("credit", amount) for amount in _split(data, total, count - debits)]
        postings = [
            ledger.PostingDraft(data.draw(st.sampled_from(candidates), label="account"), direction, amount, currency)
            for direction, amount in amounts
        ]
        if data.draw(st.integers(0, 9), label="wrong currency if 0") == 0:
            index = data.draw(st.integers(0, count - 1), label="wrong posting")
            other = [account.id for account in accounts if account.currency != currency]
            postings[index] = replace(postings[index], account_id=data.draw(st.sampled_from(other), label="foreign account"))
        return tuple(data.draw(st.permutations(postings), label="order"))

    @rule(data=st.data(), pending=st.booleans())
    def post_entry(self, data: st.DataObject, pending: bool) -> None:
        draft = ledger.EntryDraft(postings=self._random_postings(data), **self._draw_extras(data, pending=pending))
        self._post(draft, "hold" if pending else "entry")

    @rule(data=st.data(), pending=st.booleans())
    def post_fx_entry(self, data: st.DataObject, pending: bool) -> None:
        """Source → exchange (source currency) | exchange (target currency) → destination."""
        source_currency, target_currency = data.draw(st.permutations(CURRENCIES), label="currencies")[:2]
        accounts = sorted(self.model.accounts.values(), key=lambda account: account.id)

        def pick(currency: str, *, exchange: bool, label: str) -> str:
            """An account of `currency`, exchange or not; now and then any (the model knows what that does)."""
            ids = [a.id for a in accounts if a.currency == currency and a.exchange == exchange]
            if data.draw(st.integers(0, 9), label=f"{label}: any account if 0") == 0:
                ids = [a.id for a in accounts if a.currency == currency]
            return data.draw(st.sampled_from(ids), label=label)

        quote = ledger.FxQuote(
            from_currency=source_currency,
            to_currency=target_currency,
            rate=data.draw(st.decimals(Decimal("0.0001"), Decimal(200), places=4), label="rate"),
            source="test",
            quoted_at=self.now,
        )
        source_minor = data.draw(st.integers(1, AMOUNT_TOTAL_MAX), label="source amount")
        target_minor = max(1, fx_target_minor(source_minor, quote) + data.draw(FX_DELTAS, label="delta"))
        source, target = source_currency, target_currency
        postings = (
            ledger.PostingDraft(pick(source, exchange=False, label="payer"), "credit", source_minor, source),
            ledger.PostingDraft(pick(source, exchange=True, label="exchange in"), "debit", source_minor, source),
            ledger.PostingDraft(pick(target, exchange=True, label="exchange out"), "credit", target_minor, target),
            ledger.PostingDraft(pick(target, exchange=False, label="payee"), "debit", target_minor, target),
        )
        draft = ledger.EntryDraft(postings=postings, fx=quote, **self._draw_extras(data, pending=pending))
        self._post(draft, "fx hold" if pending else "fx entry")

    @precondition(lambda self: bool(self.model.holds))
    @rule(data=st.data())
    def post_hold(self, data: st.DataObject) -> None:
        hold = self._pick_hold(data)
        amount_minor: int | None = None
        if data.draw(st.booleans(), label="partially"):
            held = hold.postings[0].amount_minor if len(hold.postings) == 2 else 10
            amount_minor = data.draw(st.integers(0, held + 1), label="amount_minor")
        faults = self._hold_faults(hold)
        posted = hold.postings
        after: dict[str, Tally] = {}
        if not faults and amount_minor is not None:
            if amount_minor < 1:
                faults = {"parameter_invalid"}
            elif len(posted) != 2:
                faults = {"partial_post_unsupported"}
            elif amount_minor > posted[0].amount_minor:
                faults = {"amount_exceeds_pending"}
            else:
                posted = tuple(replace(p, amount_minor=amount_minor) for p in posted)
        if not faults:
            faults, after = self.model.predict(posted, pending=False, fx=hold.fx, releases=hold.postings, moment=self.now)
        entry = self.expect(
            self.attempt(lambda uow: ledger.post_pending(uow, hold.id, amount_minor)), faults, f"post hold for {amount_minor}"
        )
        if entry is not None:
            assert entry["pending_entry"] == hold.id
            self.model.apply(after)
            hold.resolution = "posted"
            self.model.entries.append(ModelEntry(entry["id"], "post_pending", posted, hold.fx))

    @precondition(lambda self: bool(self.model.holds))
    @rule(data=st.data())
    def void_hold(self, data: st.DataObject) -> None:
        hold = self._pick_hold(data)
        faults = self._hold_faults(hold)
        after: dict[str, Tally] = {}
        if not faults:
            faults, after = self.model.predict((), pending=False, releases=hold.postings)
        entry = self.expect(self.attempt(lambda uow: ledger.void_pending(uow, hold.id)), faults, "void hold")
        if entry is not None:
            self.model.apply(after)
            hold.resolution = "voided"
            self.model.entries.append(ModelEntry(entry["id"], "void_pending", ()))

    @rule(seconds=st.integers(1, CLOCK_STEP_S_MAX))
    def advance_clock(self, seconds: int) -> None:
        self.world.clock.advance(timedelta(seconds=seconds))

    @precondition(lambda self: bool(self.model.holds))
    @rule(data=st.data())
    def expire_hold(self, data: st.DataObject) -> None:
        """The expiry job's step for one hold: only a hold past its expiry, and only once."""
        hold = self._pick_hold(data)
        faults: set[str] = set()
        after: dict[str, Tally] = {}
        if hold.resolution is not None:
            faults = {f"hold_already_{hold.resolution}"}
        elif hold.expires_at > self.now:
            faults = {"hold_not_due"}
        else:
            # Checked on read: expired before the job releases it.
            shown = self.world.loop.run(self._read(lambda uow: entries.retrieve_entry(uow, hold.id)))
            assert shown["status"] == "expired", shown
            faults, after = self.model.predict((), pending=False, releases=hold.postings)
        entry = self.expect(self.attempt(lambda uow: holds.expire_hold(uow, hold.id)), faults, "expire hold")
        if entry is not None:
            self.model.apply(after)
            hold.resolution = "expired"
            self.model.entries.append(ModelEntry(entry["id"], "expire_pending", ()))

    @precondition(lambda self: any(self._open_hold_due(hold) for hold in self.model.holds))
    @rule()
    def run_expiry_job(self) -> None:
        """The worker's job, as the worker role: every hold past its expiry is released
        (other examples' merchants may have some too, hence at least)."""
        due = [hold for hold in self.model.holds if self._open_hold_due(hold)]
        expired = self.world.loop.run(ledger.expire_due_holds(self.world.worker))
        assert expired >= len(due)
        for hold in due:
            _, after = self.model.predict((), pending=False, releases=hold.postings)
            self.model.apply(after)
            hold.resolution = "expired"
            shown = self.world.loop.run(self._read(functools.partial(_retrieve_entry, entry_id=hold.id)))
            assert shown["status"] == "expired"
            assert shown["resolved_by"] is not None
            self.model.entries.append(ModelEntry(shown["resolved_by"], "expire_pending", ()))

    @precondition(lambda self: bool(self.model.entries))
    @rule(data=st.data())
    def reverse_entry(self, data: st.DataObject) -> None:
        entry = data.draw(st.sampled_from(self.model.entries), label="entry")
        after: dict[str, Tally] = {}
        mirrored = _mirrored(entry.postings)
        if entry.kind == "pending":
            faults = {"entry_is_hold"}
        elif entry.kind not in ("standard", "post_pending"):
            faults = {"entry_not_reversible"}
        elif entry.reversed:
            faults = {"entry_already_reversed"}
        else:
            faults, after = self.model.predict(mirrored, pending=False, fx=entry.fx, moment=self.now)
        reversal = self.expect(self.attempt(lambda uow: ledger.reverse_entry(uow, entry.id)), faults, f"reverse {entry.kind}")
        if reversal is not None:
            assert reversal["reverses"] == entry.id
            self.model.apply(after)
            entry.reversed = True
            self.model.entries.append(ModelEntry(reversal["id"], "reversal", mirrored, entry.fx))

    @precondition(lambda self: sum(account.closed for account in self.model.accounts.values()) < CLOSED_MAX)
    @rule(data=st.data())
    def close_account(self, data: st.DataObject) -> None:
        account = data.draw(st.sampled_from(sorted(self.model.accounts.values(), key=lambda a: a.id)), label="account")
        closed = self.expect(self.attempt(lambda uow: accounts.close_account(uow, account.id)), set(), "close account")
        assert closed is not None
        assert closed["closed"] is True
        account.closed = True

    @precondition(lambda self: bool(self.model.references))
    @rule(data=st.data(), change=st.sampled_from([None, "description", "metadata", "amounts", "directions"]))
    def replay_reference(self, data: st.DataObject, change: str | None) -> None:
        """The same content answers with the stored entry, whatever happened since; other content is refused."""
        reference = data.draw(st.sampled_from(sorted(self.model.references)), label="reference")
        stored, entry_id = self.model.references[reference]
        changed = {
            None: (stored, None),
            "description": (replace(stored, description=(stored.description or "") + "!"), "description"),
            "metadata": (replace(stored, metadata={"changed": "yes"}), "metadata"),
            "amounts": (
                replace(stored, postings=tuple(replace(p, amount_minor=2 * p.amount_minor) for p in stored.postings)),
                "postings[0][amount_minor]",
            ),
            "directions": (replace(stored, postings=_mirrored(stored.postings)), "postings[0][direction]"),
        }
        draft, param = changed[change]
        outcome = self.attempt(lambda uow: ledger.post_entry(uow, draft))
        if param is None:
            replayed = self.expect(outcome, set(), "replay")
            assert replayed is not None
            assert replayed["id"] == entry_id
        else:
            self.expect(outcome, {"reference_reused"}, f"replay with other {change}")
            assert isinstance(outcome, ledger.LedgerRejected)
            assert outcome.param == param, outcome

    @precondition(lambda self: any(moment < self.now for moment in self.model.snapshots))
    @rule(data=st.data())
    def balances_as_of(self, data: st.DataObject) -> None:
        """Balances at a past moment of the clock, from the journal alone, are what they were then."""
        moment = data.draw(st.sampled_from(sorted(m for m in self.model.snapshots if m < self.now)), label="as of")
        then = self.model.snapshots[moment]

        async def balances(uow: UnitOfWork) -> dict[str, dict[str, Any]]:
            return {account_id: await ledger.balance(uow, account_id, moment) for account_id in sorted(self.model.accounts)}

        for account_id, shown in self.world.loop.run(self._read(balances)).items():
            wanted = expected_balance(self.model.accounts[account_id], then.get(account_id, Tally()))
            assert {name: shown[name] for name in wanted} == wanted, f"balance of {account_id} as of {moment}"

    # Invariants

    async def _read(self, operation: Callable[[UnitOfWork], Awaitable[T]]) -> T:
        async with self.world.app.unit_of_work(self.tenant, ACTOR) as uow:
            return await operation(uow)

    async def _balances(self, uow: UnitOfWork) -> dict[str, dict[str, Any]]:
        return {account_id: await ledger.balance(uow, account_id) for account_id in sorted(self.model.accounts)}

    @invariant()
    def books_agree(self) -> None:
        balances = self.world.loop.run(self._read(self._balances))
        posted: dict[str, int] = dict.fromkeys(CURRENCIES, 0)
        pending: dict[str, int] = dict.fromkeys(CURRENCIES, 0)
        for account_id, shown in balances.items():
            account = self.model.accounts[account_id]
            wanted = expected_balance(account, self.model.visible(account_id, self.now))
            assert {name: shown[name] for name in wanted} == wanted, f"balance of {account_id} ({account})"
            posted[account.currency] += shown["debits_posted"] - shown["credits_posted"]
            pending[account.currency] += shown["debits_pending"] - shown["credits_pending"]
        assert posted == dict.fromkeys(CURRENCIES, 0), f"posted debits less credits per currency: {posted}"
        assert pending == dict.fromkeys(CURRENCIES, 0), f"pending debits less credits per currency: {pending}"
        self.model.snapshots[self.now] = {account_id: self.model.visible(account_id, self.now) for account_id in balances}


def test_ledger_agrees_with_its_model(settings: Settings, test_database: TestDatabase) -> None:
    loop = LoopThread("ledger-model-loop")
    roles = test_database.roles
    # The ledger's time, on every pool: it moves only when a rule advances it.
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0))
    world = _World(
        loop=loop,
        app=bootstrap.role_database(settings, test_database.owner_url, roles.app, clock=clock),
        worker=bootstrap.role_database(settings, test_database.owner_url, roles.worker, clock=clock),
        owner=bootstrap.owner_database(test_database.owner_url, clock=clock),
        clock=clock,
    )
    try:

        class Machine(LedgerMachine):
            def __init__(self) -> None:
                super().__init__(world)

        run_state_machine_as_test(
            Machine,
            settings=hypothesis.settings(
                max_examples=25,
                stateful_step_count=35,
                deadline=None,
                suppress_health_check=[hypothesis.HealthCheck.too_slow],
            ),
        )
    finally:
        for database in (world.app, world.worker, world.owner):
            loop.run(database.dispose())
        loop.close()
