-- Passkeys (WebAuthn credentials). credential_id is the authenticator's
-- id, base64url, unique across accounts. passkey holds webauthn-rs's
-- credential (public key, counter, backup flags) as JSON; sign_count is its
-- counter as a column, so a use is recorded by one conditional UPDATE that
-- refuses a counter going backwards.
CREATE TABLE passkeys (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    credential_id TEXT NOT NULL UNIQUE,
    passkey TEXT NOT NULL,
    name TEXT NOT NULL,
    sign_count BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP
);
CREATE INDEX passkeys_user ON passkeys (user_id);

-- A WebAuthn ceremony under way: what it is for, for whom (registration
-- and a second factor), and webauthn-rs's state (its challenge) as JSON.
-- Keyed by a SHA-256 hash of the random token in the browser's cookie, so
-- any instance can finish it; single use (deleted by the one request that
-- finishes it), short-lived.
CREATE TABLE passkey_ceremonies (
    id TEXT PRIMARY KEY NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    purpose TEXT NOT NULL,
    user_id TEXT REFERENCES users (id) ON DELETE CASCADE,
    state TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX passkey_ceremonies_expiry ON passkey_ceremonies (expires_at);
