-- Each password change or reset counts up the account's password version;
-- re-hashing the same password at a raised cost does not. A sign-in creates
-- its session only while the version it verified is still the account's.
ALTER TABLE users ADD COLUMN password_version INTEGER NOT NULL DEFAULT 0;

-- Sign-in attempts of a pair that are admitted and not yet judged: the pair's
-- limit counts them with its failures, so guesses sent together cannot all
-- be judged; attempts beyond it wait for a judged one (see accounts::throttle).
ALTER TABLE login_throttles ADD COLUMN in_flight INTEGER NOT NULL DEFAULT 0;

-- Throttling admits an attempt before any password is checked, with one
-- statement that counts it and answers whether it is within the limit
-- (INSERT … ON CONFLICT DO UPDATE … RETURNING): a counter per (bucket, key)
-- over a window that starts with its first hit. Buckets: sign-ins per IP,
-- reset requests per address and per IP.
CREATE TABLE rate_limits (
    bucket TEXT NOT NULL,
    key TEXT NOT NULL,
    window_start TIMESTAMP NOT NULL,
    hits INTEGER NOT NULL,
    PRIMARY KEY (bucket, key)
);

-- The per-IP cap counted a row per failure, which could not be counted and
-- checked in one statement; `rate_limits` replaces it.
DROP TABLE ip_login_failures;

-- Every revocation is numbered from a one-row counter updated inside the
-- revoking transaction: the counter's row lock makes number order commit
-- order, so a poll for numbers above the last one seen never misses a commit.
CREATE TABLE revocation_counter (
    id INTEGER PRIMARY KEY NOT NULL,
    last BIGINT NOT NULL
);
INSERT INTO revocation_counter (id, last) VALUES (1, 1);
ALTER TABLE sessions ADD COLUMN revocation_seq BIGINT;
UPDATE sessions SET revocation_seq = 1 WHERE revoked_at IS NOT NULL;
CREATE INDEX sessions_revocation_seq ON sessions (revocation_seq);
