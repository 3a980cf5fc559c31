-- Two-factor sign-in. The TOTP secret is stored sealed (ChaCha20-Poly1305
-- under TOTP_ENCRYPTION_KEY, the account id as associated data); it is set
-- at enrolment and counts only once two_factor_enabled_at is set (a first
-- valid code). totp_last_step is the last time step a code was accepted
-- for: a code is accepted only by the one UPDATE that raises it.
ALTER TABLE users ADD COLUMN totp_secret TEXT;
ALTER TABLE users ADD COLUMN two_factor_enabled_at TIMESTAMP;
ALTER TABLE users ADD COLUMN totp_last_step BIGINT;

-- When the session last proved who it is (signing in, or "confirm it's
-- you"): the access token's auth_time, which a refresh does not renew.
ALTER TABLE sessions ADD COLUMN authenticated_at TIMESTAMP;
UPDATE sessions SET authenticated_at = created_at;

-- Recovery codes: SHA-256 hashes only; a code is burnt by setting used_at.
CREATE TABLE recovery_codes (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP
);
CREATE UNIQUE INDEX recovery_codes_user_code ON recovery_codes (user_id, code_hash);

-- A sign-in waiting for its second factor: the password (or link) was
-- right; the row records which account and which password version, and
-- holds no session. Single use, short-lived, ends after too many failures.
CREATE TABLE sign_in_challenges (
    id TEXT PRIMARY KEY NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    password_version INTEGER NOT NULL,
    remember BOOLEAN NOT NULL,
    failures INTEGER NOT NULL,
    ip TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX sign_in_challenges_user ON sign_in_challenges (user_id);
CREATE INDEX sign_in_challenges_expiry ON sign_in_challenges (expires_at);

-- Browsers a person chose to trust: a password sign-in from one skips the
-- second factor. Only a SHA-256 hash of the cookie's token is stored.
CREATE TABLE trusted_devices (
    id TEXT PRIMARY KEY NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    user_agent TEXT NOT NULL,
    ip TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX trusted_devices_user ON trusted_devices (user_id);
CREATE INDEX trusted_devices_expiry ON trusted_devices (expires_at);
