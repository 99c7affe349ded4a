"""The statements of leases (``ledger.leases``) on PostgreSQL: a lease opened, grown, given back
and renewed, and the settles and releases of the requests held on leases. Their lock order is
the one every step of ``postgres.py`` keeps: accounts before the charges they lock."""

# The settles and releases of requests held on leases (``ledger.leases``), in one statement: each
# writes its charge row, settled or released (``ON CONFLICT DO NOTHING``: a step that landed
# before changes nothing), with its ``hold`` and ``settle``/``release`` entries; each lease's
# settled costs are drawn from it (one ``draw`` entry per lease) and from the account's balance
# and held amount. A settle whose lease is no longer ``held``, or holds less than the costs drawn
# before it in the batch, is left out (its caller re-creates it from the balance, as a lost
# hold's). Lock order: the accounts in ascending id order, then their leases (as a lease's
# growth and return take them), never a request's charge (new rows).
FINISH_LEASED = """
WITH step AS (
    SELECT * FROM json_to_recordset($1::json)
        AS s(n int, id text, lease text, account_id int, api_key_id int, kind text, model text,
             held_amount bigint, cost bigint, status text, entry_kind text, prompt_tokens bigint,
             completion_tokens bigint, units bigint, estimated bool, served_by text, result json,
             note text, held_at timestamptz, expires_at timestamptz, now timestamptz,
             request_id text)
), locked AS (
    SELECT id FROM accounts WHERE id = ANY(ARRAY(SELECT account_id FROM step))
    ORDER BY id FOR UPDATE
), locked_lease AS (
    -- by the primary key alone (with ``status`` or ``account_id`` here the planner may take
    -- the index of held charges, or of the account's, and filter thousands of rows), after
    -- the accounts (``EXISTS``: an init plan, run first)
    SELECT id, account_id, held_amount, kind, status FROM charges
    WHERE id = ANY(ARRAY(SELECT lease FROM step)) AND EXISTS (SELECT 1 FROM locked)
    ORDER BY id FOR UPDATE
), lease AS (
    SELECT id, account_id, held_amount FROM locked_lease
    WHERE kind = 'lease' AND status = 'held'
), priced AS (
    SELECT step.*,
           CASE WHEN status = 'settled' THEN LEAST(cost, held_amount) ELSE 0 END AS charged
    FROM step
), fits AS (
    SELECT p.* FROM (
        SELECT priced.*, SUM(charged) OVER (PARTITION BY lease ORDER BY n) AS drawn
        FROM priced
    ) p LEFT JOIN lease l ON l.id = p.lease AND l.account_id = p.account_id
    WHERE p.charged = 0 OR p.drawn <= l.held_amount
), charge AS (
    INSERT INTO charges (id, account_id, api_key_id, kind, model, status, held_amount, cost,
                         usage_estimated, created_at, expires_at, settled_at, prompt_tokens,
                         completion_tokens, units, served_by, result, request_id)
    SELECT id, account_id, api_key_id, kind, model, status, held_amount, charged, estimated,
           held_at, expires_at, now, prompt_tokens, completion_tokens, units, served_by,
           result, request_id
    FROM fits
    ON CONFLICT (id) DO NOTHING
    RETURNING id
), done AS (
    SELECT f.* FROM fits f JOIN charge c ON c.id = f.id
), drawn AS (
    SELECT lease, account_id, SUM(charged)::bigint AS cost, MAX(now) AS now
    FROM done WHERE charged > 0 GROUP BY lease, account_id
), lease_drawn AS (
    UPDATE charges c SET held_amount = c.held_amount - d.cost FROM drawn d
    WHERE c.id = d.lease AND c.id = ANY(ARRAY(SELECT lease FROM drawn))
), acct AS (
    UPDATE accounts a SET balance = a.balance - t.cost, held = a.held - t.cost
    FROM (SELECT account_id, SUM(cost)::bigint AS cost FROM drawn GROUP BY account_id) t
    WHERE a.id = t.account_id AND a.id = ANY(ARRAY(SELECT account_id FROM drawn))
), entry AS (
    INSERT INTO ledger_entries (account_id, charge_id, kind, amount, held, note, created_at)
    SELECT account_id, id, 'hold', 0, held_amount, NULL, held_at FROM done
    UNION ALL
    SELECT account_id, id, entry_kind, -charged, -held_amount, note, now FROM done
    UNION ALL
    SELECT account_id, lease, 'draw', 0, -cost, NULL, now FROM drawn
)
SELECT n, account_id, held_amount, charged AS cost, model FROM done
"""

# One such step alone (``finish``: the writer had nothing in flight, as at low load), as
# ``FINISH_LEASED`` does it for a batch, with plain parameters: no JSON to parse, no window, sort
# or join to set up (a third of a lone batch's instructions were its plan's set-up). $8: the
# cost charged (the cost asked, capped at the hold; 0 for a release). The charge row is written
# only while the lease holds that much (``FOR UPDATE``, after the account); the lease, the
# account and the entries move only if it was (``ON CONFLICT DO NOTHING``: a step that landed
# before changes nothing).
FINISH_LEASED_ONE = """
WITH acct AS (
    SELECT id FROM accounts WHERE id = $3 FOR UPDATE
), lease AS (
    SELECT id FROM charges
    WHERE id = $2 AND kind = 'lease' AND status = 'held' AND account_id = $3
      AND held_amount >= $8 AND EXISTS (SELECT 1 FROM acct)
    FOR UPDATE
), charge AS (
    INSERT INTO charges (id, account_id, api_key_id, kind, model, status, held_amount, cost,
                         usage_estimated, created_at, expires_at, settled_at, prompt_tokens,
                         completion_tokens, units, served_by, result, request_id)
    SELECT $1, $3, $4, $5, $6, $9, $7, $8, $14, $18, $19, $20, $11, $12, $13, $15, $16::json,
           $21
    WHERE EXISTS (SELECT 1 FROM acct) AND ($8 = 0 OR EXISTS (SELECT 1 FROM lease))
    ON CONFLICT (id) DO NOTHING
    RETURNING id
), lease_drawn AS (
    UPDATE charges c SET held_amount = c.held_amount - $8
    WHERE c.id = $2 AND $8 > 0 AND EXISTS (SELECT 1 FROM charge)
), acct_drawn AS (
    UPDATE accounts a SET balance = a.balance - $8, held = a.held - $8
    WHERE a.id = $3 AND $8 > 0 AND EXISTS (SELECT 1 FROM charge)
), entry AS (
    INSERT INTO ledger_entries (account_id, charge_id, kind, amount, held, note, created_at)
    SELECT $3, $1, 'hold', 0, $7, NULL, $18 FROM charge
    UNION ALL
    SELECT $3, $1, $10, -$8::bigint, -$7::bigint, $17, $20 FROM charge
    UNION ALL
    SELECT $3, $2, 'draw', 0, -$8::bigint, NULL, $20 FROM charge WHERE $8 > 0
)
SELECT $3::int AS account_id, $7::bigint AS held_amount, $8::bigint AS cost, $6::text AS model
FROM charge
"""

# A lease opened: ``min(want, available / share)`` held on the account, if it has ``need``
# available, with the lease's charge row and its ``hold`` entry. The account is locked first.
LEASE_OPEN = """
WITH acct AS (
    SELECT id, LEAST($4::bigint, (balance - held) / $5) AS amount FROM accounts
    WHERE id = $2 AND balance - held >= $3
    FOR UPDATE
), moved AS (
    UPDATE accounts a SET held = a.held + t.amount FROM acct t WHERE a.id = t.id
), charge AS (
    INSERT INTO charges (id, account_id, kind, model, status, held_amount, usage_estimated,
                         created_at, expires_at)
    SELECT $1, id, 'lease', 'lease', 'held', amount, false, $6, $7 FROM acct
), entry AS (
    INSERT INTO ledger_entries (account_id, charge_id, kind, amount, held, created_at)
    SELECT id, $1, 'hold', 0, amount, $6 FROM acct
)
SELECT amount FROM acct
"""

# A lease grown, as it is opened, if it is still ``held`` (its deadline moved on too); the
# account is locked before the lease, as the leased settles lock them. ``found``: still held.
LEASE_GROW = """
WITH acct AS (
    SELECT id, LEAST($4::bigint, (balance - held) / $5) AS amount FROM accounts
    WHERE id = $2 AND balance - held >= $3
    FOR UPDATE
), lease AS (
    SELECT c.id, a.amount FROM charges c JOIN acct a ON a.id = c.account_id
    WHERE c.id = $1 AND c.kind = 'lease' AND c.status = 'held'
    FOR UPDATE OF c
), grown AS (
    UPDATE charges c SET held_amount = c.held_amount + l.amount, expires_at = $7
    FROM lease l WHERE c.id = l.id
), moved AS (
    UPDATE accounts a SET held = a.held + l.amount FROM lease l WHERE a.id = $2
), entry AS (
    INSERT INTO ledger_entries (account_id, charge_id, kind, amount, held, created_at)
    SELECT $2, id, 'grow', 0, amount, $6 FROM lease
)
SELECT (SELECT amount FROM lease) AS added,
       EXISTS (SELECT 1 FROM charges WHERE id = $1 AND status = 'held') AS found
"""

# Part of a lease given back (a ``return`` entry), or the rest of it (``released``, a
# ``release`` entry); the account is locked before the lease.
LEASE_RETURN = """
WITH acct AS (
    SELECT id FROM accounts WHERE id = (SELECT account_id FROM charges WHERE id = $1)
    FOR UPDATE
), lease AS (
    UPDATE charges c SET held_amount = c.held_amount - $2,
        status = CASE WHEN c.held_amount = $2 THEN 'released' ELSE c.status END,
        cost = CASE WHEN c.held_amount = $2 THEN 0 ELSE c.cost END,
        settled_at = CASE WHEN c.held_amount = $2 THEN $3 ELSE c.settled_at END
    FROM acct a
    WHERE c.id = $1 AND c.account_id = a.id AND c.kind = 'lease' AND c.status = 'held'
      AND c.held_amount >= $2
    RETURNING c.account_id, c.status
), moved AS (
    UPDATE accounts a SET held = a.held - $2 FROM lease l WHERE a.id = l.account_id
)
INSERT INTO ledger_entries (account_id, charge_id, kind, amount, held, created_at)
SELECT account_id, $1, CASE WHEN status = 'released' THEN 'release' ELSE 'return' END, 0,
       -$2::bigint, $3
FROM lease
"""

LEASE_RENEW = """
UPDATE charges SET expires_at = $2
WHERE id = ANY($1::text[]) AND kind = 'lease' AND status = 'held'
RETURNING id
"""
