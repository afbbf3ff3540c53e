"""The SQL of the ledger's journal check: the only other module of the ledger with SQL
(its request-path SQL is in `repository`)."""

from bastion.platform.db import AnyRow, Connection

# The operator's journal check (`bastion ledger check`, as the owner): one set-based
# query per invariant over every tenant, each answering its first offending row (in id
# order) or nothing, so that a journal of millions of rows is read a few times, never
# row by row.
_CHECK_TIMEOUT_S = 3_600
_CHECK_UNBALANCED_ENTRY = """
SELECT entry_id, currency, sum(CASE WHEN is_credit THEN -amount_minor ELSE amount_minor END) AS net_minor
FROM ledger_postings
GROUP BY entry_id, currency
HAVING sum(CASE WHEN is_credit THEN -amount_minor ELSE amount_minor END) <> 0
ORDER BY entry_id, currency
LIMIT 1
"""
# $1, $2: the fewest and most postings an entry that moves money has.
_CHECK_POSTING_COUNT = """
SELECT e.id AS entry_id, e.kind, coalesce(c.postings, 0) AS postings
FROM ledger_entries e
LEFT JOIN (SELECT entry_id, count(*) AS postings FROM ledger_postings GROUP BY entry_id) c ON c.entry_id = e.id
WHERE CASE WHEN e.kind IN ('void_pending', 'expire_pending') THEN coalesce(c.postings, 0) <> 0
           ELSE coalesce(c.postings, 0) NOT BETWEEN $1 AND $2 END
ORDER BY e.id
LIMIT 1
"""
# A posting belongs to an entry of its own tenant (no foreign key: see ADR 8) and to an
# account in its currency.
_CHECK_POSTING_ACCOUNT = """
SELECT p.entry_id, p.idx, p.account_id, p.currency, a.currency AS account_currency, e.id IS NULL AS orphan,
    (e.merchant_id, e.livemode) IS DISTINCT FROM (p.merchant_id, p.livemode) AS other_tenant
FROM ledger_postings p
LEFT JOIN ledger_accounts a ON a.id = p.account_id
LEFT JOIN ledger_entries e ON e.id = p.entry_id
WHERE e.id IS NULL OR (e.merchant_id, e.livemode) <> (p.merchant_id, p.livemode) OR a.id IS NULL OR a.currency <> p.currency
ORDER BY p.entry_id, p.idx
LIMIT 1
"""
# Posted counters sum the postings that are not pending; pending counters sum the
# postings of holds that no entry has resolved yet.
_CHECK_STORED_BALANCES = """
WITH journal AS (
    SELECT p.account_id,
        coalesce(sum(p.amount_minor) FILTER (WHERE NOT p.is_pending AND NOT p.is_credit), 0) AS debits_posted,
        coalesce(sum(p.amount_minor) FILTER (WHERE NOT p.is_pending AND p.is_credit), 0) AS credits_posted,
        coalesce(sum(p.amount_minor) FILTER (WHERE p.is_pending AND r.pending_entry_id IS NULL AND NOT p.is_credit), 0)
            AS debits_pending,
        coalesce(sum(p.amount_minor) FILTER (WHERE p.is_pending AND r.pending_entry_id IS NULL AND p.is_credit), 0)
            AS credits_pending
    FROM ledger_postings p
    LEFT JOIN (SELECT pending_entry_id FROM ledger_entries WHERE pending_entry_id IS NOT NULL) r
        ON r.pending_entry_id = p.entry_id
    GROUP BY p.account_id
), stored AS (
    SELECT account_id, sum(debits_posted) AS debits_posted, sum(credits_posted) AS credits_posted,
        sum(debits_pending) AS debits_pending, sum(credits_pending) AS credits_pending
    FROM ledger_balances
    GROUP BY account_id
)
SELECT account_id,
    coalesce(s.debits_posted, 0) AS stored_debits_posted, coalesce(j.debits_posted, 0) AS journal_debits_posted,
    coalesce(s.credits_posted, 0) AS stored_credits_posted, coalesce(j.credits_posted, 0) AS journal_credits_posted,
    coalesce(s.debits_pending, 0) AS stored_debits_pending, coalesce(j.debits_pending, 0) AS journal_debits_pending,
    coalesce(s.credits_pending, 0) AS stored_credits_pending, coalesce(j.credits_pending, 0) AS journal_credits_pending
FROM stored s FULL JOIN journal j USING (account_id)
WHERE (coalesce(s.debits_posted, 0), coalesce(s.credits_posted, 0), coalesce(s.debits_pending, 0), coalesce(s.credits_pending, 0))
   <> (coalesce(j.debits_posted, 0), coalesce(j.credits_posted, 0), coalesce(j.debits_pending, 0), coalesce(j.credits_pending, 0))
ORDER BY account_id
LIMIT 1
"""
# The account's flags, not the balance row's copy of them (which the CHECK constraints read).
_CHECK_BALANCE_LIMITS = """
SELECT b.account_id, b.stripe, b.debits_posted, b.credits_posted, b.debits_pending, b.credits_pending,
    a.debits_must_not_exceed_credits OR b.debits_must_not_exceed_credits AS debits_must_not_exceed_credits
FROM ledger_balances b JOIN ledger_accounts a ON a.id = b.account_id
WHERE ((a.debits_must_not_exceed_credits OR b.debits_must_not_exceed_credits)
        AND b.debits_posted::numeric + b.debits_pending > b.credits_posted)
   OR ((a.credits_must_not_exceed_debits OR b.credits_must_not_exceed_debits)
        AND b.credits_posted::numeric + b.credits_pending > b.debits_posted)
ORDER BY b.account_id, b.stripe
LIMIT 1
"""
# A hold is open exactly when no entry resolves it; an open hold names a hold, at its expiry.
_CHECK_OPEN_HOLDS = """
SELECT coalesce(e.id, h.entry_id) AS entry_id, h.entry_id IS NOT NULL AS listed, r.id AS resolved_by,
    (SELECT x.kind FROM ledger_entries x WHERE x.id = h.entry_id) AS kind,
    h.expires_at AS listed_expires_at, e.expires_at
FROM (SELECT id, expires_at FROM ledger_entries WHERE kind = 'pending') e
FULL JOIN ledger_open_holds h ON h.entry_id = e.id
LEFT JOIN ledger_entries r ON r.pending_entry_id = e.id
WHERE e.id IS NULL OR (h.entry_id IS NULL) = (r.id IS NULL) OR h.expires_at <> e.expires_at
ORDER BY 1
LIMIT 1
"""
_CHECK_ENTRY_LINKS = """
SELECT x.id AS entry_id, x.kind, coalesce(x.pending_entry_id, x.reverses_entry_id) AS target_id, t.kind AS target_kind,
    t.id IS NOT NULL AND (t.merchant_id, t.livemode) <> (x.merchant_id, x.livemode) AS other_tenant
FROM ledger_entries x
LEFT JOIN ledger_entries t ON t.id = coalesce(x.pending_entry_id, x.reverses_entry_id)
WHERE x.kind IN ('post_pending', 'void_pending', 'expire_pending', 'reversal')
  AND (t.id IS NULL
       OR (t.merchant_id, t.livemode) <> (x.merchant_id, x.livemode)
       OR (x.kind = 'reversal' AND t.kind NOT IN ('standard', 'post_pending'))
       OR (x.kind <> 'reversal' AND t.kind <> 'pending'))
ORDER BY x.id
LIMIT 1
"""
_JOURNAL_SIZE = """
SELECT (SELECT count(*) FROM ledger_entries) AS entries, (SELECT count(*) FROM ledger_postings) AS postings,
    (SELECT count(*) FROM ledger_accounts) AS accounts
"""


async def _first(connection: Connection, query: str, *args: object) -> AnyRow | None:
    row: AnyRow | None = await connection.fetchrow(query, *args, timeout=_CHECK_TIMEOUT_S)
    return row


async def first_unbalanced_entry(connection: Connection) -> AnyRow | None:
    return await _first(connection, _CHECK_UNBALANCED_ENTRY)


async def first_entry_with_wrong_posting_count(connection: Connection, postings_min: int, postings_max: int) -> AnyRow | None:
    """A void or expiry with postings, or another entry without `postings_min` to `postings_max` of them."""
    return await _first(connection, _CHECK_POSTING_COUNT, postings_min, postings_max)


async def first_posting_off_its_account(connection: Connection) -> AnyRow | None:
    """A posting to an account that does not exist, or in another currency than its account's."""
    return await _first(connection, _CHECK_POSTING_ACCOUNT)


async def first_balance_off_the_journal(connection: Connection) -> AnyRow | None:
    """An account whose stored counters (summed over stripes) differ from its postings' sums."""
    return await _first(connection, _CHECK_STORED_BALANCES)


async def first_balance_over_its_limit(connection: Connection) -> AnyRow | None:
    return await _first(connection, _CHECK_BALANCE_LIMITS)


async def first_open_hold_mismatch(connection: Connection) -> AnyRow | None:
    """An unresolved hold missing from the open holds, a resolved one still in them, or an
    open hold that is no hold or has another expiry than its entry."""
    return await _first(connection, _CHECK_OPEN_HOLDS)


async def first_bad_entry_link(connection: Connection) -> AnyRow | None:
    """A resolving entry that does not point to a hold of its tenant, or a reversal that
    does not point to a standard or post_pending entry of its tenant."""
    return await _first(connection, _CHECK_ENTRY_LINKS)


async def journal_size(connection: Connection) -> AnyRow:
    row: AnyRow = await connection.fetchrow(_JOURNAL_SIZE, timeout=_CHECK_TIMEOUT_S)
    return row
