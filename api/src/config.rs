//! Configuration: one typed struct read from `DRIFTSTACK_*` (and a few standard) environment
//! variables, validated at start. A bad value is reported as one line naming the variable.
//! Secrets are wrapped in [`Secret`] so `Debug` never prints them.

use std::{fmt, net::SocketAddr, path::PathBuf, time::Duration};

use base64::Engine;
use common::egress::Network;

/// A value that must never appear in logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: Secret<String>,
    /// Base for links in mail and `connect_url`; derived from the bound address when unset.
    pub public_url: Option<String>,
    pub chromium: Option<PathBuf>,
    pub pool_size: usize,
    pub max_sessions: usize,
    pub egress_allow: Vec<Network>,
    pub master_key: Option<Secret<[u8; 32]>>,
    /// Earlier master keys (`DRIFTSTACK_MASTER_KEY_PREVIOUS`, comma-separated base64): profile
    /// state written under them stays readable after a key rotation.
    pub previous_master_keys: Vec<[u8; 32]>,
    pub smtp_url: Option<Secret<String>>,
    /// The `From` of outgoing mail.
    pub mail_from: String,
    pub webhook_retry_schedule: Vec<Duration>,
    /// A webhook receiver must answer within this.
    pub webhook_timeout: Duration,
    /// Webhook deliveries in flight at once on this node, over all endpoints.
    pub webhook_concurrency: usize,
    /// Webhook deliveries in flight at once to one endpoint.
    pub webhook_per_endpoint: usize,
    /// An endpoint failing without a break for this long is disabled.
    pub webhook_disable_after: Duration,
    pub stripe_secret_key: Option<Secret<String>>,
    pub stripe_webhook_secret: Option<Secret<String>>,
    pub stripe_api_base: Option<String>,
    pub metrics_token: Option<Secret<String>>,
    pub cluster_token: Option<Secret<String>>,
    pub embedded_runner: bool,
    /// Browsers run in the sandbox (`DRIFTSTACK_BROWSER_SANDBOX`, default `on`; `off` is the
    /// operator's explicit opt-out for single-tenant development).
    pub browser_sandbox: bool,
    pub runner_heartbeat_timeout: Duration,
    /// How often runners heartbeat (`DRIFTSTACK_RUNNER_HEARTBEAT_SECONDS`, default 5; less than
    /// the timeout).
    pub runner_heartbeat: Duration,
    /// How other nodes reach this one (`DRIFTSTACK_NODE_URL`, default `http://` + the listen
    /// address); registered with the node's runner for forwarding.
    pub node_url: Option<String>,
    /// Where profile blobs live (`DRIFTSTACK_BLOB_STORE`): `s3://bucket[/prefix]`, or unset for
    /// `$DRIFTSTACK_DATA_DIR/profiles`.
    pub blob_store: Option<String>,
    /// Set by `driftstack runner`: the node runs browsers for the cluster's API nodes only.
    pub runner_only: bool,
    pub step_up: Duration,
    /// Requests per minute one IP may make to the unauthenticated auth routes
    /// (`DRIFTSTACK_AUTH_IP_PER_MINUTE`, default 60).
    pub auth_ip_per_minute: u32,
    /// How often API-call counts are written (`DRIFTSTACK_USAGE_FLUSH_SECONDS`, default 10).
    pub usage_flush: Duration,
    /// How often downloads past their plan's retention are deleted
    /// (`DRIFTSTACK_FILE_SWEEP_SECONDS`, default 600).
    pub file_sweep: Duration,
    /// Per-credential rate limits (`DRIFTSTACK_RATE_LIMITS`, default `on`).
    pub rate_limits: bool,
    /// API-call metering (`DRIFTSTACK_METERING`, default `on`; off only for measuring its cost).
    pub metering: bool,
    pub request_timeout: Duration,
    pub max_body_bytes: usize,
    /// How long a session create waits for a free browser slot on this node.
    pub queue_timeout: Duration,
    /// How many sessions one browser process may host one after another (REST-only use).
    pub max_browser_reuses: u32,
    pub tiers_file: Option<PathBuf>,
    pub owner_email: String,
    pub test_clock_file: Option<PathBuf>,
}

/// A configuration value that cannot be used, named by its variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var}: {message}")]
pub struct ConfigError {
    pub var: &'static str,
    pub message: String,
}

fn err(var: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        var,
        message: message.into(),
    }
}

/// Parses a duration like `500ms`, `5s`, `5m`, `2h` or `1d`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let secs = match unit {
        "ms" => return Some(Duration::from_millis(n)),
        "s" => n,
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        "d" => n.checked_mul(86_400)?,
        _ => return None,
    };
    Some(Duration::from_secs(secs))
}

/// The default webhook retry schedule: immediately, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
pub const DEFAULT_RETRY_SCHEDULE: &str = "0s,5s,5m,30m,2h,5h,10h,10h";

impl Config {
    /// The webhook dispatcher's settings.
    pub fn dispatcher(&self) -> webhooks::DispatcherConfig {
        webhooks::DispatcherConfig {
            schedule: webhooks::schedule::Schedule::new(self.webhook_retry_schedule.clone()),
            timeout: self.webhook_timeout,
            concurrency: self.webhook_concurrency,
            per_endpoint: self.webhook_per_endpoint,
            disable_after: self.webhook_disable_after,
            policy: common::egress::EgressPolicy::new(self.egress_allow.clone()),
        }
    }

    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads configuration through `get`, so tests can supply variables without touching the
    /// process environment. Empty values count as unset.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let var = |name: &str| get(name).filter(|v| !v.trim().is_empty());

        let listen = match var("DRIFTSTACK_LISTEN") {
            Some(v) => v.trim().parse().map_err(|_| {
                err(
                    "DRIFTSTACK_LISTEN",
                    format!("`{v}` is not an address like 127.0.0.1:8080"),
                )
            })?,
            None => SocketAddr::from(([127, 0, 0, 1], 8080)),
        };
        let data_dir = PathBuf::from(var("DRIFTSTACK_DATA_DIR").unwrap_or_else(|| "./data".into()));
        let database_url = match var("DATABASE_URL") {
            Some(v)
                if v.starts_with("postgres://")
                    || v.starts_with("postgresql://")
                    || v.starts_with("sqlite:") =>
            {
                v
            }
            Some(_) => {
                return Err(err(
                    "DATABASE_URL",
                    "must start with postgres:// or sqlite://",
                ));
            }
            None => format!("sqlite://{}", data_dir.join("driftstack.db").display()),
        };
        let public_url = match var("DRIFTSTACK_PUBLIC_URL") {
            Some(v) if v.starts_with("http://") || v.starts_with("https://") => {
                Some(v.trim_end_matches('/').to_owned())
            }
            Some(v) => {
                return Err(err(
                    "DRIFTSTACK_PUBLIC_URL",
                    format!("`{v}` is not an http(s) URL"),
                ));
            }
            None => None,
        };
        let pool_size = parse_number(&var, "DRIFTSTACK_POOL_SIZE", 2, 0, 256)?;
        let max_sessions = parse_number(&var, "DRIFTSTACK_MAX_SESSIONS", 16, 1, 10_000)?;
        let egress_allow = match var("DRIFTSTACK_EGRESS_ALLOW") {
            Some(v) => v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    Network::parse(s).ok_or_else(|| {
                        err(
                            "DRIFTSTACK_EGRESS_ALLOW",
                            format!("`{s}` is not a CIDR like 127.0.0.0/8"),
                        )
                    })
                })
                .collect::<Result<_, _>>()?,
            None => Vec::new(),
        };
        let parse_key = |name: &'static str, v: &str| -> Result<[u8; 32], ConfigError> {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(v.trim())
                .map_err(|_| err(name, "is not valid base64"))?;
            bytes
                .try_into()
                .map_err(|_| err(name, "must decode to exactly 32 bytes"))
        };
        let master_key = match var("DRIFTSTACK_MASTER_KEY") {
            Some(v) => Some(Secret::new(parse_key("DRIFTSTACK_MASTER_KEY", &v)?)),
            None => None,
        };
        let previous_master_keys = match var("DRIFTSTACK_MASTER_KEY_PREVIOUS") {
            Some(v) => v
                .split(',')
                .filter(|s| !s.trim().is_empty())
                .map(|s| parse_key("DRIFTSTACK_MASTER_KEY_PREVIOUS", s))
                .collect::<Result<_, _>>()?,
            None => Vec::new(),
        };
        let webhook_retry_schedule = {
            let raw = var("DRIFTSTACK_WEBHOOK_RETRY_SCHEDULE")
                .unwrap_or_else(|| DEFAULT_RETRY_SCHEDULE.into());
            let schedule: Vec<Duration> = raw
                .split(',')
                .map(|s| {
                    parse_duration(s).ok_or_else(|| {
                        err(
                            "DRIFTSTACK_WEBHOOK_RETRY_SCHEDULE",
                            format!("`{}` is not a duration like 5s, 5m or 2h", s.trim()),
                        )
                    })
                })
                .collect::<Result<_, _>>()?;
            if schedule.len() > 20 {
                return Err(err(
                    "DRIFTSTACK_WEBHOOK_RETRY_SCHEDULE",
                    "at most 20 attempts",
                ));
            }
            schedule
        };
        let webhook_timeout = parse_number(&var, "DRIFTSTACK_WEBHOOK_TIMEOUT_SECONDS", 15, 1, 60)?;
        let webhook_concurrency =
            parse_number(&var, "DRIFTSTACK_WEBHOOK_CONCURRENCY", 64, 1, 4096)?;
        let webhook_per_endpoint =
            parse_number(&var, "DRIFTSTACK_WEBHOOK_PER_ENDPOINT", 16, 1, 1024)?;
        let webhook_disable_after_hours = parse_number(
            &var,
            "DRIFTSTACK_WEBHOOK_DISABLE_AFTER_HOURS",
            120,
            1,
            24 * 90,
        )?;
        let embedded_runner = match var("DRIFTSTACK_EMBEDDED_RUNNER").as_deref().map(str::trim) {
            None | Some("true") | Some("1") => true,
            Some("false") | Some("0") => false,
            Some(v) => {
                return Err(err(
                    "DRIFTSTACK_EMBEDDED_RUNNER",
                    format!("`{v}` is not true or false"),
                ));
            }
        };
        let browser_sandbox = match var("DRIFTSTACK_BROWSER_SANDBOX").as_deref().map(str::trim) {
            None | Some("on") => true,
            Some("off") => false,
            Some(v) => {
                return Err(err(
                    "DRIFTSTACK_BROWSER_SANDBOX",
                    format!("`{v}` is not on or off"),
                ));
            }
        };
        let heartbeat = parse_number(
            &var,
            "DRIFTSTACK_RUNNER_HEARTBEAT_TIMEOUT_SECONDS",
            15,
            1,
            3600,
        )?;
        let beat = parse_number(
            &var,
            "DRIFTSTACK_RUNNER_HEARTBEAT_SECONDS",
            5.min(heartbeat.max(2) - 1),
            1,
            3600,
        )?;
        if beat >= heartbeat {
            return Err(err(
                "DRIFTSTACK_RUNNER_HEARTBEAT_SECONDS",
                "must be less than DRIFTSTACK_RUNNER_HEARTBEAT_TIMEOUT_SECONDS",
            ));
        }
        let blob_store = match var("DRIFTSTACK_BLOB_STORE") {
            Some(u) if u.starts_with("s3://") && u.len() > 5 => Some(u),
            Some(_) => {
                return Err(err(
                    "DRIFTSTACK_BLOB_STORE",
                    "must be s3://bucket[/prefix] (unset: a directory in the data dir)",
                ));
            }
            None => None,
        };
        let node_url = match var("DRIFTSTACK_NODE_URL") {
            Some(u) => {
                let ok = url::Url::parse(&u).is_ok_and(|p| {
                    matches!(p.scheme(), "http" | "https") && p.host_str().is_some()
                });
                if !ok {
                    return Err(err("DRIFTSTACK_NODE_URL", "must be an http(s) URL"));
                }
                Some(u.trim_end_matches('/').to_owned())
            }
            None => None,
        };
        let step_up = parse_number(&var, "DRIFTSTACK_STEP_UP_SECONDS", 600, 1, 86_400)?;
        let auth_ip_per_minute =
            parse_number(&var, "DRIFTSTACK_AUTH_IP_PER_MINUTE", 60, 1, 1_000_000)?;
        let usage_flush = parse_number(&var, "DRIFTSTACK_USAGE_FLUSH_SECONDS", 10, 1, 3600)?;
        let file_sweep = parse_number(&var, "DRIFTSTACK_FILE_SWEEP_SECONDS", 600, 1, 86_400)?;
        let switch = |name: &'static str| match var(name).as_deref() {
            None | Some("on") | Some("true") => Ok(true),
            Some("off") | Some("false") => Ok(false),
            Some(_) => Err(err(name, "must be on or off")),
        };
        let rate_limits = switch("DRIFTSTACK_RATE_LIMITS")?;
        let metering = switch("DRIFTSTACK_METERING")?;
        let request_timeout =
            parse_number(&var, "DRIFTSTACK_REQUEST_TIMEOUT_SECONDS", 120, 1, 3600)?;
        let max_body_bytes = parse_number(
            &var,
            "DRIFTSTACK_MAX_BODY_BYTES",
            2 * 1024 * 1024,
            1024,
            1 << 30,
        )?;
        let queue_timeout = parse_number(&var, "DRIFTSTACK_QUEUE_TIMEOUT_SECONDS", 10, 0, 600)?;
        let max_browser_reuses =
            parse_number(&var, "DRIFTSTACK_MAX_BROWSER_REUSES", 20, 1, 10_000)?;
        let secret = |name: &str| var(name).map(Secret::new);
        let smtp_url = secret("DRIFTSTACK_SMTP_URL");
        if let Some(url) = &smtp_url
            && let Err(e) = crate::mail::smtp_relay(url.expose())
        {
            return Err(err("DRIFTSTACK_SMTP_URL", e.to_string()));
        }
        let stripe_api_base = match var("STRIPE_API_BASE") {
            Some(v) if v.starts_with("http://") || v.starts_with("https://") => Some(v),
            Some(v) => {
                return Err(err(
                    "STRIPE_API_BASE",
                    format!("`{v}` is not an http(s) URL"),
                ));
            }
            None => None,
        };

        Ok(Config {
            listen,
            data_dir,
            database_url: Secret::new(database_url),
            public_url,
            chromium: var("DRIFTSTACK_CHROMIUM").map(PathBuf::from),
            pool_size,
            max_sessions,
            egress_allow,
            master_key,
            previous_master_keys,
            smtp_url,
            mail_from: var("DRIFTSTACK_MAIL_FROM")
                .unwrap_or_else(|| "Driftstack <driftstack@localhost>".into()),
            webhook_retry_schedule,
            webhook_timeout: Duration::from_secs(webhook_timeout),
            webhook_concurrency,
            webhook_per_endpoint,
            webhook_disable_after: Duration::from_secs(webhook_disable_after_hours * 3600),
            stripe_secret_key: secret("STRIPE_SECRET_KEY"),
            stripe_webhook_secret: secret("STRIPE_WEBHOOK_SECRET"),
            stripe_api_base,
            metrics_token: secret("METRICS_TOKEN"),
            cluster_token: secret("DRIFTSTACK_CLUSTER_TOKEN"),
            embedded_runner,
            browser_sandbox,
            runner_heartbeat_timeout: Duration::from_secs(heartbeat),
            runner_heartbeat: Duration::from_secs(beat),
            node_url,
            runner_only: false,
            blob_store,
            step_up: Duration::from_secs(step_up),
            auth_ip_per_minute,
            usage_flush: Duration::from_secs(usage_flush),
            file_sweep: Duration::from_secs(file_sweep),
            rate_limits,
            metering,
            request_timeout: Duration::from_secs(request_timeout),
            max_body_bytes,
            queue_timeout: Duration::from_secs(queue_timeout),
            max_browser_reuses,
            tiers_file: var("DRIFTSTACK_TIERS_FILE").map(PathBuf::from),
            owner_email: var("DRIFTSTACK_OWNER_EMAIL").unwrap_or_else(|| "owner@localhost".into()),
            test_clock_file: var("DRIFTSTACK_TEST_CLOCK_FILE").map(PathBuf::from),
        })
    }

    /// Billing is on only when a Stripe key is configured.
    pub fn billing_enabled(&self) -> bool {
        self.stripe_secret_key.is_some()
    }
}

fn parse_number<T>(
    var: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: T,
    min: T,
    max: T,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + fmt::Display + Copy,
{
    let Some(raw) = var(name) else {
        return Ok(default);
    };
    let value: T = raw
        .trim()
        .parse()
        .map_err(|_| err(name, format!("`{raw}` is not a whole number")))?;
    if value < min || value > max {
        return Err(err(name, format!("{value} is out of range {min}..={max}")));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_are_embedded_sqlite_on_loopback() {
        let c = config(&[]).expect("defaults");
        assert_eq!(c.listen, SocketAddr::from(([127, 0, 0, 1], 8080)));
        assert!(c.database_url.expose().starts_with("sqlite://"));
        assert!(c.embedded_runner);
        assert_eq!(c.webhook_retry_schedule.len(), 8);
        assert_eq!(c.step_up, Duration::from_secs(600));
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (var, value) in [
            ("DRIFTSTACK_LISTEN", "nowhere"),
            ("DRIFTSTACK_POOL_SIZE", "-1"),
            ("DRIFTSTACK_MAX_SESSIONS", "0"),
            ("DRIFTSTACK_EGRESS_ALLOW", "10.0.0.0/33"),
            ("DRIFTSTACK_MASTER_KEY", "c2hvcnQ="),
            ("DRIFTSTACK_WEBHOOK_RETRY_SCHEDULE", "5s,soon"),
            ("DRIFTSTACK_EMBEDDED_RUNNER", "maybe"),
            ("DATABASE_URL", "mysql://x"),
            ("DRIFTSTACK_SMTP_URL", "smtps://mail.example.com"),
        ] {
            let e = config(&[(var, value)]).expect_err(var);
            assert_eq!(e.var, var);
        }
    }

    #[test]
    fn secrets_do_not_print() {
        let c = config(&[("METRICS_TOKEN", "hunter2hunter2")]).expect("config");
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s"), Some(Duration::from_secs(5)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("s"), None);
    }
}
