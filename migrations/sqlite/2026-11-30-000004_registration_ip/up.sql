-- The registration limit counts accounts by the address they registered from,
-- not audit rows: the audit trail is a record, not a control. Accounts an
-- operator creates have no address and never count.
ALTER TABLE users ADD COLUMN registration_ip TEXT;

CREATE INDEX users_registration_ip_created ON users (registration_ip, created_at);

-- Registrations were counted from the audit trail through this index.
DROP INDEX auth_events_ip_kind_created;

-- Accounts registered before this migration keep counting for the rest of
-- their hour: their address is the one their `registered` event recorded.
UPDATE users SET registration_ip = (
    SELECT e.ip FROM auth_events e
    WHERE e.user_id = users.id AND e.kind = 'registered'
    LIMIT 1
);
