DROP INDEX auth_events_ip_kind_created;
DROP TABLE ip_login_failures;
DROP TABLE login_throttles;
