-- The whole schema as the SQLite migrations 2026-11-22-000001 to
-- 2026-11-30-000004 build it, in one step: PostgreSQL databases start here.
-- Ids are random UUIDs stored as text, as on SQLite.
CREATE TABLE users (
    id TEXT PRIMARY KEY NOT NULL,
    email TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    -- The address a self-registration came from (the hourly limit counts
    -- these); NULL for accounts an operator creates.
    registration_ip TEXT
);
CREATE INDEX users_registration_ip_created ON users (registration_ip, created_at);

CREATE TABLE sessions (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMP NOT NULL,
    last_seen_at TIMESTAMP NOT NULL,
    ip TEXT NOT NULL,
    user_agent TEXT NOT NULL,
    revoked_at TIMESTAMP,
    refresh_hash TEXT NOT NULL,
    previous_refresh_hash TEXT,
    rotated_at TIMESTAMP,
    remember BOOLEAN NOT NULL DEFAULT FALSE,
    expires_at TIMESTAMP NOT NULL,
    revoke_reason TEXT
);
CREATE INDEX sessions_user_id ON sessions (user_id);
CREATE INDEX sessions_revoked_at ON sessions (revoked_at);
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

CREATE TABLE login_throttles (
    email TEXT NOT NULL,
    ip TEXT NOT NULL,
    failures INTEGER NOT NULL,
    last_failure_at TIMESTAMP NOT NULL,
    locked_until TIMESTAMP,
    PRIMARY KEY (email, ip)
);

CREATE TABLE ip_login_failures (
    id TEXT PRIMARY KEY NOT NULL,
    ip TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX ip_login_failures_ip_created ON ip_login_failures (ip, created_at);
