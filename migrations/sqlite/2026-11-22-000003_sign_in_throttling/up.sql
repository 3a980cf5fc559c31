-- Sign-in throttling shared by every instance.

-- One row per (e-mail, client IP) with recent failures.
CREATE TABLE login_throttles (
    email TEXT NOT NULL,
    ip TEXT NOT NULL,
    failures INTEGER NOT NULL,
    last_failure_at TIMESTAMP NOT NULL,
    locked_until TIMESTAMP,
    PRIMARY KEY (email, ip)
);

-- One row per failed sign-in, kept for an hour, for the per-IP cap.
CREATE TABLE ip_login_failures (
    id TEXT PRIMARY KEY NOT NULL,
    ip TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);

CREATE INDEX ip_login_failures_ip_created ON ip_login_failures (ip, created_at);
CREATE INDEX auth_events_ip_kind_created ON auth_events (ip, kind, created_at);
