-- Verified addresses. Accounts that exist now count as verified, so no one
-- is locked out; accounts registered while REGISTRATION_VERIFY=off are not.
ALTER TABLE users ADD COLUMN email_verified_at TIMESTAMP;
UPDATE users SET email_verified_at = created_at;

-- Registrations of an address nobody has confirmed yet: each is kept (its
-- name and password hash; the 3 latest per address), and confirming takes
-- the password of one of them, so whoever registers an address first does
-- not claim it.
CREATE TABLE pending_registrations (
    id TEXT PRIMARY KEY NOT NULL,
    email TEXT NOT NULL,
    name TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    ip TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX pending_registrations_email ON pending_registrations (email, created_at);
CREATE INDEX pending_registrations_ip ON pending_registrations (ip, created_at);

-- Confirmation links: of a registration (user_id NULL: a new address; set:
-- an account registered unverified) or of an e-mail change (user_id the
-- account, email the new address). Only a SHA-256 hash of the token is
-- stored; a link is used, superseded or cancelled by setting used_at.
CREATE TABLE email_confirmations (
    id TEXT PRIMARY KEY NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    purpose TEXT NOT NULL,
    email TEXT NOT NULL,
    user_id TEXT REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP
);
CREATE INDEX email_confirmations_email ON email_confirmations (email);
CREATE INDEX email_confirmations_user ON email_confirmations (user_id);
