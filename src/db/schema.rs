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
        expiry_policy -> Nullable<Text>,
        expiry_days -> Nullable<Integer>,
        max_open_claims -> Nullable<Integer>,
        pickup_window_days -> Nullable<Integer>,
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
        search_text -> Text,
        show_on_leaderboard -> Bool,
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

diesel::table! {
    accounts (id) {
        id -> Text,
        community_id -> Text,
        kind -> Text,
        user_id -> Nullable<Text>,
        balance -> BigInt,
        held -> BigInt,
        earned -> BigInt,
        spent -> BigInt,
        created_at -> Timestamp,
    }
}

diesel::table! {
    ledger_heads (community_id) {
        community_id -> Text,
        sequence -> BigInt,
        hash -> Text,
    }
}

diesel::table! {
    ledger_transactions (id) {
        id -> Text,
        community_id -> Text,
        sequence -> BigInt,
        kind -> Text,
        rule_code -> Nullable<Text>,
        memo -> Text,
        actor_id -> Nullable<Text>,
        cause_type -> Nullable<Text>,
        cause_id -> Nullable<Text>,
        reverses_id -> Nullable<Text>,
        created_at -> Timestamp,
        previous_hash -> Text,
        hash -> Text,
    }
}

diesel::table! {
    ledger_postings (transaction_id, line) {
        transaction_id -> Text,
        line -> Integer,
        account_id -> Text,
        amount -> BigInt,
    }
}

diesel::table! {
    lots (id) {
        id -> Text,
        account_id -> Text,
        transaction_id -> Text,
        amount -> BigInt,
        remaining -> BigInt,
        earned_at -> Timestamp,
        expires_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    lot_movements (transaction_id, lot_id) {
        transaction_id -> Text,
        lot_id -> Text,
        amount -> BigInt,
    }
}

diesel::table! {
    idempotency_keys (user_id, key) {
        user_id -> Text,
        key -> Text,
        fingerprint -> Text,
        status -> Integer,
        body -> Text,
        location -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    rules (id) {
        id -> Text,
        community_id -> Text,
        code -> Text,
        name -> Text,
        category -> Text,
        direction -> Text,
        default_points -> BigInt,
        min_points -> BigInt,
        max_points -> BigInt,
        daily_cap -> Nullable<Integer>,
        weekly_cap -> Nullable<Integer>,
        monthly_cap -> Nullable<Integer>,
        active -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    claims (id) {
        id -> Text,
        community_id -> Text,
        user_id -> Text,
        rule_id -> Text,
        description -> Text,
        occurred_at -> Timestamp,
        evidence -> Text,
        status -> Text,
        points -> Nullable<BigInt>,
        decided_by -> Nullable<Text>,
        decided_at -> Nullable<Timestamp>,
        decision_reason -> Nullable<Text>,
        transaction_id -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    activities (id) {
        id -> Text,
        community_id -> Text,
        rule_id -> Text,
        title -> Text,
        description -> Text,
        location -> Text,
        points -> BigInt,
        starts_at -> Timestamp,
        ends_at -> Timestamp,
        capacity -> Nullable<Integer>,
        signup_deadline -> Timestamp,
        status -> Text,
        registered -> Integer,
        check_in_secret -> Text,
        award_transaction_id -> Nullable<Text>,
        created_by -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    activity_registrations (activity_id, user_id) {
        activity_id -> Text,
        user_id -> Text,
        registered_at -> Timestamp,
        checked_in_at -> Nullable<Timestamp>,
        check_in_method -> Nullable<Text>,
    }
}

diesel::table! {
    rewards (id) {
        id -> Text,
        community_id -> Text,
        name -> Text,
        description -> Text,
        image_url -> Nullable<Text>,
        cost -> BigInt,
        stock -> Nullable<Integer>,
        limit_per_resident -> Nullable<Integer>,
        limit_period -> Nullable<Text>,
        available_from -> Nullable<Timestamp>,
        available_until -> Nullable<Timestamp>,
        active -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    redemptions (id) {
        id -> Text,
        community_id -> Text,
        user_id -> Text,
        reward_id -> Text,
        quantity -> Integer,
        points -> BigInt,
        status -> Text,
        pickup_code -> Text,
        ordered_by -> Text,
        hold_transaction_id -> Text,
        settle_transaction_id -> Nullable<Text>,
        resolved_by -> Nullable<Text>,
        resolved_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        pickup_failures -> Integer,
        pickup_locked_until -> Nullable<Timestamp>,
    }
}

diesel::table! {
    audit_records (id) {
        id -> Text,
        occurred_at -> Timestamp,
        actor_id -> Nullable<Text>,
        action -> Text,
        target_type -> Nullable<Text>,
        target_id -> Nullable<Text>,
        unit_id -> Nullable<Text>,
        unit_path -> Nullable<Text>,
        request_id -> Text,
        client_ip -> Nullable<Text>,
        outcome -> Text,
        code -> Nullable<Text>,
    }
}

diesel::joinable!(redemptions -> rewards (reward_id));
diesel::joinable!(activities -> rules (rule_id));
diesel::joinable!(activity_registrations -> activities (activity_id));
diesel::joinable!(activity_registrations -> users (user_id));
diesel::joinable!(claims -> rules (rule_id));
diesel::joinable!(memberships -> units (unit_id));
diesel::joinable!(accounts -> users (user_id));
diesel::joinable!(ledger_postings -> ledger_transactions (transaction_id));
diesel::joinable!(ledger_postings -> accounts (account_id));
diesel::joinable!(lots -> accounts (account_id));
diesel::joinable!(lot_movements -> lots (lot_id));
diesel::joinable!(memberships -> users (user_id));
diesel::joinable!(audit_records -> users (actor_id));
diesel::joinable!(refresh_tokens -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    units,
    users,
    memberships,
    refresh_tokens,
    accounts,
    ledger_heads,
    ledger_transactions,
    ledger_postings,
    lots,
    lot_movements,
    idempotency_keys,
    rules,
    claims,
    activities,
    activity_registrations,
    rewards,
    redemptions,
    audit_records,
);
