//! The guards on proving who you are: the per-account delay after failed passwords (a slowdown,
//! never a lock), the throttle on step-up by password, and the removal of a password that was
//! set before its address was proven. Callers decide what to audit and how to answer.

use std::time::Duration;

use common::{StoreError, clock::Millis, ids::UserId};

use super::{Identity, MINUTE, UserAuth, verify_password};

/// Failed password checks (sign-in or step-up) within [`FAILURE_WINDOW`] after which a step-up
/// by password is refused until the window passes.
pub const STEP_UP_FAILURES: i64 = 5;

/// How long failed password checks are remembered.
pub const FAILURE_WINDOW: Millis = 15 * MINUTE;

/// The per-account delay before checking a password after repeated failures (never a lock).
pub fn failure_delay(u: &UserAuth, now: Millis) -> Option<Duration> {
    let recent = u
        .last_failed_login_at
        .is_some_and(|at| now - at < FAILURE_WINDOW);
    (recent && u.failed_logins >= 3).then(|| {
        let exponent = u32::try_from((u.failed_logins - 3).min(5)).unwrap_or(5);
        Duration::from_millis(250 * 2u64.pow(exponent))
    })
}

/// Why a step-up by password was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum StepUpRefusal {
    /// Too many recent wrong passwords on this account: wait this many seconds.
    TooManyFailures { wait_seconds: u64 },
    /// Too many attempts in the window, right or wrong (concurrent guesses included).
    TooManyAttempts { wait_seconds: u64 },
    /// The password is wrong (counted as a failed sign-in).
    WrongPassword,
}

impl Identity {
    /// A step-up by password counts as a sign-in attempt: the same per-account failure count
    /// and delay, and after [`STEP_UP_FAILURES`] recent failures a refusal with a wait.
    /// Attempts are taken one atomic step at a time, so concurrent guesses cannot all see room.
    pub async fn step_up_by_password(
        &self,
        user: &UserAuth,
        password: &str,
    ) -> Result<Result<(), StepUpRefusal>, StoreError> {
        let now = self.now();
        if user.failed_logins >= STEP_UP_FAILURES
            && let Some(at) = user.last_failed_login_at
            && now - at < FAILURE_WINDOW
        {
            let wait_seconds = u64::try_from((at + FAILURE_WINDOW - now) / 1000 + 1).unwrap_or(1);
            return Ok(Err(StepUpRefusal::TooManyFailures { wait_seconds }));
        }
        let bucket = format!("stepup:{}", user.user_id());
        if !self
            .store
            .throttle_take(&bucket, now - FAILURE_WINDOW, STEP_UP_FAILURES, now)
            .await?
        {
            let wait_seconds = u64::try_from(FAILURE_WINDOW / 1000).unwrap_or(900);
            return Ok(Err(StepUpRefusal::TooManyAttempts { wait_seconds }));
        }
        if let Some(delay) = failure_delay(user, now) {
            tokio::time::sleep(delay).await;
        }
        if verify_password(Some(user), password) {
            if user.failed_logins > 0 {
                self.store.login_failed(&user.user_id(), None).await?;
            }
            return Ok(Ok(()));
        }
        self.store.login_failed(&user.user_id(), Some(now)).await?;
        Ok(Err(StepUpRefusal::WrongPassword))
    }

    /// Removes a password that was set before the address was proven, and signs out every
    /// sign-in made with it (the address has just been proven by someone who did not show that
    /// password). `Some(sessions revoked)` when there was one.
    pub async fn drop_unproven_password(&self, user: &UserAuth) -> Result<Option<u64>, StoreError> {
        if user.password_hash.is_none() {
            return Ok(None);
        }
        let id = user.user_id();
        self.store.clear_password(&id).await?;
        let revoked = self
            .store
            .revoke_user_sessions(&id, "unproven_password", self.now())
            .await?;
        Ok(Some(revoked))
    }

    /// A user by id.
    pub async fn user(&self, id: &UserId) -> Result<UserAuth, StoreError> {
        self.store.user(id).await
    }

    /// A user by (normalised) email, if there is one.
    pub async fn user_by_email(&self, email: &str) -> Result<Option<UserAuth>, StoreError> {
        self.store.user_by_email(email).await
    }
}
