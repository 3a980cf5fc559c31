-- An operator can disable an account (`gatehouse user disable`): it cannot
-- sign in and its sessions end at once. NULL: enabled.
ALTER TABLE users ADD COLUMN disabled_at TIMESTAMP;
