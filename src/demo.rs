//! `jifen demo`: a demo district modelled on a real community's practice —
//! 平城区 → 新旺街道 → 福寓苑社区, residents of 煤气小区 with their households, point
//! rules, activities, a points shop and five weeks of history.
//!
//! Everything after the district and its administrator is made through the API
//! itself, in process, on a clock that walks through those five weeks, so the
//! demo data obey every rule real data do (and say so in the audit log).

use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::Method;
use actix_web::test::{TestRequest, init_service, read_body};
use actix_web::web;
use chrono::{DateTime, Duration, NaiveTime, TimeZone, Utc};
use serde_json::{Value, json};

use crate::auth::password;
use crate::auth::tokens::TokenKeys;
use crate::clock::{Clock, ManualClock};
use crate::db::{Database, new_id};
use crate::metrics::Metrics;
use crate::openapi::{self, RouteTable};
use crate::security::{Limiters, RateLimits};
use crate::startup::{AppState, GroupWrites, app, create_admin};
use crate::units::model::{Unit, UnitKind};

/// The password of every demo account. The demo is for trying jifen out, never for real data.
pub const DEMO_PASSWORD: &str = "jifen-demo";
const DISTRICT: &str = "平城区";
const SHANGHAI: chrono_tz::Tz = chrono_tz::Asia::Shanghai;

pub struct DemoLogins {
    pub admin: &'static str,
    pub staff: &'static str,
    pub auditor: &'static str,
    pub resident: &'static str,
}

pub const LOGINS: DemoLogins = DemoLogins {
    admin: "pingcheng.admin",
    staff: "fuyuyuan.staff",
    auditor: "xinwang.auditor",
    resident: "fuyuyuan.r01",
};

const RESIDENTS: [&str; 36] = [
    "张秀英",
    "王建国",
    "李桂兰",
    "刘志强",
    "陈玉梅",
    "杨德华",
    "赵淑珍",
    "黄国庆",
    "周晓燕",
    "吴明辉",
    "徐凤英",
    "孙立新",
    "胡春梅",
    "朱建平",
    "高秀兰",
    "林海涛",
    "何丽娟",
    "郭长江",
    "马翠花",
    "罗志刚",
    "梁美玲",
    "宋文博",
    "郑桂芳",
    "谢永红",
    "韩雪梅",
    "唐建军",
    "冯玉兰",
    "于海波",
    "董淑华",
    "萧子涵",
    "程国栋",
    "曹丽萍",
    "袁志远",
    "邓秀珍",
    "许嘉怡",
    "傅承志",
];

/// Seeds the demo into `db` unless it is there already; returns whether it seeded.
pub async fn seed(db: Database, jwt_secret: &[u8], now: DateTime<Utc>) -> anyhow::Result<bool> {
    // Five weeks ago, 09:00 in Shanghai.
    let start_day = (now - Duration::days(35)).with_timezone(&SHANGHAI).date_naive();
    let start = SHANGHAI
        .from_local_datetime(&start_day.and_time(NaiveTime::from_hms_opt(9, 0, 0).unwrap_or_default()))
        .earliest()
        .map_or(now - Duration::days(35), |start| start.with_timezone(&Utc));
    let clock = Arc::new(ManualClock::new(start));
    let district_db = db.clone();
    let created = tokio::task::spawn_blocking(move || create_district(&district_db, start)).await??;
    let Some(district_id) = created else {
        return Ok(false);
    };
    let spec = openapi::spec();
    let unlimited = std::num::NonZeroU32::MAX;
    let groups = GroupWrites::new()?;
    let metrics = Arc::new(Metrics::new(&db, &groups)?);
    let state = web::Data::new(AppState {
        db,
        clock: clock.clone(),
        tokens: TokenKeys::new(jwt_secret),
        openapi_yaml: String::new(),
        trusted_proxies: Vec::new(),
        limiters: Limiters::new(RateLimits { auth_per_ip: unlimited, writes_per_user: unlimited }),
        metrics,
        groups,
    });
    let service = init_service(app(state, web::Data::new(RouteTable::new(&spec)), Vec::new())).await;
    let mut demo = Demo { service: &service, clock: &clock };
    demo.history(&district_id, now).await?;
    Ok(true)
}

/// The district and its administrator; None if the district exists.
fn create_district(db: &Database, now: DateTime<Utc>) -> anyhow::Result<Option<String>> {
    let hash = password::hash(DEMO_PASSWORD).map_err(|err| anyhow::anyhow!("{err}"))?;
    let now = now.naive_utc();
    db.write_blocking(|conn| -> anyhow::Result<Option<String>> {
        let platform = Unit::platform(conn)?.ok_or_else(|| anyhow::anyhow!("the platform unit is missing"))?;
        if Unit::name_taken(conn, &platform.id, DISTRICT, None)? {
            return Ok(None);
        }
        let district = Unit::new(UnitKind::District, DISTRICT.to_owned(), Some(&platform), now);
        district.insert(conn)?;
        create_admin(conn, &district, LOGINS.admin, "平城区管理员", hash, now)?;
        Ok(Some(district.id))
    })
}

struct Demo<'a, S> {
    service: &'a S,
    clock: &'a ManualClock,
}

impl<S, B> Demo<'_, S>
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut request = TestRequest::default().method(method.clone()).uri(&format!("/api/v1{path}"));
        if let Some(token) = token {
            request = request.insert_header(("Authorization", format!("Bearer {token}")));
        }
        if method == Method::POST {
            request = request.insert_header(("Idempotency-Key", new_id()));
        }
        if let Some(body) = body {
            request = request.set_json(body);
        }
        let response = (self.service.call(request.to_request()).await)
            .map_err(|err| anyhow::anyhow!("demo: {method} {path} failed: {err}"))?;
        let status = response.status();
        let bytes = read_body(response).await;
        if !status.is_success() {
            anyhow::bail!("demo: {method} {path} answered {status}: {}", String::from_utf8_lossy(&bytes));
        }
        Ok(if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes)? })
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> anyhow::Result<Value> {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    /// Signs in; tokens last minutes of the demo's clock, so each step signs in afresh.
    async fn login(&self, username: &str) -> anyhow::Result<String> {
        let body = json!({"username": username, "password": DEMO_PASSWORD});
        let tokens = self.call(Method::POST, "/auth/login", None, Some(body)).await?;
        Ok(tokens["access_token"].as_str().unwrap_or_default().to_owned())
    }

    fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    /// `hour` o'clock in Shanghai, `days` after the demo's today.
    fn local(&self, days: i64, hour: u32) -> DateTime<Utc> {
        let day = (self.clock.now() + Duration::days(days)).with_timezone(&SHANGHAI).date_naive();
        let local = day.and_time(NaiveTime::from_hms_opt(hour, 0, 0).unwrap_or_default());
        SHANGHAI.from_local_datetime(&local).earliest().map_or_else(|| self.clock.now(), |t| t.with_timezone(&Utc))
    }

    async fn history(&mut self, district_id: &str, now: DateTime<Utc>) -> anyhow::Result<()> {
        let admin = self.login(LOGINS.admin).await?;
        let unit = |kind: &str, name: &str, parent: &str| json!({"kind": kind, "name": name, "parent_id": parent});
        let street = self.post("/units", &admin, unit("street", "新旺街道", district_id)).await?;
        let street_id = id(&street);
        let community = self.post("/units", &admin, unit("community", "福寓苑社区", &street_id)).await?;
        let community_id = id(&community);
        let c = |rest: &str| format!("/communities/{community_id}{rest}");

        let new_user =
            |username: &str, name: &str| json!({"username": username, "display_name": name, "password": DEMO_PASSWORD});
        let members = format!("/units/{community_id}/members");
        self.post(&members, &admin, json!({"new_user": new_user(LOGINS.staff, "王晓梅"), "roles": ["staff"]})).await?;
        let auditor = json!({"new_user": new_user(LOGINS.auditor, "街道审计 赵敏"), "roles": ["auditor"]});
        self.post(&format!("/units/{street_id}/members"), &admin, auditor).await?;
        let staff = self.login(LOGINS.staff).await?;
        let mut residents = Vec::new();
        for (n, name) in RESIDENTS.iter().enumerate() {
            let building = n / 6 + 1;
            let household = json!({"compound": "煤气小区", "building": format!("{building}号楼"),
                "unit": format!("{}单元", n % 2 + 1), "room": format!("{}0{}", n % 6 + 1, n % 2 + 1)});
            let body = json!({"new_user": new_user(&format!("fuyuyuan.r{:02}", n + 1), name), "roles": ["resident"], "household": household});
            let member = self.post(&members, &staff, body).await?;
            residents.push(member["user"]["id"].as_str().unwrap_or_default().to_owned());
        }

        let rule = |code: &str, name: &str, category: &str, direction: &str, points: [i64; 3]| {
            json!({"code": code, "name": name, "category": category, "direction": direction,
                "default_points": points[0], "min_points": points[1], "max_points": points[2]})
        };
        for body in [
            rule("volunteering", "志愿服务", "volunteering", "earn", [10, 5, 30]),
            rule("corridor_cleanup", "清理楼道杂物", "environment", "earn", [10, 5, 20]),
            rule("reading", "家长共读一本书", "culture", "earn", [8, 5, 15]),
            rule("civility", "文明行为（一事一约）", "civility", "earn", [5, 1, 20]),
            rule("mutual_aid", "邻里互助", "mutual_aid", "earn", [10, 5, 30]),
            rule("littering", "乱扔垃圾", "environment", "deduct", [5, 1, 20]),
        ] {
            self.post(&c("/rules"), &staff, body).await?;
        }
        let mut rewards = Vec::new();
        for body in [
            json!({"name": "洗衣液 2kg", "description": "蓝月亮", "cost": 120, "stock": 30, "limit_per_resident": {"count": 1, "period": "month"}}),
            json!({"name": "大米 5kg", "description": "东北大米", "cost": 200, "stock": 20}),
            json!({"name": "抽纸一提", "cost": 20, "stock": 100}),
            json!({"name": "酱油 1.9L", "cost": 40, "stock": 50}),
            json!({"name": "义剪一次", "description": "每月第一个周六上午，社区活动室", "cost": 30}),
        ] {
            let cost = body["cost"].as_i64().unwrap_or_default();
            rewards.push((id(&self.post(&c("/rewards"), &staff, body).await?), cost));
        }

        // Five weeks: each one an activity or two, awards, a deduction now and then, claims and orders.
        let activities = [
            ("清理楼道杂物", "corridor_cleanup", "1号楼至3号楼，请自带手套", "煤气小区1号楼门口", 10),
            ("家长共读一本书", "reading", "亲子共读《小王子》", "社区图书室", 8),
            ("清理楼道杂物", "corridor_cleanup", "4号楼至6号楼", "煤气小区4号楼门口", 10),
            ("垃圾分类宣传", "volunteering", "在小区门口向居民讲解垃圾分类", "煤气小区东门", 10),
        ];
        for (week, (title, rule_code, description, location, points)) in activities.into_iter().enumerate() {
            let staff = self.login(LOGINS.staff).await?;
            let (starts_at, ends_at) = (self.local(2, 9), self.local(2, 11));
            let body = json!({"title": title, "rule_code": rule_code, "description": description, "location": location,
                "points": points, "starts_at": starts_at, "ends_at": ends_at, "capacity": 20, "status": "published"});
            let activity = id(&self.post(&c("/activities"), &staff, body).await?);
            let attendees: Vec<&String> = residents.iter().skip(week * 5).take(12).collect();
            for resident in &attendees {
                let username = username_of(&residents, resident);
                let token = self.login(&username).await?;
                self.post(&c(&format!("/activities/{activity}/registrations")), &token, json!({})).await?;
            }
            self.clock.set(starts_at + Duration::minutes(30));
            let staff = self.login(LOGINS.staff).await?;
            // Most check in; two signed up and did not come.
            for resident in attendees.iter().take(10) {
                let body = json!({"user_id": resident});
                self.post(&c(&format!("/activities/{activity}/check-ins")), &staff, body).await?;
            }
            self.clock.set(ends_at + Duration::hours(1));
            let staff = self.login(LOGINS.staff).await?;
            self.post(&c(&format!("/activities/{activity}/completion")), &staff, json!({})).await?;

            let awards: Vec<Value> = (0..6)
                .map(|n| json!({"user_id": residents[(week * 7 + n * 5) % residents.len()], "points": 5 + 5 * (n as i64 % 3)}))
                .collect();
            let memo = ["帮助独居老人买菜", "义务巡逻", "协助核酸采样点维持秩序", "清理小广告"][week % 4];
            self.post(&c("/awards"), &staff, json!({"rule_code": "volunteering", "memo": memo, "awards": awards}))
                .await?;
            let civility = json!({"rule_code": "civility", "memo": "主动劝阻高空抛物", "awards": [{"user_id": residents[week * 3 + 1], "points": 5}]});
            self.post(&c("/awards"), &staff, civility).await?;
            if week % 2 == 1 {
                let deduction = json!({"user_id": residents[week * 4 + 2], "points": 5, "rule_code": "littering", "memo": "垃圾未分类投放"});
                self.post(&c("/deductions"), &staff, deduction).await?;
            }

            // A resident's claim, decided by staff.
            let claimant = &residents[week * 2 + 3];
            let token = self.login(&username_of(&residents, claimant)).await?;
            let claim = json!({"rule_code": "mutual_aid", "description": "帮3号楼的李奶奶把米扛上五楼",
                "occurred_at": self.local(-1, 10), "evidence": ["邻居王先生可作证"]});
            let claim = id(&self.post(&c("/claims"), &token, claim).await?);
            self.advance(Duration::hours(20));
            let staff = self.login(LOGINS.staff).await?;
            let decision = if week == 2 {
                self.post(&c(&format!("/claims/{claim}/rejection")), &staff, json!({"reason": "未能核实，请补充照片"}))
                    .await
            } else {
                self.post(&c(&format!("/claims/{claim}/approval")), &staff, json!({"points": 10})).await
            };
            decision?;

            // Orders in the points shop, by residents who can afford them: most collected, one cancelled.
            for n in 0..3 {
                let buyer = &residents[(week * 5 + n * 3) % 20];
                let token = self.login(&username_of(&residents, buyer)).await?;
                let balance = self.call(Method::GET, &c("/accounts/me"), Some(&token), None).await?["balance"]
                    .as_i64()
                    .unwrap_or_default();
                let Some((reward, _)) =
                    rewards.iter().filter(|(_, cost)| *cost <= balance).max_by_key(|(_, cost)| *cost)
                else {
                    continue;
                };
                let order = self.post(&c("/redemptions"), &token, json!({"reward_id": reward, "quantity": 1})).await?;
                let order_id = id(&order);
                if n == 2 && week == 1 {
                    self.post(&c(&format!("/redemptions/{order_id}/cancellation")), &token, json!({})).await?;
                } else if week < 3 || n == 0 {
                    let code = order["pickup_code"].as_str().unwrap_or_default();
                    let staff = self.login(LOGINS.staff).await?;
                    self.post(&c(&format!("/redemptions/{order_id}/fulfilment")), &staff, json!({"pickup_code": code}))
                        .await?;
                }
            }
            self.advance(Duration::days(5));
        }

        // Coming up: a free clinic residents are signing up for, and one claim awaiting a decision.
        let staff = self.login(LOGINS.staff).await?;
        let clinic = json!({"title": "义诊进社区", "rule_code": "volunteering", "description": "市第二医院医生现场义诊，量血压、测血糖",
            "location": "社区活动室", "points": 5, "starts_at": self.local(5, 9), "ends_at": self.local(5, 12), "capacity": 40, "status": "published"});
        let clinic = id(&self.post(&c("/activities"), &staff, clinic).await?);
        for resident in residents.iter().skip(20).take(8) {
            let token = self.login(&username_of(&residents, resident)).await?;
            self.post(&c(&format!("/activities/{clinic}/registrations")), &token, json!({})).await?;
        }
        let token = self.login(LOGINS.resident).await?;
        let claim = json!({"rule_code": "volunteering", "description": "周末在社区图书室帮忙整理图书", "occurred_at": self.local(-1, 15)});
        self.post(&c("/claims"), &token, claim).await?;
        if self.clock.now() > now {
            tracing::warn!("the demo's history runs past the present");
        }
        Ok(())
    }
}

fn id(value: &Value) -> String {
    value["id"].as_str().unwrap_or_default().to_owned()
}

fn username_of(residents: &[String], user_id: &str) -> String {
    let n = residents.iter().position(|id| id == user_id).unwrap_or_default();
    format!("fuyuyuan.r{:02}", n + 1)
}
