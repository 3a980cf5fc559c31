// @generated automatically by Diesel CLI.

diesel::table! {
    auth_events (id) {
        id -> Text,
        user_id -> Nullable<Text>,
        session_id -> Nullable<Text>,
        kind -> Text,
        ip -> Text,
        user_agent -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    email_confirmations (id) {
        id -> Text,
        token_hash -> Text,
        purpose -> Text,
        email -> Text,
        user_id -> Nullable<Text>,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    login_throttles (email, ip) {
        email -> Text,
        ip -> Text,
        failures -> Integer,
        last_failure_at -> Timestamp,
        locked_until -> Nullable<Timestamp>,
        in_flight -> Integer,
    }
}

diesel::table! {
    password_resets (id) {
        id -> Text,
        user_id -> Nullable<Text>,
        token_hash -> Nullable<Text>,
        ip -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
        email -> Nullable<Text>,
    }
}

diesel::table! {
    passkey_ceremonies (id) {
        id -> Text,
        token_hash -> Text,
        purpose -> Text,
        user_id -> Nullable<Text>,
        state -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    passkeys (id) {
        id -> Text,
        user_id -> Text,
        credential_id -> Text,
        passkey -> Text,
        name -> Text,
        sign_count -> BigInt,
        created_at -> Timestamp,
        last_used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    pending_registrations (id) {
        id -> Text,
        email -> Text,
        name -> Text,
        password_hash -> Text,
        ip -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    rate_limits (bucket, key) {
        bucket -> Text,
        key -> Text,
        window_start -> Timestamp,
        hits -> Integer,
    }
}

diesel::table! {
    recovery_codes (id) {
        id -> Text,
        user_id -> Text,
        code_hash -> Text,
        created_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    revocation_counter (id) {
        id -> Integer,
        last -> BigInt,
    }
}

diesel::table! {
    revoked_sessions (session_id) {
        session_id -> Text,
        revoked_at -> Timestamp,
        revocation_seq -> BigInt,
    }
}

diesel::table! {
    sessions (id) {
        id -> Text,
        user_id -> Text,
        created_at -> Timestamp,
        last_seen_at -> Timestamp,
        ip -> Text,
        user_agent -> Text,
        revoked_at -> Nullable<Timestamp>,
        refresh_hash -> Text,
        previous_refresh_hash -> Nullable<Text>,
        rotated_at -> Nullable<Timestamp>,
        remember -> Bool,
        expires_at -> Timestamp,
        revoke_reason -> Nullable<Text>,
        revocation_seq -> Nullable<BigInt>,
        authenticated_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    sign_in_challenges (id) {
        id -> Text,
        token_hash -> Text,
        user_id -> Text,
        password_version -> Integer,
        remember -> Bool,
        failures -> Integer,
        ip -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    trusted_devices (id) {
        id -> Text,
        token_hash -> Text,
        user_id -> Text,
        user_agent -> Text,
        ip -> Text,
        created_at -> Timestamp,
        last_used_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    users (id) {
        id -> Text,
        email -> Text,
        name -> Text,
        password_hash -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        registration_ip -> Nullable<Text>,
        disabled_at -> Nullable<Timestamp>,
        password_version -> Integer,
        email_verified_at -> Nullable<Timestamp>,
        totp_secret -> Nullable<Text>,
        two_factor_enabled_at -> Nullable<Timestamp>,
        totp_last_step -> Nullable<BigInt>,
    }
}

diesel::joinable!(auth_events -> users (user_id));
diesel::joinable!(email_confirmations -> users (user_id));
diesel::joinable!(password_resets -> users (user_id));
diesel::joinable!(recovery_codes -> users (user_id));
diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(passkey_ceremonies -> users (user_id));
diesel::joinable!(passkeys -> users (user_id));
diesel::joinable!(sign_in_challenges -> users (user_id));
diesel::joinable!(trusted_devices -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    auth_events,
    email_confirmations,
    login_throttles,
    passkey_ceremonies,
    passkeys,
    password_resets,
    pending_registrations,
    rate_limits,
    recovery_codes,
    revocation_counter,
    revoked_sessions,
    sessions,
    sign_in_challenges,
    trusted_devices,
    users,
);
