//! Accounts (teams), their users and memberships.

use common::{
    Db, StoreError,
    clock::Millis,
    db::BeginWrite,
    ids::{AccountId, UserId},
    on_db,
};

#[derive(Clone, Debug)]
pub struct Account {
    pub id: AccountId,
    pub name: String,
    pub tier: String,
    pub created_at: Millis,
}

#[derive(sqlx::FromRow)]
struct AccountRow {
    id: String,
    name: String,
    tier: String,
    created_at: i64,
}

impl From<AccountRow> for Account {
    fn from(r: AccountRow) -> Self {
        Account {
            id: AccountId::from_trusted(r.id),
            name: r.name,
            tier: r.tier,
            created_at: r.created_at,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Membership {
    pub account_id: AccountId,
    pub account_name: String,
    pub role: String,
}

#[derive(sqlx::FromRow)]
struct MembershipRow {
    account_id: String,
    account_name: String,
    role: String,
}

/// An account's editable settings beyond its name.
#[derive(Clone, Debug, Default, sqlx::FromRow)]
pub struct AccountSettings {
    pub slug: Option<String>,
    pub timezone: Option<String>,
    pub region: Option<String>,
    pub avatar_url: Option<String>,
}

#[derive(Clone)]
pub struct AccountStore {
    db: Db,
}

/// A new account with its first user as owner.
pub struct NewAccount<'a> {
    pub name: &'a str,
    pub tier: &'a str,
    pub email: &'a str,
    pub password_hash: Option<&'a str>,
    pub now: Millis,
}

impl AccountStore {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Creates the account, its owner user (verified) and the membership in one transaction.
    /// An email that already has a user is a `Conflict`.
    pub async fn create_with_owner(
        &self,
        new: NewAccount<'_>,
    ) -> Result<(Account, UserId), StoreError> {
        let account_id = AccountId::generate();
        let user_id = UserId::generate();
        on_db!(&self.db, pool => {
            let mut tx = pool.begin_write().await?;
            sqlx::query("INSERT INTO accounts (id, name, tier, created_at) VALUES ($1, $2, $3, $4)")
                .bind(account_id.as_str())
                .bind(new.name)
                .bind(new.tier)
                .bind(new.now)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO users (id, email, name, password_hash, email_verified_at, created_at) \
                 VALUES ($1, $2, '', $3, $4, $4)",
            )
            .bind(user_id.as_str())
            .bind(new.email)
            .bind(new.password_hash)
            .bind(new.now)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO memberships (account_id, user_id, role, created_at) \
                 VALUES ($1, $2, 'owner', $3)",
            )
            .bind(account_id.as_str())
            .bind(user_id.as_str())
            .bind(new.now)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok((
            Account {
                id: account_id,
                name: new.name.to_owned(),
                tier: new.tier.to_owned(),
                created_at: new.now,
            },
            user_id,
        ))
    }

    pub async fn get(&self, id: &AccountId) -> Result<Account, StoreError> {
        let row: AccountRow = self
            .db
            .fetch_one(
                "SELECT id, name, tier, created_at FROM accounts WHERE id = $1",
                &common::args![id.as_str()],
            )
            .await?;
        Ok(row.into())
    }

    /// The oldest account the user with this email belongs to, and the user's id.
    pub async fn find_by_member_email(&self, email: &str) -> Result<(Account, UserId), StoreError> {
        #[derive(sqlx::FromRow)]
        struct Row {
            user_id: String,
            #[sqlx(flatten)]
            account: AccountRow,
        }
        let row: Row = self
            .db
            .fetch_one(
                "SELECT u.id AS user_id, a.id, a.name, a.tier, a.created_at \
                 FROM users u JOIN memberships m ON m.user_id = u.id \
                 JOIN accounts a ON a.id = m.account_id \
                 WHERE u.email = $1 ORDER BY m.created_at, a.id LIMIT 1",
                &common::args![email],
            )
            .await?;
        Ok((row.account.into(), UserId::from_trusted(row.user_id)))
    }

    pub async fn settings(&self, id: &AccountId) -> Result<AccountSettings, StoreError> {
        self.db
            .fetch_one(
                "SELECT slug, timezone, region, avatar_url FROM accounts WHERE id = $1",
                &common::args![id.as_str()],
            )
            .await
    }

    /// Changes the given fields (`None` leaves a field as it is); a taken slug is a `Conflict`.
    pub async fn update_settings(
        &self,
        id: &AccountId,
        name: Option<&str>,
        s: &AccountSettings,
    ) -> Result<(), StoreError> {
        self.db
            .execute(
                "UPDATE accounts SET name = COALESCE($2, name), slug = COALESCE($3, slug), \
                 timezone = COALESCE($4, timezone), region = COALESCE($5, region), \
                 avatar_url = COALESCE($6, avatar_url) WHERE id = $1",
                &common::args![
                    id.as_str(),
                    name,
                    s.slug.as_deref(),
                    s.timezone.as_deref(),
                    s.region.as_deref(),
                    s.avatar_url.as_deref()
                ],
            )
            .await?;
        Ok(())
    }

    pub async fn set_tier(&self, id: &AccountId, tier: &str) -> Result<(), StoreError> {
        let n = self
            .db
            .execute(
                "UPDATE accounts SET tier = $2 WHERE id = $1",
                &common::args![id.as_str(), tier],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    pub async fn count(&self) -> Result<i64, StoreError> {
        let n: i64 = self
            .db
            .scalar("SELECT COUNT(*) FROM accounts", &common::args![])
            .await?;
        Ok(n)
    }

    /// The emails of the account's owners.
    pub async fn owner_emails(&self, account: &AccountId) -> Result<Vec<String>, StoreError> {
        let rows: Vec<String> = self
            .db
            .scalar_all(
                "SELECT u.email FROM memberships m JOIN users u ON u.id = m.user_id \
                 WHERE m.account_id = $1 AND m.role = 'owner' ORDER BY u.email",
                &common::args![account.as_str()],
            )
            .await?;
        Ok(rows)
    }

    /// The accounts a user belongs to, oldest membership first.
    pub async fn memberships(&self, user_id: &UserId) -> Result<Vec<Membership>, StoreError> {
        let rows: Vec<MembershipRow> = self
            .db
            .fetch_all(
                "SELECT m.account_id, a.name AS account_name, m.role \
                 FROM memberships m JOIN accounts a ON a.id = m.account_id \
                 WHERE m.user_id = $1 ORDER BY m.created_at, m.account_id",
                &common::args![user_id.as_str()],
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| Membership {
                account_id: AccountId::from_trusted(r.account_id),
                account_name: r.account_name,
                role: r.role,
            })
            .collect())
    }
}
