//! The requests of each scenario.

use std::sync::Arc;

use rand::rngs::StdRng;
use reqwest::{Client, RequestBuilder};
use serde_json::json;

use crate::load::Operation;
use crate::seed::{AWARD_POINTS, Dataset, RULE, key, pick};

/// What a request scenario needs of the dataset, copied out of it (tokens as of the last refresh).
struct Target {
    community: String,
    token: String,
    residents: Vec<String>,
}

fn targets(dataset: &Dataset) -> Vec<Target> {
    dataset
        .communities
        .iter()
        .enumerate()
        .map(|(n, community)| Target {
            community: community.id.clone(),
            token: community.staff.access.clone(),
            residents: dataset.award_targets(n).to_vec(),
        })
        .collect()
}

fn award(client: &Client, base: &str, target: &Target, user_id: &str) -> RequestBuilder {
    let body =
        json!({"rule_code": RULE, "memo": "基准 志愿服务", "awards": [{"user_id": user_id, "points": AWARD_POINTS}]});
    client
        .post(format!("{base}/api/v1/communities/{}/awards", target.community))
        .bearer_auth(&target.token)
        .header("Idempotency-Key", key())
        .json(&body)
}

/// Staff award one resident, both picked at random across all communities.
pub struct Award {
    base: String,
    targets: Vec<Target>,
}

impl Award {
    pub fn new(dataset: &Dataset) -> Arc<Self> {
        Arc::new(Award { base: dataset.base.clone(), targets: targets(dataset) })
    }
}

impl Operation for Award {
    fn request(&self, client: &Client, rng: &mut StdRng) -> RequestBuilder {
        let target = pick(rng, &self.targets);
        award(client, &self.base, target, pick::<String>(rng, &target.residents))
    }
}

/// Every award goes to the same resident.
pub struct HotAward {
    base: String,
    target: Target,
    user_id: String,
}

impl HotAward {
    pub fn new(dataset: &Dataset) -> Arc<Self> {
        let (community, user_id) = dataset.hot.clone();
        let target = targets(dataset).swap_remove(community);
        Arc::new(HotAward { base: dataset.base.clone(), target, user_id })
    }
}

impl Operation for HotAward {
    fn request(&self, client: &Client, _: &mut StdRng) -> RequestBuilder {
        award(client, &self.base, &self.target, &self.user_id)
    }
}

/// The signed-in residents: (community, its reward ids, access token) each.
pub struct Residents {
    base: String,
    residents: Vec<(String, Vec<String>, String)>,
}

impl Residents {
    fn new(dataset: &Dataset) -> Self {
        let residents = dataset
            .redeemers
            .iter()
            .map(|redeemer| {
                let community = &dataset.communities[redeemer.community];
                (community.id.clone(), community.rewards.clone(), redeemer.session.access.clone())
            })
            .collect();
        Residents { base: dataset.base.clone(), residents }
    }
}

/// A signed-in resident orders one of their community's rewards.
pub struct Redeem(Residents);

impl Redeem {
    pub fn new(dataset: &Dataset) -> Arc<Self> {
        Arc::new(Redeem(Residents::new(dataset)))
    }
}

impl Operation for Redeem {
    fn request(&self, client: &Client, rng: &mut StdRng) -> RequestBuilder {
        let (community, rewards, token) = pick(rng, &self.0.residents);
        client
            .post(format!("{}/api/v1/communities/{community}/redemptions", self.0.base))
            .bearer_auth(token)
            .header("Idempotency-Key", key())
            .json(&json!({"reward_id": pick(rng, rewards), "quantity": 1}))
    }

    fn refusals_expected(&self) -> bool {
        true
    }
}

/// A signed-in resident reads their own balance.
pub struct Balance(Residents);

impl Balance {
    pub fn new(dataset: &Dataset) -> Arc<Self> {
        Arc::new(Balance(Residents::new(dataset)))
    }
}

impl Operation for Balance {
    fn request(&self, client: &Client, rng: &mut StdRng) -> RequestBuilder {
        let (community, _, token) = pick(rng, &self.0.residents);
        client.get(format!("{}/api/v1/communities/{community}/accounts/me", self.0.base)).bearer_auth(token)
    }
}

/// Staff read one page (50 transactions, newest first) of the long history.
pub struct History {
    url: String,
    token: String,
}

impl History {
    /// `deep`: the page the dataset's cursor points to; otherwise the first.
    pub fn new(dataset: &Dataset, deep: bool) -> Arc<Self> {
        let community = &dataset.communities[dataset.history];
        let mut url = format!("{}/api/v1/communities/{}/transactions", dataset.base, community.id);
        if deep {
            url.push_str(&format!("?cursor={}", dataset.deep_cursor));
        }
        Arc::new(History { url, token: community.staff.access.clone() })
    }
}

impl Operation for History {
    fn request(&self, client: &Client, _: &mut StdRng) -> RequestBuilder {
        client.get(&self.url).bearer_auth(&self.token)
    }
}
