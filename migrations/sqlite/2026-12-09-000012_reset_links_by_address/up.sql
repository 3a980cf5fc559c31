-- A request for a reset link supersedes the live links asked for the same
-- address, whether or not it belongs to an account: the request does the
-- same work for a registered address and an unknown one, and finds the live
-- rows through an index instead of reading an account's past requests.
-- Rows of unknown addresses hold the hash of a token nobody gets and no
-- user_id, so they are never links. (Changing the address or the password
-- still ends every link of the account.)
ALTER TABLE password_resets ADD COLUMN email TEXT;
UPDATE password_resets
SET email = (SELECT users.email FROM users WHERE users.id = password_resets.user_id)
WHERE user_id IS NOT NULL;
CREATE INDEX password_resets_live_email ON password_resets (email) WHERE used_at IS NULL;
