use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both_backends;
use crate::helpers::{TestApp, expect_problem, expect_status, id, json_of};

both_backends!(
    admins_build_the_unit_tree,
    the_tree_has_rules,
    units_are_seen_only_by_those_with_roles_on_them,
    grants_apply_down_the_tree_and_revocation_is_immediate,
    units_can_be_renamed_and_join_codes_rotated,
    unit_lists_page_without_gaps,
);

async fn admins_build_the_unit_tree(app: &TestApp) {
    let admin = app.admin().await;
    let tree = app.community_tree(&admin, "平城").await;
    assert_eq!(tree.district["kind"], "district");
    assert_eq!(tree.street["parent_id"], tree.district["id"]);
    let community = &tree.community;
    assert_eq!(community["parent_id"], tree.street["id"]);
    assert_eq!(community["timezone"], "Asia/Shanghai");
    let code = community["join_code"].as_str().unwrap();
    assert_eq!(code.len(), 8);
    assert!(
        code.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()) && !code.contains(['0', 'O', '1', 'I', 'L'])
    );

    let fetched = json_of(
        expect_status(app.get(&format!("/api/v1/units/{}", id(community)), &admin).await, StatusCode::OK).await,
    )
    .await;
    assert_eq!(&fetched, community);

    let other = app.create_unit(&admin, "community", "乌鲁木齐社区", Some(id(&tree.street))).await;
    assert_eq!(other["timezone"], "Asia/Shanghai");
    let response = app
        .post(
            "/api/v1/units",
            &admin,
            json!({"kind": "community", "name": "西区社区", "parent_id": id(&tree.street), "timezone": "Asia/Urumqi"}),
        )
        .await;
    assert_eq!(json_of(expect_status(response, StatusCode::CREATED).await).await["timezone"], "Asia/Urumqi");
}

async fn the_tree_has_rules(app: &TestApp) {
    let admin = app.admin().await;
    let tree = app.community_tree(&admin, "规").await;
    let create = |body| app.post("/api/v1/units", &admin, body);
    // Wrong kind of parent.
    expect_problem(
        create(json!({"kind": "community", "name": "x", "parent_id": id(&tree.district)})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_parent",
    )
    .await;
    expect_problem(
        create(json!({"kind": "street", "name": "x", "parent_id": id(&tree.community)})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_parent",
    )
    .await;
    expect_problem(
        create(json!({"kind": "platform", "name": "x"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_parent",
    )
    .await;
    // Streets and communities need a parent.
    expect_problem(create(json!({"kind": "street", "name": "x"})).await, StatusCode::BAD_REQUEST, "validation_failed")
        .await;
    // Sibling names are unique.
    expect_problem(
        create(json!({"kind": "community", "name": "规社区", "parent_id": id(&tree.street)})).await,
        StatusCode::CONFLICT,
        "name_taken",
    )
    .await;
    // Time zones only for communities, and real ones.
    expect_problem(
        create(json!({"kind": "street", "name": "y", "parent_id": id(&tree.district), "timezone": "Asia/Shanghai"}))
            .await,
        StatusCode::BAD_REQUEST,
        "validation_failed",
    )
    .await;
    expect_problem(
        create(json!({"kind": "community", "name": "y", "parent_id": id(&tree.street), "timezone": "Mars/Olympus"}))
            .await,
        StatusCode::BAD_REQUEST,
        "validation_failed",
    )
    .await;
    expect_problem(
        create(json!({"kind": "community", "name": "  ", "parent_id": id(&tree.street)})).await,
        StatusCode::BAD_REQUEST,
        "validation_failed",
    )
    .await;
    // An unknown parent is not found.
    expect_problem(
        create(json!({"kind": "street", "name": "z", "parent_id": uuid::Uuid::now_v7()})).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

async fn units_are_seen_only_by_those_with_roles_on_them(app: &TestApp) {
    let admin = app.admin().await;
    let a = app.community_tree(&admin, "甲").await;
    let b = app.community_tree(&admin, "乙").await;
    let (_, staff_a) = app.member_with_token(&admin, id(&a.community), "staff.a", &["staff"]).await;
    let (_, resident_a) = app.member_with_token(&admin, id(&a.community), "resident.a", &["resident"]).await;

    // Their own community, yes; the other community, its street and the platform: 404 (existence not revealed).
    expect_status(app.get(&format!("/api/v1/units/{}", id(&a.community)), &staff_a).await, StatusCode::OK).await;
    for unit in [&b.community, &b.street, &a.street] {
        expect_problem(
            app.get(&format!("/api/v1/units/{}", id(unit)), &staff_a).await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
    }
    let list = json_of(expect_status(app.get("/api/v1/units", &staff_a).await, StatusCode::OK).await).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["items"][0]["id"], a.community["id"]);
    assert_eq!(list["items"][0]["join_code"], a.community["join_code"], "staff see the join code");

    let seen_by_resident = json_of(
        expect_status(app.get(&format!("/api/v1/units/{}", id(&a.community)), &resident_a).await, StatusCode::OK).await,
    )
    .await;
    assert_eq!(seen_by_resident["join_code"], json!(null), "residents do not");

    // Staff cannot create units, even under their own community's street, nor see it.
    let response = app
        .post("/api/v1/units", &staff_a, json!({"kind": "community", "name": "x", "parent_id": id(&a.street)}))
        .await;
    expect_problem(response, StatusCode::NOT_FOUND, "not_found").await;
    // Another community's ids answer 404 for every endpoint.
    let b_id = id(&b.community);
    expect_problem(
        app.patch(&format!("/api/v1/units/{b_id}"), &staff_a, json!({"name": "mine"})).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    expect_problem(
        app.get(&format!("/api/v1/units/{b_id}/members"), &staff_a).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let add = json!({"new_user": {"username": "intruder", "display_name": "x", "password": "a good password"}, "roles": ["resident"]});
    expect_problem(
        app.post(&format!("/api/v1/units/{b_id}/members"), &staff_a, add).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let (b_resident, _) = app.member_with_token(&admin, b_id, "resident.b", &["resident"]).await;
    let member_path = format!("/api/v1/units/{b_id}/members/{b_resident}");
    expect_problem(
        app.patch(&member_path, &staff_a, json!({"status": "suspended"})).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    // Nor can they pull B's resident into A by id: the user is not theirs to see.
    let pull = json!({"user_id": b_resident, "roles": ["resident"]});
    expect_problem(
        app.post(&format!("/api/v1/units/{}/members", id(&a.community)), &staff_a, pull).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let me_b =
        json_of(app.get(&member_path.replace(&format!("/members/{b_resident}"), "/members"), &admin).await).await;
    assert_eq!(me_b["items"][0]["status"], "active", "untouched");
}

async fn grants_apply_down_the_tree_and_revocation_is_immediate(app: &TestApp) {
    let admin = app.admin().await;
    let tree = app.community_tree(&admin, "丙").await;
    let other = app.community_tree(&admin, "丁").await;
    let (street_admin_id, street_admin) =
        app.member_with_token(&admin, id(&tree.street), "street.admin", &["admin"]).await;
    let (_, auditor) = app.member_with_token(&admin, id(&tree.district), "district.auditor", &["auditor"]).await;

    // An admin of the street administers the communities below it.
    let new_community = app.create_unit(&street_admin, "community", "新社区", Some(id(&tree.street))).await;
    app.add_member(&street_admin, id(&new_community), "new.staff", &["staff"]).await;
    // The district above is out of its reach, so out of its sight.
    expect_problem(
        app.post(
            "/api/v1/units",
            &street_admin,
            json!({"kind": "street", "name": "x", "parent_id": id(&tree.district)}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    expect_problem(
        app.get(&format!("/api/v1/units/{}", id(&other.community)), &street_admin).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;

    // The district auditor sees everything below, and changes nothing.
    let members = json_of(
        expect_status(
            app.get(&format!("/api/v1/units/{}/members", id(&new_community)), &auditor).await,
            StatusCode::OK,
        )
        .await,
    )
    .await;
    assert_eq!(members["items"][0]["user"]["username"], "new.staff");
    let units =
        json_of(expect_status(app.get("/api/v1/units?kind=community", &auditor).await, StatusCode::OK).await).await;
    assert_eq!(units["items"].as_array().unwrap().len(), 2);
    expect_problem(
        app.post(
            &format!("/api/v1/units/{}/members", id(&new_community)),
            &auditor,
            json!({"user_id": street_admin_id, "roles": ["resident"]}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;

    // Suspending the grant takes effect on the very next request.
    let path = format!("/api/v1/units/{}/members/{street_admin_id}", id(&tree.street));
    expect_status(app.patch(&path, &admin, json!({"status": "suspended"})).await, StatusCode::OK).await;
    expect_problem(
        app.get(&format!("/api/v1/units/{}", id(&new_community)), &street_admin).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    expect_status(app.patch(&path, &admin, json!({"status": "active"})).await, StatusCode::OK).await;
    expect_status(app.get(&format!("/api/v1/units/{}", id(&new_community)), &street_admin).await, StatusCode::OK).await;
    // Taking the role away works as fast.
    expect_status(app.patch(&path, &admin, json!({"roles": ["auditor"]})).await, StatusCode::OK).await;
    expect_problem(
        app.post(
            "/api/v1/units",
            &street_admin,
            json!({"kind": "community", "name": "y", "parent_id": id(&tree.street)}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
}

async fn units_can_be_renamed_and_join_codes_rotated(app: &TestApp) {
    let admin = app.admin().await;
    let tree = app.community_tree(&admin, "戊").await;
    let path = format!("/api/v1/units/{}", id(&tree.community));
    let renamed = json_of(
        expect_status(
            app.patch(&path, &admin, json!({"name": "福寓苑社区", "timezone": "Asia/Urumqi"})).await,
            StatusCode::OK,
        )
        .await,
    )
    .await;
    assert_eq!(renamed["name"], "福寓苑社区");
    assert_eq!(renamed["timezone"], "Asia/Urumqi");
    assert_eq!(renamed["join_code"], tree.community["join_code"]);

    let old_code = tree.community["join_code"].as_str().unwrap();
    let rotated = json_of(
        expect_status(app.patch(&path, &admin, json!({"regenerate_join_code": true})).await, StatusCode::OK).await,
    )
    .await;
    assert_ne!(rotated["join_code"], old_code);
    let register = |code: &str| {
        app.request(Method::POST, "/api/v1/auth/register", None, Some(json!({"join_code": code, "username": format!("r{code}"), "password": "a good password", "display_name": "x"})))
    };
    expect_problem(register(old_code).await, StatusCode::UNPROCESSABLE_ENTITY, "invalid_join_code").await;
    expect_status(register(rotated["join_code"].as_str().unwrap()).await, StatusCode::CREATED).await;

    // Community staff cannot change their own community: that is for the street's admins.
    let (_, staff) = app.member_with_token(&admin, id(&tree.community), "staff.e", &["staff"]).await;
    expect_problem(app.patch(&path, &staff, json!({"name": "mine"})).await, StatusCode::FORBIDDEN, "forbidden").await;
    expect_problem(
        app.patch(&format!("/api/v1/units/{}", id(&tree.street)), &admin, json!({"regenerate_join_code": true})).await,
        StatusCode::BAD_REQUEST,
        "validation_failed",
    )
    .await;
}

async fn unit_lists_page_without_gaps(app: &TestApp) {
    let admin = app.admin().await;
    let district = app.create_unit(&admin, "district", "翻页区", None).await;
    let mut created = Vec::new();
    for n in 0..7 {
        created.push(app.create_unit(&admin, "street", &format!("街道{n}"), Some(id(&district))).await["id"].clone());
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/api/v1/units?parent_id={}&limit=3", id(&district));
        if let Some(cursor) = &cursor {
            path.push_str(&format!("&cursor={cursor}"));
        }
        let page = json_of(expect_status(app.get(&path, &admin).await, StatusCode::OK).await).await;
        seen.extend(page["items"].as_array().unwrap().iter().map(|unit| unit["id"].clone()));
        // A unit created while paging does not disturb the pages.
        if seen.len() == 3 {
            app.create_unit(&admin, "street", "后来的街道", Some(id(&district))).await;
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(&seen[..7], &created[..], "every unit once, in creation order");
    assert_eq!(seen.len(), 8, "the one created meanwhile comes last");
}
