//! The shared application state handed to every handler: configuration, the database, the
//! clock, the tier table and the stores. Cheap to clone (all `Arc`s and pools).

use std::sync::Arc;

use common::{Clock, Db};
use metrics_exporter_prometheus::PrometheusHandle;
use runner::{Runner, store::SessionStore};
use webhooks::{Dispatcher, WebhookStore, crypto::SecretBox};

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
    pub webhooks: WebhookStore,
    /// Seals endpoint secrets at rest.
    pub webhook_secrets: SecretBox,
    /// The webhook dispatcher of this node, once started.
    pub dispatcher: Option<Arc<Dispatcher>>,
    /// The in-process runner (embedded mode); `None` on an API-only node.
    pub runner: Option<Arc<Runner>>,
    /// Signs the tokens in `connect_url`s.
    pub connect_key: Arc<[u8; 32]>,
    pub metrics: Option<PrometheusHandle>,
    /// Base URL for links we hand out (mail, `connect_url`), without a trailing slash.
    pub public_url: Arc<str>,
}

impl AppState {
    pub fn new(
        config: Config,
        db: Db,
        tiers: Tiers,
        master_key: &MasterKey,
        public_url: String,
    ) -> Self {
        let clock = match &config.test_clock_file {
            Some(path) => Clock::with_offset_file(path.clone()),
            None => Clock::system(),
        };
        let keys = KeyStore::new(db.clone());
        Self {
            auth: Arc::new(AuthService::new(keys.clone(), clock.clone())),
            accounts: AccountStore::new(db.clone()),
            idempotency: IdempotencyStore::new(db.clone()),
            keys,
            sessions: SessionStore::new(db.clone()),
            webhooks: WebhookStore::new(db.clone()),
            webhook_secrets: SecretBox::new(&master_key.derive("webhook-endpoint-secrets")),
            dispatcher: None,
            runner: None,
            connect_key: Arc::new(master_key.derive("cdp-connect-token")),
            config: Arc::new(config),
            db,
            clock,
            tiers: Arc::new(tiers),
            metrics: None,
            public_url: public_url.into(),
        }
    }
}

impl AppState {
    /// Tells this node's dispatcher that new deliveries may be due.
    pub fn dispatcher_wake(&self) {
        if let Some(d) = &self.dispatcher {
            d.wake();
        }
    }
}
