//! The dispatcher: turns outbox events into deliveries, leases due deliveries, POSTs them signed,
//! and records every attempt. At-least-once: a delivery is only marked done after its attempt is
//! recorded, and a lease (longer than the HTTP timeout plus a margin) hands a delivery whose
//! dispatcher died mid-POST to the next claim — with the same `webhook-id`.
//!
//! Targets pass the same egress policy as browsers: the HTTP client resolves through a resolver
//! that drops refused addresses, IP-literal URLs are checked before sending, and redirects are
//! never followed.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use common::{Clock, clock::rfc3339, crypto::SecretBox, egress::EgressPolicy};
use rand::Rng;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::{
    schedule::Schedule,
    signing,
    store::{AttemptRecord, Claimed, Disabled, Next, Outcome, WebhookStore},
};

#[derive(Clone, Debug)]
pub struct DispatcherConfig {
    pub schedule: Schedule,
    /// A response must arrive within this (15 s).
    pub timeout: Duration,
    /// Deliveries in flight at once, over all endpoints.
    pub concurrency: usize,
    /// Deliveries in flight at once to one endpoint.
    pub per_endpoint: usize,
    /// An endpoint failing continuously this long is disabled (5 days).
    pub disable_after: Duration,
    pub policy: EgressPolicy,
}

/// Resolves hosts and keeps only the addresses the egress policy allows.
struct PolicyResolver(EgressPolicy);

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0.clone();
        Box::pin(async move {
            let addrs = common::egress::resolve(&policy, name.as_str(), 0).await?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

pub struct Dispatcher {
    store: WebhookStore,
    secrets: SecretBox,
    config: DispatcherConfig,
    http: reqwest::Client,
    clock: Clock,
    wake: Notify,
    slots: Arc<Semaphore>,
    endpoint_slots: std::sync::Mutex<std::collections::HashMap<String, Arc<Semaphore>>>,
    on_disabled: std::sync::OnceLock<Box<dyn Fn(Disabled) + Send + Sync>>,
}

/// The exact bytes sent for an event: stable across retries and replays.
pub fn payload(claimed: &Claimed) -> String {
    let q = |s: &str| serde_json::Value::String(s.to_owned()).to_string();
    format!(
        "{{\"id\":{},\"type\":{},\"created_at\":{},\"account_id\":{},\"data\":{}}}",
        q(&claimed.event_id),
        q(&claimed.event_type),
        q(&rfc3339(claimed.event_created_at)),
        q(&claimed.account_id),
        claimed.data
    )
}

impl Dispatcher {
    pub fn new(
        store: WebhookStore,
        secrets: SecretBox,
        config: DispatcherConfig,
        clock: Clock,
    ) -> anyhow::Result<Arc<Self>> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent("Driftstack-Webhooks/1")
            .dns_resolver(Arc::new(PolicyResolver(config.policy.clone())))
            .pool_max_idle_per_host(16)
            .build()?;
        Ok(Arc::new(Dispatcher {
            slots: Arc::new(Semaphore::new(config.concurrency.max(1))),
            store,
            secrets,
            config,
            http,
            clock,
            wake: Notify::new(),
            endpoint_slots: Default::default(),
            on_disabled: std::sync::OnceLock::new(),
        }))
    }

    /// Registers what to do when an endpoint gets disabled (the API mails its owners).
    pub fn on_endpoint_disabled(&self, hook: Box<dyn Fn(Disabled) + Send + Sync>) {
        let _ = self.on_disabled.set(hook);
    }

    /// The semaphore bounding deliveries to one endpoint.
    fn endpoint_slot(&self, endpoint: &str) -> Arc<Semaphore> {
        let mut map = match self.endpoint_slots.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        if map.len() > 10_000 {
            map.retain(|_, s| s.available_permits() < self.config.per_endpoint.max(1));
        }
        map.entry(endpoint.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(self.config.per_endpoint.max(1))))
            .clone()
    }

    /// Asks the loop to look for work now (after an event was recorded in this process).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// The lease: twice the HTTP timeout plus 5 s, so a live attempt is never claimed twice,
    /// while one whose dispatcher died is retried soon after.
    fn lease(&self) -> Duration {
        self.config.timeout * 2 + Duration::from_secs(5)
    }

    /// One round: fan out new events, then send what is due. Returns deliveries attempted.
    pub async fn tick(self: &Arc<Self>) -> anyhow::Result<usize> {
        let now = self.clock.now_ms();
        while self.store.fan_out(now, 500).await? == 500 {}
        let lease_until = now + i64::try_from(self.lease().as_millis()).unwrap_or(i64::MAX);
        let limit = i64::try_from(self.config.concurrency * 4).unwrap_or(128);
        let claimed = self.store.claim(now, lease_until, limit).await?;
        let n = claimed.len();
        let mut tasks = tokio::task::JoinSet::new();
        for c in claimed {
            let permit = self.slots.clone().acquire_owned().await?;
            let endpoint = self.endpoint_slot(&c.endpoint_id);
            let me = self.clone();
            tasks.spawn(async move {
                let _permit = permit;
                let _endpoint = endpoint.acquire_owned().await;
                let id = c.id.clone();
                me.deliver(c).await.map_err(|err| (id, err))
            });
        }
        // The round's attempts are recorded together, in one transaction: until then their
        // leases keep them from being sent twice.
        let mut outcomes = Vec::with_capacity(n);
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(Ok(outcome)) => outcomes.push(outcome),
                Ok(Err((id, err))) => {
                    // Never consumed: released for another attempt (by this node or another)
                    // after a short pause, and counted.
                    tracing::error!(delivery.id = %id, error = %format!("{err:#}"), "delivery could not be prepared; released for another attempt");
                    metrics::counter!("driftstack_webhook_prepare_failed_total").increment(1);
                    let retry_at = self.clock.now_ms() + PREPARE_RETRY_MS;
                    if let Err(err) = self.store.release(&id, retry_at).await {
                        tracing::warn!(delivery.id = %id, error = %err, "could not release a delivery; its lease will expire");
                    }
                }
                Err(err) => tracing::error!(error = %err, "a delivery task failed"),
            }
        }
        let disabled = self
            .store
            .finish_attempts(&outcomes, self.clock.now_ms())
            .await?;
        if !disabled.is_empty() {
            // Their `webhook.endpoint_disabled` events are waiting to be fanned out.
            self.wake();
            if let Some(hook) = self.on_disabled.get() {
                for d in disabled {
                    hook(d);
                }
            }
        }
        Ok(n)
    }

    /// Runs until `shutdown`; an attempt in flight is finished before returning.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            let worked = match self.tick().await {
                Ok(n) => n,
                Err(err) => {
                    tracing::warn!(error = %format!("{err:#}"), "webhook dispatcher round failed");
                    0
                }
            };
            if shutdown.is_cancelled() {
                return;
            }
            if worked == 0 {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                }
            }
        }
    }

    /// Sends one delivery and says what happened; recording it is the caller's.
    async fn deliver(&self, c: Claimed) -> anyhow::Result<Outcome> {
        let body = payload(&c);
        let now = self.clock.now_ms();
        let mut secrets = vec![self.secrets.open(&c.secret_enc)?];
        if let (Some(old), Some(until)) = (&c.old_secret_enc, c.old_secret_expires_at)
            && now < until
        {
            secrets.push(self.secrets.open(old)?);
        }
        let ts = now / 1000;
        let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
        let signature = signing::signature_header(&refs, &c.event_id, ts, body.as_bytes())?;

        let started = Instant::now();
        let result = self.send(&c.url, &c.event_id, ts, &signature, body).await;
        let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let (status_code, error, headers, excerpt, retry_after) = match result {
            Ok(answer) => (
                Some(i32::from(answer.status)),
                None,
                Some(answer.headers),
                Some(answer.excerpt),
                answer.retry_after,
            ),
            Err(e) => (None, Some(e), None, None, None),
        };
        let ok = status_code.is_some_and(|s| (200..300).contains(&s));
        let gone = status_code == Some(410);
        let attempt_no = u32::try_from(c.attempts - c.base_attempt + 1).unwrap_or(u32::MAX);
        let now = self.clock.now_ms();
        let next = if ok {
            Next::Delivered
        } else if gone {
            Next::Dead
        } else {
            let jitter: f64 = rand::rng().random();
            match self.config.schedule.delay_before(attempt_no + 1, jitter) {
                Some(delay) => {
                    let wait = retry_after.map_or(delay, |ra| ra.max(delay));
                    Next::Retry {
                        at: now + i64::try_from(wait.as_millis()).unwrap_or(i64::MAX),
                    }
                }
                None => Next::Dead,
            }
        };
        let failing_too_long = !ok
            && c.failing_since.is_some_and(|since| {
                now - since
                    >= i64::try_from(self.config.disable_after.as_millis()).unwrap_or(i64::MAX)
            });
        let disable = if gone {
            Some("the endpoint answered 410 Gone")
        } else if failing_too_long {
            Some("the endpoint failed continuously for too long")
        } else {
            None
        };
        let attempt = AttemptRecord {
            started_at: now - duration_ms,
            duration_ms,
            status_code,
            error,
            response_headers: headers,
            response_excerpt: excerpt,
        };
        Ok(Outcome {
            claimed: c,
            attempt,
            next,
            disable,
        })
    }

    /// POSTs one message. `Ok((status, body excerpt, Retry-After))` for any HTTP answer.
    async fn send(
        &self,
        url: &str,
        id: &str,
        ts: i64,
        signature: &str,
        body: String,
    ) -> Result<Answer, String> {
        let parsed = reqwest::Url::parse(url).map_err(|_| "invalid URL".to_owned())?;
        if let Some(host) = parsed.host() {
            let literal = match host {
                url::Host::Ipv4(ip) => Some(std::net::IpAddr::V4(ip)),
                url::Host::Ipv6(ip) => Some(std::net::IpAddr::V6(ip)),
                url::Host::Domain(_) => None,
            };
            if literal.is_some_and(|ip| !self.config.policy.allows(ip)) {
                return Err("the egress policy refuses this address".into());
            }
        }
        let response = self
            .http
            .post(parsed)
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    "timed out".to_owned()
                } else {
                    let mut msg = e.to_string();
                    let mut src = std::error::Error::source(&e);
                    while let Some(s) = src {
                        msg = format!("{msg}: {s}");
                        src = s.source();
                    }
                    msg
                }
            })?;
        let status = response.status().as_u16();
        let retry_after = (status == 429 || status == 503)
            .then(|| response.headers().get("retry-after"))
            .flatten()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let mut headers = String::new();
        for (name, value) in response.headers() {
            let line = format!("{name}: {}\n", value.to_str().unwrap_or("(binary)"));
            if headers.len() + line.len() > EXCERPT_BYTES {
                break;
            }
            headers.push_str(&line);
        }
        // Only the excerpt is kept, so only the excerpt is read; the rest is never received (the
        // connection is dropped), whatever the receiver sends.
        let mut response = response;
        let mut bytes = Vec::with_capacity(EXCERPT_BYTES);
        while bytes.len() < EXCERPT_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = EXCERPT_BYTES - bytes.len();
                    bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
                }
                Ok(None) | Err(_) => break,
            }
        }
        drop(response);
        let excerpt = String::from_utf8_lossy(&bytes).into_owned();
        Ok(Answer {
            status,
            headers,
            excerpt,
            retry_after,
        })
    }
}

/// How long a delivery that could not be prepared waits before any node claims it again.
const PREPARE_RETRY_MS: i64 = 10_000;

/// How much of a receiver's headers and body is kept in the attempt log.
const EXCERPT_BYTES: usize = 2048;

/// A receiver's HTTP answer, as logged.
struct Answer {
    status: u16,
    headers: String,
    excerpt: String,
    retry_after: Option<Duration>,
}
