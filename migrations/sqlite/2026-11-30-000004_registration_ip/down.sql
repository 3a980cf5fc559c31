CREATE INDEX auth_events_ip_kind_created ON auth_events (ip, kind, created_at);
DROP INDEX users_registration_ip_created;
ALTER TABLE users DROP COLUMN registration_ip;
