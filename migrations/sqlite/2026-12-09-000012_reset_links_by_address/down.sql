DROP INDEX password_resets_live_email;
ALTER TABLE password_resets DROP COLUMN email;
