// One schema for both backends: only portable types (Text, Integer, BigInt,
// Bool, Timestamp). Ids are UUIDs stored as TEXT; timestamps are UTC, set in Rust.

diesel::table! {
    units (id) {
        id -> Text,
        kind -> Text,
        parent_id -> Nullable<Text>,
        path -> Text,
        name -> Text,
        timezone -> Nullable<Text>,
        join_code -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    users (id) {
        id -> Text,
        username -> Text,
        display_name -> Text,
        phone -> Nullable<Text>,
        password_hash -> Text,
        failed_logins -> Integer,
        locked_until -> Nullable<Timestamp>,
        password_changed_at -> Timestamp,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    memberships (id) {
        id -> Text,
        unit_id -> Text,
        user_id -> Text,
        status -> Text,
        is_admin -> Bool,
        is_staff -> Bool,
        is_auditor -> Bool,
        is_resident -> Bool,
        household_compound -> Nullable<Text>,
        household_building -> Nullable<Text>,
        household_unit -> Nullable<Text>,
        household_room -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    refresh_tokens (id) {
        id -> Text,
        family_id -> Text,
        user_id -> Text,
        access_jti -> Text,
        issued_at -> Timestamp,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
        replaced_by -> Nullable<Text>,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::joinable!(memberships -> units (unit_id));
diesel::joinable!(memberships -> users (user_id));
diesel::joinable!(refresh_tokens -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(units, users, memberships, refresh_tokens);
