DROP TABLE auth_events;
DROP INDEX sessions_previous_refresh_hash;
DROP INDEX sessions_refresh_hash;
ALTER TABLE sessions DROP COLUMN revoke_reason;
ALTER TABLE sessions DROP COLUMN expires_at;
ALTER TABLE sessions DROP COLUMN remember;
ALTER TABLE sessions DROP COLUMN rotated_at;
ALTER TABLE sessions DROP COLUMN previous_refresh_hash;
ALTER TABLE sessions DROP COLUMN refresh_hash;
