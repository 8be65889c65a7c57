-- The audit trail: every operator action and, aggregated per subject and
-- minute, every refused authentication, written before the action's answer
-- leaves (src/api/audit.rs). Rows are hash-chained: `hash` is the SHA-256 of
-- the row's fields and the previous row's hash (`prev_hash`; 64 zeros for the
-- first), so an edited or deleted row breaks the chain, which
-- `surge audit verify` finds and names.
--
-- seq: 1, 2, 3... in the order written; at_ms: when (ms since the epoch; for
-- an aggregate, the minute's start); sub: the token's subject (for a refused
-- token, the subject it claimed, unverified, or "-"); action: e.g.
-- shard.restart, account.create, auth.refused; target: what it acted on;
-- outcome: ok, failed or refused; detail: more (an aggregate's count).
CREATE TABLE IF NOT EXISTS audit (
    seq       BIGINT PRIMARY KEY,
    at_ms     BIGINT NOT NULL,
    sub       TEXT NOT NULL,
    action    TEXT NOT NULL,
    target    TEXT NOT NULL,
    outcome   TEXT NOT NULL,
    detail    TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);
