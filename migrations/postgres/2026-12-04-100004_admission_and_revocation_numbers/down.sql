DROP INDEX sessions_revocation_seq;
ALTER TABLE sessions DROP COLUMN revocation_seq;
DROP TABLE revocation_counter;
CREATE TABLE ip_login_failures (
    id TEXT PRIMARY KEY NOT NULL,
    ip TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX ip_login_failures_ip_created ON ip_login_failures (ip, created_at);
DROP TABLE rate_limits;
ALTER TABLE login_throttles DROP COLUMN in_flight;
ALTER TABLE users DROP COLUMN password_version;
