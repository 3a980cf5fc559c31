DROP TABLE trusted_devices;
DROP TABLE sign_in_challenges;
DROP TABLE recovery_codes;
ALTER TABLE sessions DROP COLUMN authenticated_at;
ALTER TABLE users DROP COLUMN totp_last_step;
ALTER TABLE users DROP COLUMN two_factor_enabled_at;
ALTER TABLE users DROP COLUMN totp_secret;
