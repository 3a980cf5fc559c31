DROP TABLE email_confirmations;
DROP TABLE pending_registrations;
ALTER TABLE users DROP COLUMN email_verified_at;
