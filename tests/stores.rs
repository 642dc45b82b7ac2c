//! Store contract tests, run unchanged against SQLite and PostgreSQL: tenant scoping of keys and
//! sessions (another account's object is not found), and the atomic throttle behind OTP and
//! step-up limits under concurrent takers.

mod support;

use api::{
    apikey::KeyMode,
    identity::IdentityStore,
    permissions::{Scope, Scopes},
    store::{
        accounts::{AccountStore, NewAccount},
        keys::{KeyStore, NewKey},
    },
};
use common::{
    Db, StoreError,
    ids::{AccountId, RunnerId, SessionId},
};
use support::{Backend, PgDatabase, TempDir};

/// A migrated database of `backend`, kept alive by the returned guard.
async fn database(backend: Backend) -> (Db, Box<dyn std::any::Any + Send>) {
    match backend {
        Backend::Sqlite => {
            let dir = TempDir::new("stores");
            let db = Db::connect(&format!(
                "sqlite:{}/db.sqlite?mode=rwc",
                dir.path().display()
            ))
            .await
            .expect("sqlite");
            db.migrate().await.expect("migrate");
            (db, Box::new(dir))
        }
        Backend::Postgres => {
            let pg = PgDatabase::create();
            let db = Db::connect(&pg.url).await.expect("postgres");
            db.migrate().await.expect("migrate");
            (db, Box::new(pg))
        }
    }
}

async fn account(db: &Db, email: &str) -> AccountId {
    let (account, _) = AccountStore::new(db.clone())
        .create_with_owner(NewAccount {
            name: email,
            tier: "self_hosted",
            email,
            password_hash: None,
            now: 1,
        })
        .await
        .expect("account");
    account.id
}

async fn keys_belong_to_their_account(backend: Backend) {
    let (db, _guard) = database(backend).await;
    let (a, b) = (
        account(&db, "a@example.com").await,
        account(&db, "b@example.com").await,
    );
    let keys = KeyStore::new(db.clone());
    let key = keys
        .insert(
            &a,
            NewKey {
                name: "k",
                mode: KeyMode::Test,
                last4: "abcd",
                hash: "digest-1",
                scopes: [Scope::SessionsRead].into_iter().collect::<Scopes>(),
                created_by: None,
                expires_at: None,
                now: 10,
            },
        )
        .await
        .expect("insert");
    assert_eq!(keys.get(&a, &key.id).await.expect("own key").name, "k");
    assert!(matches!(
        keys.get(&b, &key.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        keys.revoke(&b, &key.id, 20).await,
        Err(StoreError::NotFound)
    ));
    let (listed, more) = keys.list(&b, None, 10).await.expect("list");
    assert!(listed.is_empty() && !more);
    let (listed, _) = keys.list(&a, None, 10).await.expect("list");
    assert_eq!(listed.len(), 1);
    // Found by digest only, never by anything a caller chose.
    assert!(keys.find_by_hash("digest-1").await.expect("find").is_some());
    assert!(keys.find_by_hash("digest-2").await.expect("find").is_none());
}

async fn sessions_belong_to_their_account(backend: Backend) {
    let (db, _guard) = database(backend).await;
    let (a, b) = (
        account(&db, "a@example.com").await,
        account(&db, "b@example.com").await,
    );
    let sessions = runner::store::SessionStore::new(db.clone());
    let (id, runner) = (SessionId::generate(), RunnerId::generate());
    let new = runner::store::NewSession {
        id: &id,
        account_id: &a,
        runner_id: &runner,
        options: &serde_json::json!({}),
        now: 1,
        expires_at: 60_001,
        idle_timeout_ms: 60_000,
        created_by: None,
        source: None,
    };
    assert!(
        sessions
            .insert_under_cap(&new, Some(1))
            .await
            .expect("insert")
    );
    // The cap counts live sessions: a second one does not fit.
    let second = SessionId::generate();
    let over = runner::store::NewSession { id: &second, ..new };
    assert!(
        !sessions
            .insert_under_cap(&over, Some(1))
            .await
            .expect("insert")
    );
    assert!(sessions.get(&a, &id).await.is_ok());
    assert!(matches!(
        sessions.get(&b, &id).await,
        Err(StoreError::NotFound)
    ));
    // Only routing, which then checks the account, looks a session up without one.
    assert_eq!(sessions.locate(&id).await.expect("locate").account_id, a);
}

async fn throttle_takes_are_atomic(backend: Backend) {
    let (db, _guard) = database(backend).await;
    let store = IdentityStore::new(db);
    let takers: Vec<_> = (0..12)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.throttle_take("otp:user", 0, 5, 1_000).await })
        })
        .collect();
    let mut granted = 0;
    for taker in takers {
        if taker.await.expect("join").expect("take") {
            granted += 1;
        }
    }
    assert_eq!(
        granted, 5,
        "exactly the limit is granted, whatever the interleaving"
    );
    // Outside the window the bucket has room again.
    assert!(
        store
            .throttle_take("otp:user", 2_000, 5, 3_000)
            .await
            .expect("take")
    );
    // Buckets do not share room.
    assert!(
        store
            .throttle_take("otp:other", 0, 5, 1_000)
            .await
            .expect("take")
    );
}

on_both_backends!(
    keys_belong_to_their_account,
    sessions_belong_to_their_account,
    throttle_takes_are_atomic,
);
