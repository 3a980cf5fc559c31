-- Rotating refresh tokens (stored only as SHA-256 hex), server-side session
-- limits, and the audit trail shown on the account page.
ALTER TABLE sessions ADD COLUMN refresh_hash TEXT NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN previous_refresh_hash TEXT;
ALTER TABLE sessions ADD COLUMN rotated_at TIMESTAMP;
ALTER TABLE sessions ADD COLUMN remember BOOLEAN NOT NULL DEFAULT FALSE;
-- Sessions from before this migration have no refresh token and end at once.
ALTER TABLE sessions ADD COLUMN expires_at TIMESTAMP NOT NULL DEFAULT '1970-01-01 00:00:00';
ALTER TABLE sessions ADD COLUMN revoke_reason TEXT;

CREATE INDEX sessions_refresh_hash ON sessions (refresh_hash);
CREATE INDEX sessions_previous_refresh_hash ON sessions (previous_refresh_hash);

CREATE TABLE auth_events (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT REFERENCES users (id) ON DELETE CASCADE,
    session_id TEXT,
    kind TEXT NOT NULL,
    ip TEXT NOT NULL,
    user_agent TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);

CREATE INDEX auth_events_user_created ON auth_events (user_id, created_at);
