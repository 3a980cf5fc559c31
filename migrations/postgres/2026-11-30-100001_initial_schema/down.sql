DROP TABLE ip_login_failures;
DROP TABLE login_throttles;
DROP TABLE auth_events;
DROP TABLE sessions;
DROP TABLE users;
