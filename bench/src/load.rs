//! The load generator: closed loop for the maximum throughput, open loop at a fixed offered
//! rate for the latency percentiles (measured from each request's scheduled start, so a stall
//! of the server shows in the percentiles instead of silently slowing the sender down).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rand::SeedableRng;
use rand::rngs::StdRng;
use reqwest::{Client, RequestBuilder, StatusCode};

/// At most this many requests of an open-loop run are in flight; later ones wait for a slot,
/// their latency still counted from their scheduled start.
const MAX_IN_FLIGHT: usize = 512;
/// Failures whose answers are kept for the report.
const KEPT_FAILURES: usize = 5;

/// One kind of request of a scenario.
pub trait Operation: Send + Sync + 'static {
    fn request(&self, client: &Client, rng: &mut StdRng) -> RequestBuilder;
    /// 409 answers (insufficient points, out of stock) are expected refusals, not failures.
    fn refusals_expected(&self) -> bool {
        false
    }
}

/// What a run counted and measured.
pub struct Outcome {
    pub ok: u64,
    pub refused: u64,
    pub failed: u64,
    pub failures: Vec<String>,
    /// Latencies in microseconds.
    pub latencies: Histogram<u64>,
    pub elapsed: Duration,
}

impl Outcome {
    fn new() -> Self {
        Outcome {
            ok: 0,
            refused: 0,
            failed: 0,
            failures: Vec::new(),
            latencies: Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid histogram bounds"),
            elapsed: Duration::ZERO,
        }
    }

    fn record(&mut self, answer: Answer, latency: Duration) {
        match answer {
            Answer::Ok => self.ok += 1,
            Answer::Refused => self.refused += 1,
            Answer::Failed(why) => {
                self.failed += 1;
                if self.failures.len() < KEPT_FAILURES {
                    self.failures.push(why);
                }
            }
        }
        self.latencies.saturating_record(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX).max(1));
    }

    fn merge(&mut self, other: Outcome) {
        self.ok += other.ok;
        self.refused += other.refused;
        self.failed += other.failed;
        for why in other.failures {
            if self.failures.len() < KEPT_FAILURES {
                self.failures.push(why);
            }
        }
        self.latencies.add(&other.latencies).expect("histograms of the same bounds");
    }

    /// Answered requests (successes and expected refusals) per second.
    pub fn per_second(&self) -> f64 {
        (self.ok + self.refused) as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// A percentile of the latencies, in milliseconds.
    pub fn ms(&self, quantile: f64) -> f64 {
        self.latencies.value_at_quantile(quantile) as f64 / 1000.0
    }
}

enum Answer {
    Ok,
    Refused,
    Failed(String),
}

async fn call(operation: &dyn Operation, request: RequestBuilder) -> Answer {
    match request.send().await {
        Ok(response) => {
            let status = response.status();
            let body = response.bytes().await;
            match body {
                Err(err) => Answer::Failed(format!("{status}, body cut off: {err}")),
                Ok(_) if status.is_success() => Answer::Ok,
                Ok(_) if status == StatusCode::CONFLICT && operation.refusals_expected() => Answer::Refused,
                Ok(body) => Answer::Failed(format!("{status}: {}", String::from_utf8_lossy(&body))),
            }
        }
        Err(err) => Answer::Failed(format!("no answer: {err}")),
    }
}

/// `clients` clients, each sending its next request when the previous one is answered, for `duration`.
pub async fn closed_loop(
    client: &Client,
    operation: Arc<dyn Operation>,
    clients: usize,
    duration: Duration,
) -> Outcome {
    let started = Instant::now();
    let until = started + duration;
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (client, operation) = (client.clone(), operation.clone());
        workers.spawn(async move {
            let mut rng = StdRng::from_entropy();
            let mut outcome = Outcome::new();
            loop {
                let sent = Instant::now();
                if sent >= until {
                    break;
                }
                let request = operation.request(&client, &mut rng);
                let answer = call(operation.as_ref(), request).await;
                outcome.record(answer, sent.elapsed());
            }
            outcome
        });
    }
    let mut total = Outcome::new();
    while let Some(outcome) = workers.join_next().await {
        total.merge(outcome.expect("a load worker panicked"));
    }
    total.elapsed = started.elapsed();
    total
}

/// Requests at a fixed `rate` per second for `duration`, whatever the server does meanwhile;
/// each latency runs from the request's scheduled start to its answer.
pub async fn open_loop(client: &Client, operation: Arc<dyn Operation>, rate: f64, duration: Duration) -> Outcome {
    let rate = rate.max(1.0);
    let count = (rate * duration.as_secs_f64()).ceil().max(1.0) as u64;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    let total = Arc::new(Mutex::new(Outcome::new()));
    let started = Instant::now() + Duration::from_millis(10);
    let mut requests = tokio::task::JoinSet::new();
    let mut rng = StdRng::from_entropy();
    for n in 0..count {
        let scheduled = started + interval.mul_f64(n as f64);
        tokio::time::sleep_until(scheduled.into()).await;
        let request = operation.request(client, &mut rng);
        let (operation, slots, total) = (operation.clone(), slots.clone(), total.clone());
        requests.spawn(async move {
            let _slot = slots.acquire_owned().await.expect("the semaphore is never closed");
            let answer = call(operation.as_ref(), request).await;
            let latency = scheduled.elapsed();
            total.lock().expect("no panics while recording").record(answer, latency);
        });
        // Reap finished requests now and then, so the set stays small.
        while requests.try_join_next().is_some() {}
    }
    while requests.join_next().await.is_some() {}
    let mut outcome = std::mem::replace(&mut *total.lock().expect("no panics while recording"), Outcome::new());
    outcome.elapsed = started.elapsed();
    outcome
}
