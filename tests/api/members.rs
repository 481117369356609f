use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{PASSWORD, TestApp, expect_problem, expect_status, id, json_of};

both_backends!(
    staff_add_residents_with_households,
    staff_cannot_grant_or_change_official_roles,
    membership_rules_are_enforced,
    residents_register_with_a_join_code_and_wait_for_approval,
    member_lists_filter_search_and_page,
);

async fn staff_add_residents_with_households(app: &TestApp) {
    let admin = app.admin().await;
    let tree = app.community_tree(&admin, "福").await;
    let community = id(&tree.community);
    let (_, staff) = app.member_with_token(&admin, community, "staff.fu", &["staff"]).await;

    let body = json!({
        "new_user": {"username": "13800138000", "display_name": "张阿姨", "phone": "138 0013 8000"},
        "roles": ["resident"],
        "household": {"compound": "煤气小区", "building": "3号楼", "unit": "2单元", "room": "301"}
    });
    let response =
        expect_status(app.post(&format!("/api/v1/units/{community}/members"), &staff, body).await, StatusCode::CREATED)
            .await;
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let member = json_of(response).await;
    assert_eq!(location, format!("/api/v1/units/{community}/members/{}", member["user"]["id"].as_str().unwrap()));
    assert_eq!(member["status"], "active", "added by staff: active at once");
    assert_eq!(member["roles"], json!(["resident"]));
    assert_eq!(member["household"]["compound"], "煤气小区");
    // No password given: one was generated, shown this once, and it works.
    let initial = member["initial_password"].as_str().unwrap();
    assert_eq!(initial.len(), 12);
    let resident = app.login("13800138000", initial).await;
    let me = json_of(app.get("/api/v1/me", &resident).await).await;
    assert_eq!(me["memberships"][0]["status"], "active");
    assert_eq!(me["memberships"][0]["household"]["room"], "301");
    assert_eq!(me["memberships"][0]["unit"]["id"], community);

    // Household changes and clearing.
    let path = format!("/api/v1/units/{community}/members/{}", member["user"]["id"].as_str().unwrap());
    let moved = json_of(
        expect_status(
            app.patch(&path, &staff, json!({"household": {"compound": "煤气小区", "building": "5号楼"}})).await,
            StatusCode::OK,
        )
        .await,
    )
    .await;
    assert_eq!(moved["household"], json!({"compound": "煤气小区", "building": "5号楼", "unit": null, "room": null}));
    let cleared =
        json_of(expect_status(app.patch(&path, &staff, json!({"household": null})).await, StatusCode::OK).await).await;
    assert_eq!(cleared["household"], json!(null));
    assert!(cleared.get("initial_password").is_none());
}

async fn staff_cannot_grant_or_change_official_roles(app: &TestApp) {
    let admin = app.admin().await;
    let tree = app.community_tree(&admin, "寓").await;
    let community = id(&tree.community);
    let (staff_id, staff) = app.member_with_token(&admin, community, "staff.yu", &["staff"]).await;
    let (other_staff_id, _) = app.member_with_token(&admin, community, "staff.two", &["staff"]).await;
    let (resident_id, resident) = app.member_with_token(&admin, community, "resident.yu", &["resident"]).await;

    for roles in [json!(["staff"]), json!(["admin"]), json!(["auditor"]), json!(["resident", "staff"])] {
        let body =
            json!({"new_user": {"username": "would.be", "display_name": "x", "password": PASSWORD}, "roles": roles});
        expect_problem(
            app.post(&format!("/api/v1/units/{community}/members"), &staff, body).await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
    }
    let members = format!("/api/v1/units/{community}/members");
    expect_problem(
        app.patch(&format!("{members}/{other_staff_id}"), &staff, json!({"status": "suspended"})).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    expect_problem(
        app.patch(&format!("{members}/{resident_id}"), &staff, json!({"roles": ["staff"]})).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    expect_problem(
        app.patch(&format!("{members}/{staff_id}"), &staff, json!({"status": "active"})).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    // Residents manage nothing.
    expect_problem(app.get(&members, &resident).await, StatusCode::FORBIDDEN, "forbidden").await;
    expect_problem(
        app.patch(&format!("{members}/{resident_id}"), &resident, json!({"status": "active"})).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    // Staff can suspend a resident; admins can make a resident staff too.
    let suspended = json_of(
        expect_status(
            app.patch(&format!("{members}/{resident_id}"), &staff, json!({"status": "suspended"})).await,
            StatusCode::OK,
        )
        .await,
    )
    .await;
    assert_eq!(suspended["status"], "suspended");
    let both = json_of(
        expect_status(
            app.patch(
                &format!("{members}/{resident_id}"),
                &admin,
                json!({"roles": ["resident", "staff"], "status": "active"}),
            )
            .await,
            StatusCode::OK,
        )
        .await,
    )
    .await;
    assert_eq!(both["roles"], json!(["staff", "resident"]));
}

async fn membership_rules_are_enforced(app: &TestApp) {
    let admin = app.admin().await;
    let a = app.community_tree(&admin, "规则甲").await;
    let b = app.community_tree(&admin, "规则乙").await;
    let (resident_id, _) = app.member_with_token(&admin, id(&a.community), "moving.resident", &["resident"]).await;
    let (a_id, b_id) = (id(&a.community).to_owned(), id(&b.community).to_owned());

    // One community per resident; one membership per unit.
    expect_problem(
        app.add_member_raw(&admin, &b_id, json!({"user_id": resident_id, "roles": ["resident"]})).await,
        StatusCode::CONFLICT,
        "already_resident_elsewhere",
    )
    .await;
    expect_problem(
        app.add_member_raw(&admin, &a_id, json!({"user_id": resident_id, "roles": ["staff"]})).await,
        StatusCode::CONFLICT,
        "already_member",
    )
    .await;
    // But they may be staff elsewhere.
    expect_status(
        app.add_member_raw(&admin, &b_id, json!({"user_id": resident_id, "roles": ["staff"]})).await,
        StatusCode::CREATED,
    )
    .await;
    expect_problem(
        app.patch(
            &format!("/api/v1/units/{}/members/{resident_id}", id(&b.community)),
            &admin,
            json!({"roles": ["staff", "resident"]}),
        )
        .await,
        StatusCode::CONFLICT,
        "already_resident_elsewhere",
    )
    .await;
    // Residents live in communities.
    let street = id(&a.street).to_owned();
    expect_problem(app.add_member_raw(&admin, &street, json!({"new_user": {"username": "street.resident", "display_name": "x", "password": PASSWORD}, "roles": ["resident"]})).await, StatusCode::UNPROCESSABLE_ENTITY, "invalid_role_for_unit").await;
    // Bad requests.
    for body in [
        json!({"roles": ["resident"]}),
        json!({"user_id": resident_id, "new_user": {"username": "x.y.z", "display_name": "x"}, "roles": ["resident"]}),
        json!({"new_user": {"username": "no.roles", "display_name": "x"}, "roles": []}),
        json!({"new_user": {"username": "x", "display_name": "x"}, "roles": ["resident"]}),
        json!({"new_user": {"username": "short.pw", "display_name": "x", "password": "short"}, "roles": ["resident"]}),
        json!({"new_user": {"username": "staff.house", "display_name": "x"}, "roles": ["staff"], "household": {"room": "1"}}),
    ] {
        expect_problem(app.add_member_raw(&admin, &a_id, body).await, StatusCode::BAD_REQUEST, "validation_failed")
            .await;
    }
    expect_problem(
        app.add_member_raw(
            &admin,
            &a_id,
            json!({"new_user": {"username": "x", "display_name": "x"}, "roles": ["mayor"]}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_body",
    )
    .await;
    expect_problem(
        app.add_member_raw(
            &admin,
            &a_id,
            json!({"new_user": {"username": "moving.resident", "display_name": "x"}, "roles": ["staff"]}),
        )
        .await,
        StatusCode::CONFLICT,
        "username_taken",
    )
    .await;
    expect_problem(
        app.add_member_raw(&admin, &a_id, json!({"user_id": uuid::Uuid::now_v7(), "roles": ["staff"]})).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    // Nobody changes their own roles or status, not even an admin.
    let admin_id = json_of(app.get("/api/v1/me", &admin).await).await["id"].as_str().unwrap().to_owned();
    let platform = json_of(app.get("/api/v1/units?kind=platform", &admin).await).await["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    expect_problem(
        app.patch(&format!("/api/v1/units/{platform}/members/{admin_id}"), &admin, json!({"status": "suspended"}))
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
}

async fn residents_register_with_a_join_code_and_wait_for_approval(app: &TestApp) {
    let admin = app.admin().await;
    let tree = app.community_tree(&admin, "新旺").await;
    let community = id(&tree.community);
    let (_, staff) = app.member_with_token(&admin, community, "staff.xw", &["staff"]).await;
    let code = tree.community["join_code"].as_str().unwrap();
    let spaced = format!("{} {}", &code[..4].to_lowercase(), &code[4..]);
    let body = json!({
        "join_code": spaced,
        "username": "Li.Hua",
        "password": "my garden is green",
        "display_name": "李华",
        "phone": "13900139000",
        "household": {"compound": "煤气小区", "building": "1号楼", "unit": "1单元", "room": "101"}
    });
    let registered = json_of(
        expect_status(
            app.request(Method::POST, "/api/v1/auth/register", None, Some(body.clone())).await,
            StatusCode::CREATED,
        )
        .await,
    )
    .await;
    assert_eq!(registered["username"], "li.hua");
    assert_eq!(registered["memberships"][0]["status"], "pending");
    assert_eq!(registered["memberships"][0]["roles"], json!(["resident"]));
    let user_id = registered["id"].as_str().unwrap();

    expect_problem(
        app.request(Method::POST, "/api/v1/auth/register", None, Some(body.clone())).await,
        StatusCode::CONFLICT,
        "username_taken",
    )
    .await;
    let mut bad_code = body.clone();
    bad_code["join_code"] = json!("NOPE2345");
    bad_code["username"] = json!("someone.else");
    expect_problem(
        app.request(Method::POST, "/api/v1/auth/register", None, Some(bad_code)).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_join_code",
    )
    .await;

    // Pending: can sign in and see the profile, but not the community.
    let resident = app.login("li.hua", "my garden is green").await;
    expect_problem(app.get(&format!("/api/v1/units/{community}"), &resident).await, StatusCode::NOT_FOUND, "not_found")
        .await;
    let pending = json_of(app.get(&format!("/api/v1/units/{community}/members?status=pending"), &staff).await).await;
    assert_eq!(pending["items"].as_array().unwrap().len(), 1);
    assert_eq!(pending["items"][0]["user"]["id"], user_id);

    let approved = json_of(
        expect_status(
            app.patch(&format!("/api/v1/units/{community}/members/{user_id}"), &staff, json!({"status": "active"}))
                .await,
            StatusCode::OK,
        )
        .await,
    )
    .await;
    assert_eq!(approved["status"], "active");
    expect_status(app.get(&format!("/api/v1/units/{community}"), &resident).await, StatusCode::OK).await;
}

async fn member_lists_filter_search_and_page(app: &TestApp) {
    let admin = app.admin().await;
    let tree = app.community_tree(&admin, "名单").await;
    let community = id(&tree.community);
    for name in ["wang.wei", "wang.fang", "li.na", "zhang_san"] {
        app.add_member(&admin, community, name, &["resident"]).await;
    }
    // Beyond ASCII, case is folded the same on both backends.
    let body = json!({"new_user": {"username": "emile", "display_name": "Émile ＷＡＮＧ"}, "roles": ["auditor"]});
    expect_status(app.add_member_raw(&admin, community, body).await, StatusCode::CREATED).await;
    app.add_member(&admin, community, "staff.wang", &["staff"]).await;
    let admin = &admin;
    let list = |query: &str| {
        let path = format!("/api/v1/units/{community}/members?{query}");
        async move { json_of(expect_status(app.get(&path, admin).await, StatusCode::OK).await).await }
    };
    let usernames = |page: &Value| {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["user"]["username"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };

    assert_eq!(usernames(&list("role=resident").await), ["wang.wei", "wang.fang", "li.na", "zhang_san"]);
    assert_eq!(usernames(&list("role=staff").await), ["staff.wang"]);
    assert_eq!(usernames(&list("q=WANG").await), ["wang.wei", "wang.fang", "staff.wang"]);
    assert_eq!(
        usernames(&list("q=%C3%A9mile%20%EF%BD%97").await),
        ["emile"],
        "é and full-width ｗ match their capitals"
    );
    assert_eq!(usernames(&list("role=auditor").await), ["emile"]);
    assert_eq!(usernames(&list("q=g_s").await), ["zhang_san"], "LIKE wildcards in the search are literal");
    assert_eq!(usernames(&list("q=%25").await), Vec::<String>::new());
    expect_problem(
        app.get(&format!("/api/v1/units/{community}/members?q=%00"), admin).await,
        StatusCode::BAD_REQUEST,
        "validation_failed",
    )
    .await;
    assert_eq!(usernames(&list("status=suspended").await), Vec::<String>::new());

    let first = list("limit=2").await;
    assert_eq!(usernames(&first), ["wang.wei", "wang.fang"]);
    let second = list(&format!("limit=2&cursor={}", first["next_cursor"].as_str().unwrap())).await;
    assert_eq!(usernames(&second), ["li.na", "zhang_san"]);
    let third = list(&format!("limit=2&cursor={}", second["next_cursor"].as_str().unwrap())).await;
    assert_eq!(usernames(&third), ["emile", "staff.wang"]);
    assert_eq!(third["next_cursor"], json!(null));
}
