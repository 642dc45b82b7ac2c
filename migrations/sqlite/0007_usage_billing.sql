-- Usage: API calls per account and month (flushed from memory), and which thresholds (80 %,
-- 100 %) of which meter were already announced in a period. Billing: the Stripe customer and
-- subscription of an account, and the Stripe events already handled (idempotency).
CREATE TABLE usage_counters (
    account_id   TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    period_start BIGINT NOT NULL,
    api_calls    BIGINT NOT NULL DEFAULT 0,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (account_id, period_start)
);

CREATE TABLE usage_thresholds (
    account_id   TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    period_start BIGINT NOT NULL,
    meter        TEXT NOT NULL,
    threshold    INTEGER NOT NULL,
    reached_at   BIGINT NOT NULL,
    PRIMARY KEY (account_id, period_start, meter, threshold)
);

CREATE INDEX sessions_account_started ON sessions (account_id, started_at);

ALTER TABLE accounts ADD COLUMN stripe_customer_id TEXT;
ALTER TABLE accounts ADD COLUMN stripe_subscription_id TEXT;
ALTER TABLE accounts ADD COLUMN billing_status TEXT;
ALTER TABLE accounts ADD COLUMN billing_plan TEXT;
ALTER TABLE accounts ADD COLUMN billing_period_end BIGINT;

CREATE TABLE stripe_events (
    id          TEXT PRIMARY KEY,
    type        TEXT NOT NULL,
    received_at BIGINT NOT NULL
);
