//! The shared application state handed to every handler: configuration, the database, the
//! clock, the tier table, the stores, and what this node runs (its runner and webhook
//! dispatcher). Built in one step by [`AppState::new`] — the composition root — and never changed
//! after; cheap to clone (all `Arc`s and pools).

use std::sync::Arc;

use common::{Clock, Db};
use common::{crypto::SecretBox, egress::EgressPolicy};
use metrics_exporter_prometheus::PrometheusHandle;
use profiles::Profiles;
use runner::registry::RunnerRegistry;
use runner::{Runner, store::SessionStore};
use webhooks::{Dispatcher, WebhookStore};

use crate::{
    auth::AuthService,
    config::Config,
    secrets::MasterKey,
    store::{accounts::AccountStore, idempotency::IdempotencyStore, keys::KeyStore},
    tiers::Tiers,
};

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: Db,
    pub clock: Clock,
    pub tiers: Arc<Tiers>,
    pub auth: Arc<AuthService>,
    pub accounts: AccountStore,
    pub keys: KeyStore,
    pub idempotency: IdempotencyStore,
    pub sessions: SessionStore,
    /// Profiles, snapshots and their encrypted state blobs.
    pub profiles: Profiles,
    /// Sessions' downloads (sealed in the blob store) and uploads.
    pub files: runner::files::Files,
    /// Session logs (console, page, network, CDP).
    pub logs: runner::logs::LogStore,
    /// Session recordings (rrweb), sealed in the blob store.
    pub recordings: runner::recording::Recordings,
    /// Dashboard sign-in: sessions, tokens, MFA, one-time links, throttles.
    pub identity: crate::identity::Identity,
    pub audit: crate::audit::Audit,
    pub team: crate::store::team::TeamStore,
    pub live_links: crate::store::live_links::LiveLinkStore,
    pub deprecated_calls: crate::store::deprecated_calls::DeprecatedCallStore,
    /// The deprecated routes (`deprecation::DEPRECATED`; a test may put others here).
    pub deprecated: &'static [crate::deprecation::Deprecated],
    pub usage: Arc<crate::usage::Usage>,
    pub billing: crate::store::billing::BillingStore,
    /// The Stripe client, when billing is enabled (`STRIPE_SECRET_KEY`).
    pub stripe: Option<billing::Stripe>,
    pub limiter: Arc<crate::ratelimit::Limiter>,
    pub mailer: crate::mail::Mailer,
    pub webhooks: WebhookStore,
    /// Seals endpoint secrets at rest.
    pub webhook_secrets: SecretBox,
    /// Seals stored idempotent answers (they can hold a new API key or signing secret).
    pub idempotent_answers: SecretBox,
    /// Forwards session commands to the node that runs the session.
    pub http: reqwest::Client,
    /// Where the cluster's runners are, and how loaded.
    pub registry: RunnerRegistry,
    /// The egress rules, for checks outside the browsers (webhook URLs).
    pub egress: EgressPolicy,
    /// The webhook dispatcher of this node (`None` for admin commands).
    pub dispatcher: Option<Arc<Dispatcher>>,
    /// The in-process runner (embedded mode); `None` on an API-only node.
    pub runner: Option<Arc<Runner>>,
    /// Signs the tokens in `connect_url`s.
    pub connect_key: Arc<[u8; 32]>,
    /// Connect-token keys of the other configured master keys (tokens other nodes signed
    /// during a key rotation still verify).
    pub connect_keys_previous: Arc<Vec<[u8; 32]>>,
    /// This node's master keys, as checked against the database at start.
    pub master_keys: crate::cluster_keys::Keyring,
    pub metrics: Option<PrometheusHandle>,
    /// Base URL for links we hand out (mail, `connect_url`), without a trailing slash.
    pub public_url: Arc<str>,
}

/// What a node starts besides answering requests. Admin commands start nothing.
#[derive(Default)]
pub struct Start {
    /// Run browsers here, reachable by the other nodes at this URL.
    pub embedded_runner_at: Option<String>,
    /// Deliver webhooks from this node.
    pub dispatcher: bool,
    pub metrics: Option<PrometheusHandle>,
}

impl AppState {
    pub async fn new(
        config: Config,
        db: Db,
        tiers: Tiers,
        keyring: crate::cluster_keys::Keyring,
        public_url: String,
        start: Start,
    ) -> anyhow::Result<Self> {
        // Seal and sign with the key the database records; open with every configured key.
        let master_key = &keyring.active;
        let previous = &keyring.others;
        let clock = match &config.test_clock_file {
            Some(path) => Clock::with_offset_file(path.clone()),
            None => Clock::system(),
        };
        let keys = KeyStore::new(db.clone());
        let blobs = match &config.blob_store {
            Some(url) => profiles::BlobStore::s3(url),
            None => profiles::BlobStore::local(&config.data_dir.join("profiles")),
        }
        .map_err(|e| anyhow::anyhow!("profile storage: {e}"))?;
        let files = runner::files::Files::new(
            runner::files::FileStore::new(db.clone()),
            blobs.clone(),
            SecretBox::new(&master_key.derive("session-files"))
                .with_previous(&MasterKey::derive_all(previous, "session-files")),
        );
        let recordings = runner::recording::Recordings::new(
            runner::recording::RecordingStore::new(db.clone()),
            blobs.clone(),
            SecretBox::new(&master_key.derive("session-recordings"))
                .with_previous(&MasterKey::derive_all(previous, "session-recordings")),
        );
        let profiles = Profiles::new(
            profiles::ProfileStore::new(db.clone()),
            master_key.profile_codec(previous),
            blobs,
            clock.clone(),
        );
        let identity = crate::identity::Identity::new(
            crate::identity::IdentityStore::new(db.clone()),
            SecretBox::new(&master_key.derive("totp-secrets"))
                .with_previous(&MasterKey::derive_all(previous, "totp-secrets")),
            clock.clone(),
            config.auth_ip_per_minute,
        );
        let sessions = SessionStore::new(db.clone());
        let logs = runner::logs::LogStore::new(
            db.clone(),
            SecretBox::new(&master_key.derive("session-logs"))
                .with_previous(&MasterKey::derive_all(previous, "session-logs")),
        );
        let registry = RunnerRegistry::new(db.clone());
        let webhooks = WebhookStore::new(db.clone());
        let webhook_secrets = SecretBox::new(&master_key.derive("webhook-endpoint-secrets"))
            .with_previous(&MasterKey::derive_all(previous, "webhook-endpoint-secrets"));
        let runner = match start.embedded_runner_at {
            Some(node_url) => Some(
                crate::node::start_embedded_runner(
                    &config,
                    node_url,
                    crate::node::Parts {
                        sessions: &sessions,
                        profiles: &profiles,
                        registry: &registry,
                        files: &files,
                        logs: &logs,
                        recordings: &recordings,
                        clock: &clock,
                    },
                )
                .await?,
            ),
            None => None,
        };
        let dispatcher = match start.dispatcher {
            true => Some(Dispatcher::new(
                webhooks.clone(),
                webhook_secrets.clone(),
                config.dispatcher(),
                clock.clone(),
            )?),
            false => None,
        };
        let accounts = AccountStore::new(db.clone());
        let mailer = crate::mail::Mailer::from_config(
            config.smtp_url.as_ref().map(|s| s.expose().as_str()),
            config.data_dir.join("outbox"),
            config.mail_from.clone(),
        )?;
        Ok(Self {
            identity: identity.clone(),
            profiles,
            files,
            logs,
            recordings,
            audit: crate::audit::Audit::new(db.clone()),
            team: crate::store::team::TeamStore::new(db.clone()),
            live_links: crate::store::live_links::LiveLinkStore::new(db.clone()),
            deprecated_calls: crate::store::deprecated_calls::DeprecatedCallStore::new(db.clone()),
            deprecated: crate::deprecation::DEPRECATED,
            usage: Arc::new(crate::usage::Usage::new(db.clone(), clock.clone())),
            billing: crate::store::billing::BillingStore::new(db.clone()),
            stripe: match &config.stripe_secret_key {
                Some(key) => Some(
                    billing::Stripe::new(key.expose(), config.stripe_api_base.as_deref())
                        .map_err(|e| anyhow::anyhow!("STRIPE_SECRET_KEY: {e}"))?,
                ),
                None => None,
            },
            limiter: Arc::default(),
            mailer,
            auth: Arc::new(AuthService::new(
                keys.clone(),
                identity.clone(),
                accounts.clone(),
                clock.clone(),
                config.step_up,
            )),
            accounts,
            idempotency: IdempotencyStore::new(db.clone()),
            keys,
            sessions,
            webhooks,
            webhook_secrets,
            idempotent_answers: SecretBox::new(&master_key.derive("idempotent-answers"))
                .with_previous(&MasterKey::derive_all(previous, "idempotent-answers")),
            http: reqwest::Client::builder()
                .timeout(config.request_timeout)
                .build()
                .map_err(|e| anyhow::anyhow!("HTTP client: {e}"))?,
            registry,
            egress: EgressPolicy::new(config.egress_allow.clone()),
            dispatcher,
            runner,
            connect_key: Arc::new(master_key.derive("cdp-connect-token")),
            connect_keys_previous: Arc::new(MasterKey::derive_all(previous, "cdp-connect-token")),
            master_keys: keyring.clone(),
            config: Arc::new(config),
            db,
            clock,
            tiers: Arc::new(tiers),
            metrics: start.metrics,
            public_url: public_url.into(),
        })
    }
}

impl AppState {
    /// Appends an entry to the audit log (failures are logged, never returned).
    pub async fn record(&self, entry: crate::audit::Entry) {
        self.audit.record(entry, self.clock.now_ms()).await;
    }

    /// Tells this node's dispatcher that new deliveries may be due.
    pub fn dispatcher_wake(&self) {
        if let Some(d) = &self.dispatcher {
            d.wake();
        }
    }
}
