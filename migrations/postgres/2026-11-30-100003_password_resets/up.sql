-- Password-reset requests. A row per request, also for unknown addresses
-- (user_id and token_hash NULL), so the per-IP cap counts every request and
-- both kinds do the same database work. Only a SHA-256 hash of a link's
-- token is stored; a link is used, superseded or invalidated by setting
-- used_at.
CREATE TABLE password_resets (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT REFERENCES users (id) ON DELETE CASCADE,
    token_hash TEXT UNIQUE,
    ip TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP
);
CREATE INDEX password_resets_user_created ON password_resets (user_id, created_at);
CREATE INDEX password_resets_ip_created ON password_resets (ip, created_at);
