-- A deleted account's sessions are deleted with it; the revocation of those
-- whose access tokens may still be alive stays here (the session id and its
-- number only, nothing personal), so that every instance's poll still reads
-- it. `sessions prune` deletes them once no access token can be alive.
CREATE TABLE revoked_sessions (
    session_id TEXT PRIMARY KEY NOT NULL,
    revoked_at TIMESTAMP NOT NULL,
    revocation_seq BIGINT NOT NULL
);
CREATE INDEX revoked_sessions_revocation_seq ON revoked_sessions (revocation_seq);
