//! The dataset, made through the public API like any client would: a district with one street,
//! communities with staff, residents, a rule and rewards, and a history of awards.

use std::time::Instant;

use anyhow::{Context, bail};
use futures_util::{StreamExt, stream};
use rand::Rng;
use reqwest::Client;
use serde_json::{Value, json};

use crate::server::ADMIN_PASSWORD;

pub const PASSWORD: &str = "bench password, not secret";
pub const RULE: &str = "volunteering";
/// Points of every award line of the history and of the scenarios.
pub const AWARD_POINTS: i64 = 10;
/// What each redeeming resident gets on top, so that orders are refused only when they should be.
pub const TOP_UP_POINTS: i64 = 100_000;
pub const REWARD_COST: i64 = 10;
pub const REWARD_STOCK: i64 = 1_000_000;
/// Requests between two renewals of the staff's access tokens while seeding (they last 15
/// minutes, and seeding a full dataset on a busy machine takes longer).
const CHUNK: usize = 1000;
/// Lines of one history award, at most.
const MAX_LINES: usize = 500;

/// How big the dataset is.
#[derive(Debug, Clone)]
pub struct Size {
    pub communities: usize,
    pub residents: usize,
    pub rewards: usize,
    pub postings: usize,
    pub history_transactions: usize,
    pub deep_page: usize,
    pub redeemers: usize,
    pub concurrency: usize,
}

/// A signed-in user: the access token to use and the refresh token to renew it.
#[derive(Debug, Clone)]
pub struct Session {
    pub access: String,
    refresh: String,
}

impl Session {
    pub async fn login(client: &Client, base: &str, username: &str, password: &str) -> anyhow::Result<Session> {
        let body = json!({"username": username, "password": password});
        let tokens = send(client.post(format!("{base}/api/v1/auth/login")).json(&body)).await?;
        Session::from_tokens(&tokens)
    }

    /// A fresh access token (they last 15 minutes; a full run takes longer).
    pub async fn refresh(&mut self, client: &Client, base: &str) -> anyhow::Result<()> {
        let body = json!({"refresh_token": self.refresh});
        let tokens = send(client.post(format!("{base}/api/v1/auth/refresh")).json(&body)).await?;
        *self = Session::from_tokens(&tokens)?;
        Ok(())
    }

    fn from_tokens(tokens: &Value) -> anyhow::Result<Session> {
        let field = |name: &str| tokens[name].as_str().map(str::to_owned).with_context(|| format!("no {name}"));
        Ok(Session { access: field("access_token")?, refresh: field("refresh_token")? })
    }
}

/// Sends a request and returns its JSON answer; anything but a 2xx is an error.
pub async fn send(request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
    let response = request.send().await?;
    let status = response.status();
    let body = response.bytes().await?;
    if !status.is_success() {
        bail!("{status}: {}", String::from_utf8_lossy(&body));
    }
    Ok(serde_json::from_slice(&body)?)
}

pub fn key() -> String {
    uuid::Uuid::new_v4().to_string()
}

pub struct Community {
    pub id: String,
    pub staff: Session,
    pub residents: Vec<String>,
    pub rewards: Vec<String>,
}

pub struct Redeemer {
    pub community: usize,
    pub session: Session,
}

/// What the scenarios need to know about the dataset.
pub struct Dataset {
    pub base: String,
    pub district: String,
    pub auditor: Session,
    pub communities: Vec<Community>,
    pub redeemers: Vec<Redeemer>,
    /// The community with the long history (the first).
    pub history: usize,
    /// The cursor of page `deep_page` of the history community's transactions.
    pub deep_cursor: String,
    /// The hot account: a resident whom only the hot-account scenario awards.
    pub hot: (usize, String),
    /// Ledger transactions and orders that answered 2xx so far.
    pub transactions: u64,
    pub orders: u64,
}

impl Dataset {
    /// Renews every access token before a scenario.
    pub async fn refresh(&mut self, client: &Client) -> anyhow::Result<()> {
        let base = self.base.clone();
        self.auditor.refresh(client, &base).await?;
        for community in &mut self.communities {
            community.staff.refresh(client, &base).await?;
        }
        let sessions = self.redeemers.iter_mut().map(|redeemer| &mut redeemer.session);
        run_all(sessions, 8, |session| {
            let (client, base) = (client.clone(), base.clone());
            async move { session.refresh(&client, &base).await }
        })
        .await
        .map(drop)
    }

    /// Residents the award scenario picks from in a community (never the hot account).
    pub fn award_targets(&self, community: usize) -> &[String] {
        let residents = &self.communities[community].residents;
        if community == self.hot.0 && residents.len() > 1 { &residents[1..] } else { residents }
    }
}

/// Runs `task` for every item, `concurrency` at a time; the first error stops it.
pub async fn run_all<I, F, Fut, T>(items: I, concurrency: usize, task: F) -> anyhow::Result<Vec<T>>
where
    I: IntoIterator,
    F: FnMut(I::Item) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let mut results = Vec::new();
    let mut running = stream::iter(items).map(task).buffer_unordered(concurrency.max(1));
    while let Some(result) = running.next().await {
        results.push(result?);
    }
    Ok(results)
}

async fn refresh_staff(client: &Client, base: &str, communities: &mut [Community]) -> anyhow::Result<()> {
    for community in communities {
        community.staff.refresh(client, base).await?;
    }
    Ok(())
}

fn id(value: &Value) -> anyhow::Result<String> {
    value["id"].as_str().map(str::to_owned).with_context(|| format!("no id in {value}"))
}

struct Api<'a> {
    client: &'a Client,
    base: &'a str,
}

impl Api<'_> {
    async fn post(&self, path: &str, token: &str, body: Value) -> anyhow::Result<Value> {
        let request = self.client.post(format!("{}/api/v1{path}", self.base)).bearer_auth(token).json(&body);
        send(request.header("Idempotency-Key", key())).await.with_context(|| format!("POST {path}"))
    }

    async fn get(&self, path: &str, token: &str) -> anyhow::Result<Value> {
        send(self.client.get(format!("{}/api/v1{path}", self.base)).bearer_auth(token))
            .await
            .with_context(|| format!("GET {path}"))
    }
}

pub async fn seed(client: &Client, base: &str, size: &Size) -> anyhow::Result<Dataset> {
    let api = Api { client, base };
    let started = Instant::now();
    let admin = Session::login(client, base, "admin", ADMIN_PASSWORD).await?;
    let admin = admin.access.as_str();
    let district = id(&api.post("/units", admin, json!({"kind": "district", "name": "基准区"})).await?)?;
    let street = json!({"kind": "street", "name": "基准街道", "parent_id": district});
    let street = id(&api.post("/units", admin, street).await?)?;
    let auditor = json!({"new_user": {"username": "bench.auditor", "display_name": "区审计", "password": PASSWORD}, "roles": ["auditor"]});
    api.post(&format!("/units/{district}/members"), admin, auditor).await?;
    let auditor = Session::login(client, base, "bench.auditor", PASSWORD).await?;

    let mut communities = Vec::new();
    for n in 0..size.communities {
        let body = json!({"kind": "community", "name": format!("基准社区{n:03}"), "parent_id": street});
        let community = id(&api.post("/units", admin, body).await?)?;
        let username = format!("bench.c{n}.staff");
        let staff = json!({"new_user": {"username": username, "display_name": format!("社工{n}"), "password": PASSWORD}, "roles": ["staff"]});
        api.post(&format!("/units/{community}/members"), admin, staff).await?;
        let staff = Session::login(client, base, &username, PASSWORD).await?;
        let rule = json!({"code": RULE, "name": "志愿服务", "category": "volunteering", "direction": "earn",
            "default_points": AWARD_POINTS, "min_points": 1, "max_points": TOP_UP_POINTS});
        api.post(&format!("/communities/{community}/rules"), &staff.access, rule).await?;
        communities.push(Community { id: community, staff, residents: Vec::new(), rewards: Vec::new() });
    }
    for n in 0..size.rewards.max(size.communities) {
        let community = &mut communities[n % size.communities];
        let body = json!({"name": format!("奖品{n}"), "cost": REWARD_COST, "stock": REWARD_STOCK});
        let reward = api.post(&format!("/communities/{}/rewards", community.id), &community.staff.access, body).await?;
        community.rewards.push(id(&reward)?);
    }
    println!("  seeded units, staff, rules and rewards in {:.1} s", started.elapsed().as_secs_f64());

    // Residents: every one costs the server an argon2 hash, so they are made a few at a time.
    let started = Instant::now();
    let jobs: Vec<(usize, usize)> =
        (0..size.communities).flat_map(|c| (0..size.residents).map(move |r| (c, r))).collect();
    let mut made = Vec::new();
    for chunk in jobs.chunks(CHUNK) {
        refresh_staff(client, base, &mut communities).await?;
        let staff: Vec<(String, String)> =
            communities.iter().map(|community| (community.id.clone(), community.staff.access.clone())).collect();
        made.extend(run_all(chunk.iter().copied(), 4, |(c, r)| {
        let (api, staff) = (&api, &staff);
        async move {
            let (community, token) = &staff[c];
            let body = json!({
                "new_user": {"username": format!("bench.c{c}.r{r}"), "display_name": format!("居民{c}-{r}"), "password": PASSWORD},
                "roles": ["resident"],
                "household": {"compound": "基准小区", "building": format!("{}号楼", r / 20 + 1), "unit": "1单元", "room": format!("{}", 101 + r % 20)},
            });
            let member = api.post(&format!("/units/{community}/members"), token, body).await?;
            let user = member["user"]["id"].as_str().map(str::to_owned).context("no user id")?;
            Ok((c, r, user))
        }
    })
    .await?);
    }
    // In the order of their usernames (bench.c{c}.r{r}), whatever order they were made in.
    made.sort();
    for (c, _, user) in made {
        communities[c].residents.push(user);
    }
    println!("  seeded {} residents in {:.1} s", size.communities * size.residents, started.elapsed().as_secs_f64());

    // The history: single-resident awards in the first community (deep pages), then awards to
    // whole communities in turn, the first excepted (many postings per request), up to the postings wanted.
    let started = Instant::now();
    let mut transactions = 0u64;
    let singles = size.history_transactions;
    for first in (0..singles).step_by(CHUNK) {
        refresh_staff(client, base, &mut communities[..1]).await?;
        let history = &communities[0];
        run_all(first..singles.min(first + CHUNK), size.concurrency, |n| {
            let (api, history) = (&api, history);
            async move {
                let resident = &history.residents[n % history.residents.len()];
                let body =
                    json!({"rule_code": RULE, "memo": format!("志愿服务 第{n}次"), "awards": [{"user_id": resident}]});
                api.post(&format!("/communities/{}/awards", history.id), &history.staff.access, body).await?;
                Ok(())
            }
        })
        .await?;
    }
    transactions += singles as u64;
    let lines = size.residents.clamp(1, MAX_LINES);
    let bulk = size.postings.saturating_sub(2 * singles) / (lines + 1);
    for first in (0..bulk).step_by(CHUNK / 10) {
        refresh_staff(client, base, &mut communities).await?;
        run_all(first..bulk.min(first + CHUNK / 10), 2, |n| {
            let (api, communities) = (&api, &communities);
            async move {
                // Not the first community: its history is single awards only, so that its first
                // and its deep history page hold alike transactions and cost the same to read.
                let others = &communities[usize::from(communities.len() > 1)..];
                let community = &others[n % others.len()];
                let start = (n / others.len()) * lines;
                let awards: Vec<Value> = (0..lines)
                    .map(|k| json!({"user_id": community.residents[(start + k) % community.residents.len()]}))
                    .collect();
                let body = json!({"rule_code": RULE, "memo": format!("社区活动 第{n}场"), "awards": awards});
                api.post(&format!("/communities/{}/awards", community.id), &community.staff.access, body).await?;
                Ok(())
            }
        })
        .await?;
    }
    transactions += bulk as u64;
    println!(
        "  seeded {singles} single awards and {bulk} awards of {lines} residents in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // The residents who order in the shop and read their balance: the last ones of each
    // community, signed in for real (an argon2 verification each), with points to spend.
    let started = Instant::now();
    refresh_staff(client, base, &mut communities).await?;
    let per_community = size.redeemers.div_ceil(size.communities).min(size.residents.saturating_sub(1)).max(1);
    let mut chosen = Vec::new();
    for (c, community) in communities.iter().enumerate() {
        let picks: Vec<&String> = community.residents.iter().rev().take(per_community).collect();
        let awards: Vec<Value> = picks.iter().map(|user| json!({"user_id": user, "points": TOP_UP_POINTS})).collect();
        let body = json!({"rule_code": RULE, "memo": "积分超市 充值", "awards": awards});
        api.post(&format!("/communities/{}/awards", community.id), &community.staff.access, body).await?;
        transactions += 1;
        let first = community.residents.len() - picks.len();
        chosen.extend((first..community.residents.len()).map(|r| (c, r)));
    }
    chosen.truncate(size.redeemers.max(1));
    let redeemers = run_all(chosen, 4, |(c, r)| async move {
        let session = Session::login(client, base, &format!("bench.c{c}.r{r}"), PASSWORD).await?;
        Ok(Redeemer { community: c, session })
    })
    .await?;
    println!("  signed in {} redeeming residents in {:.1} s", redeemers.len(), started.elapsed().as_secs_f64());

    // The cursor of the deep history page, by walking there as a client would.
    let started = Instant::now();
    let mut cursor = String::new();
    for _ in 1..size.deep_page {
        let path = format!("/communities/{}/transactions?cursor={cursor}", communities[0].id);
        let page = api.get(&path, &communities[0].staff.access).await?;
        cursor = page["next_cursor"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("the history ends before page {}", size.deep_page))?;
    }
    println!("  walked to history page {} in {:.1} s", size.deep_page, started.elapsed().as_secs_f64());

    let hot_community = if size.communities > 1 { 1 } else { 0 };
    let hot = (hot_community, communities[hot_community].residents[0].clone());
    Ok(Dataset {
        base: base.to_owned(),
        district,
        auditor,
        communities,
        redeemers,
        history: 0,
        deep_cursor: cursor,
        hot,
        transactions,
        orders: 0,
    })
}

/// A random element.
pub fn pick<'a, T>(rng: &mut impl Rng, items: &'a [T]) -> &'a T {
    &items[rng.gen_range(0..items.len())]
}
