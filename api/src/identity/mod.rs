//! Dashboard identity: who a person is and how they prove it. This module owns sign-in sessions
//! (opaque access tokens, rotating refresh tokens with reuse detection), one-time links (email
//! verification, magic link, password reset, the MFA challenge), TOTP with replay protection and
//! recovery codes, step-up freshness, and the throttles that keep the unauthenticated routes from
//! being abused or used to find out who has an account. The HTTP surface is `routes::auth` and
//! the 2FA part of `routes::account`; API keys are resolved elsewhere (`auth`) but dashboard
//! tokens reach the same [`crate::auth::Principal`].

pub mod guards;
pub mod store;

use std::{
    collections::HashSet,
    net::IpAddr,
    num::NonZeroU32,
    sync::{Arc, LazyLock},
};

use base64::Engine;
use common::crypto::SecretBox;
use common::{Clock, StoreError, clock::Millis, ids::UserId};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use rand::{TryRngCore, rngs::OsRng};

use crate::apikey;
pub use store::{IdentityStore, TokenSession, UserAuth};

pub const MINUTE: Millis = 60_000;
/// An access token lives this long; the client refreshes it.
pub const ACCESS_TTL: Millis = 15 * MINUTE;
/// A sign-in session ends after this long without activity…
pub const SESSION_IDLE: Millis = 30 * MINUTE;
/// …and this long after sign-in in any case (the refresh family's absolute lifetime).
pub const SESSION_ABSOLUTE: Millis = 12 * 60 * MINUTE;
pub const VERIFY_TTL: Millis = 24 * 60 * MINUTE;
pub const MAGIC_TTL: Millis = 10 * MINUTE;
pub const RESET_TTL: Millis = 30 * MINUTE;
pub const MFA_TOKEN_TTL: Millis = 5 * MINUTE;
/// Magic-link and reset limits: per email and per IP within the window, and the resend cooldown.
pub const LINK_WINDOW: Millis = 15 * MINUTE;
pub const LINKS_PER_EMAIL: i64 = 3;
pub const LINKS_PER_IP: i64 = 10;
pub const LINK_COOLDOWN: Millis = MINUTE;
/// One-time-password attempts per user per minute.
pub const OTP_PER_MINUTE: i64 = 5;
pub const RECOVERY_CODES: usize = 10;

pub const ACCESS_PREFIX: &str = "dsat_";
pub const REFRESH_PREFIX: &str = "dsrt_";

static COMMON_PASSWORDS: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| include_str!("common-passwords.txt").lines().collect());

static TIMEZONES: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| include_str!("timezones.txt").lines().collect());

/// The schema of an IANA time zone name: an enum of every name the server accepts.
pub struct TimeZoneName;

impl utoipa::PartialSchema for TimeZoneName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        let mut names: Vec<&str> = TIMEZONES.iter().copied().collect();
        names.sort_unstable();
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some("An IANA time zone name such as `Europe/Berlin`."))
            .enum_values(Some(names))
            .into()
    }
}

impl utoipa::ToSchema for TimeZoneName {}

/// Whether `tz` is an IANA time zone name.
pub fn is_timezone(tz: &str) -> bool {
    TIMEZONES.contains(tz)
}

/// Why a new password is refused: the length rules, then the list of common passwords (the
/// 10,000 most common of at least 8 characters, from zxcvbn's frequency lists, MIT licence).
pub fn check_new_password(password: &str) -> Result<(), &'static str> {
    crate::password::check_rules(password)?;
    if COMMON_PASSWORDS.contains(password.to_lowercase().as_str()) {
        return Err("is one of the most common passwords; choose another");
    }
    Ok(())
}

/// A hash to verify against when the email is unknown, so both cases take the same time.
static DUMMY_HASH: LazyLock<Option<String>> =
    LazyLock::new(|| crate::password::hash("driftstack-dummy-password-for-timing").ok());

pub fn verify_password(user: Option<&UserAuth>, password: &str) -> bool {
    match user.and_then(|u| u.password_hash.as_deref()) {
        Some(phc) => crate::password::verify(password, phc),
        None => {
            if let Some(dummy) = DUMMY_HASH.as_deref() {
                let _ = crate::password::verify(password, dummy);
            }
            false
        }
    }
}

/// A new random token (`prefix` + 256 bits, base64url) and its stored digest.
pub fn new_token(prefix: &str) -> anyhow::Result<(String, String)> {
    let mut bytes = [0u8; 32];
    OsRng.try_fill_bytes(&mut bytes)?;
    let token = format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let hash = apikey::hash(&token);
    Ok((token, hash))
}

/// The one-time links (and the MFA challenge token) a user can be sent.
#[derive(Clone, Copy, Debug)]
pub enum LinkKind {
    Verify,
    Magic,
    Reset,
    Mfa,
}

impl LinkKind {
    fn parts(self) -> (&'static str, &'static str) {
        match self {
            LinkKind::Verify => ("verify", "dsv_"),
            LinkKind::Magic => ("magic", "dsml_"),
            LinkKind::Reset => ("reset", "dsrs_"),
            LinkKind::Mfa => ("mfa", "dsmfa_"),
        }
    }

    /// How long a link of this kind works.
    pub fn ttl(self) -> Millis {
        match self {
            LinkKind::Verify => VERIFY_TTL,
            LinkKind::Magic => MAGIC_TTL,
            LinkKind::Reset => RESET_TTL,
            LinkKind::Mfa => MFA_TOKEN_TTL,
        }
    }
}

/// Ten recovery codes (`xxxx-xxxx-xxxx`, 60 bits each) and their digests.
pub fn new_recovery_codes() -> anyhow::Result<(Vec<String>, Vec<String>)> {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    let mut codes = Vec::with_capacity(RECOVERY_CODES);
    for _ in 0..RECOVERY_CODES {
        let mut bytes = [0u8; 12];
        OsRng.try_fill_bytes(&mut bytes)?;
        let chars: String = bytes
            .iter()
            .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
            .collect();
        codes.push(format!("{}-{}-{}", &chars[..4], &chars[4..8], &chars[8..]));
    }
    let hashes = codes.iter().map(|c| recovery_hash(c)).collect();
    Ok((codes, hashes))
}

/// The digest of a recovery code as typed (case, spaces and dashes ignored).
pub fn recovery_hash(code: &str) -> String {
    let normal: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    apikey::hash(&format!("recovery:{normal}"))
}

/// The TOTP of a base32 secret: RFC 6238, SHA-1, 6 digits, 30 s steps, ±1 step.
fn totp(secret_b32: &str, email: &str) -> anyhow::Result<totp_rs::Totp> {
    let secret = totp_rs::Secret::try_from_base32(secret_b32)
        .map_err(|e| anyhow::anyhow!("TOTP secret: {e:?}"))?;
    totp_rs::Builder::new()
        .with_secret(secret)
        .with_issuer(Some("Driftstack"))
        .with_account_name(email)
        .build()
        .map_err(|e| anyhow::anyhow!("TOTP: {e:?}"))
}

/// What an authenticator app needs to enrol.
pub struct Enrolment {
    pub secret: String,
    pub otpauth_url: String,
    /// `data:image/svg+xml;base64,…`
    pub qr_code: String,
}

/// Why a one-time password was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum OtpRefusal {
    Invalid,
    TooMany,
}

impl From<OtpRefusal> for crate::error::ApiError {
    fn from(e: OtpRefusal) -> Self {
        use crate::error::ApiError;
        match e {
            OtpRefusal::Invalid => {
                ApiError::unauthorized("The code is not valid (or was used already).")
                    .with_code("invalid_code")
            }
            OtpRefusal::TooMany => ApiError::too_many(
                "too_many_attempts",
                "Too many code attempts; wait a minute.",
                60,
            ),
        }
    }
}

/// A rendered QR code of `text` as SVG.
fn qr_svg(text: &str) -> anyhow::Result<String> {
    use qrcodegen::{QrCode, QrCodeEcc};
    let qr = QrCode::encode_text(text, QrCodeEcc::Medium)
        .map_err(|e| anyhow::anyhow!("QR code: {e:?}"))?;
    let border = 4;
    let size = qr.size() + border * 2;
    let mut path = String::new();
    for y in 0..qr.size() {
        for x in 0..qr.size() {
            if qr.get_module(x, y) {
                path.push_str(&format!("M{},{}h1v1h-1z", x + border, y + border));
            }
        }
    }
    Ok(format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {size} {size}\" \
         shape-rendering=\"crispEdges\"><rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\
         <path d=\"{path}\" fill=\"#000\"/></svg>"
    ))
}

/// Issued dashboard credentials.
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: String,
    pub session_id: String,
}

/// The throttles and secrets of dashboard identity.
#[derive(Clone)]
pub struct Identity {
    pub store: IdentityStore,
    totp_secrets: SecretBox,
    clock: Clock,
    ip_gate: Arc<DefaultKeyedRateLimiter<IpAddr>>,
}

/// What to do with a magic-link or reset request.
#[derive(Debug, PartialEq, Eq)]
pub enum LinkDecision {
    Send,
    /// Over the limit: answer as if sent, send nothing.
    Silent,
    /// Within the resend cooldown: 429 with this many seconds to wait.
    Cooldown(u64),
}

impl Identity {
    pub fn new(
        store: IdentityStore,
        totp_secrets: SecretBox,
        clock: Clock,
        ip_per_minute: u32,
    ) -> Self {
        let per_minute = NonZeroU32::new(ip_per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
        Identity {
            store,
            totp_secrets,
            clock,
            ip_gate: Arc::new(RateLimiter::keyed(Quota::per_minute(per_minute))),
        }
    }

    pub fn now(&self) -> Millis {
        self.clock.now_ms()
    }

    /// Stores a new one-time link of `kind` for `user`, valid for `ttl`; returns its token.
    pub async fn issue_link(
        &self,
        kind: LinkKind,
        user: &UserId,
        ttl: Millis,
    ) -> anyhow::Result<String> {
        let (name, prefix) = kind.parts();
        let (token, hash) = new_token(prefix)?;
        let now = self.now();
        self.store
            .create_link(&hash, name, user, now + ttl, now)
            .await?;
        Ok(token)
    }

    /// The per-IP gate in front of every unauthenticated auth route: `Err(seconds)` to wait.
    pub fn ip_gate(&self, ip: IpAddr) -> Result<(), u64> {
        self.ip_gate.check_key(&ip).map_err(|not_until| {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            ));
            wait.as_secs().max(1)
        })
    }

    /// The shared limiter of magic links, password resets and verification resends: a 60 s
    /// cooldown per email, then 3 per email and 10 per IP per 15 minutes — counted the same for
    /// emails that have no account.
    pub async fn link_decision(&self, email: &str, ip: IpAddr) -> Result<LinkDecision, StoreError> {
        let now = self.now();
        let email_bucket = format!("link-email:{email}");
        let ip_bucket = format!("link-ip:{ip}");
        let (per_email, last) = self
            .store
            .throttle_count(&email_bucket, now - LINK_WINDOW)
            .await?;
        if let Some(last) = last
            && now - last < LINK_COOLDOWN
        {
            let wait = (LINK_COOLDOWN - (now - last) + 999) / 1000;
            return Ok(LinkDecision::Cooldown(
                u64::try_from(wait).unwrap_or(1).max(1),
            ));
        }
        let (per_ip, _) = self
            .store
            .throttle_count(&ip_bucket, now - LINK_WINDOW)
            .await?;
        self.store
            .throttle_hit(&[&email_bucket, &ip_bucket], now, now - 2 * LINK_WINDOW)
            .await?;
        if per_email >= LINKS_PER_EMAIL || per_ip >= LINKS_PER_IP {
            return Ok(LinkDecision::Silent);
        }
        Ok(LinkDecision::Send)
    }

    /// Starts a sign-in session for `user`; `step_up` when this sign-in verified the person
    /// (password or MFA) so that sensitive actions are allowed for the step-up window.
    pub async fn sign_in(&self, user: &UserId, step_up: bool) -> anyhow::Result<Tokens> {
        let now = self.now();
        let session_id = format!("as_{}", uuid::Uuid::now_v7().simple());
        let (access, access_hash) = new_token(ACCESS_PREFIX)?;
        let (refresh, refresh_hash) = new_token(REFRESH_PREFIX)?;
        let expires_at = now + SESSION_ABSOLUTE;
        self.store
            .create_session(
                &store::NewSession {
                    id: &session_id,
                    user_id: user,
                    now,
                    expires_at,
                    step_up,
                },
                &[
                    store::NewToken {
                        hash: &access_hash,
                        kind: "access",
                        expires_at: (now + ACCESS_TTL).min(expires_at),
                    },
                    store::NewToken {
                        hash: &refresh_hash,
                        kind: "refresh",
                        expires_at,
                    },
                ],
            )
            .await?;
        Ok(Tokens {
            access_token: access,
            refresh_token: refresh,
            session_id,
        })
    }

    /// New tokens for a live session (refresh, or step-up with `step_up`).
    pub async fn reissue(
        &self,
        session_id: &str,
        session_expires_at: Millis,
        step_up: bool,
    ) -> anyhow::Result<Tokens> {
        let now = self.now();
        let (access, access_hash) = new_token(ACCESS_PREFIX)?;
        let (refresh, refresh_hash) = new_token(REFRESH_PREFIX)?;
        self.store
            .rotate(
                session_id,
                &[
                    store::NewToken {
                        hash: &access_hash,
                        kind: "access",
                        expires_at: (now + ACCESS_TTL).min(session_expires_at),
                    },
                    store::NewToken {
                        hash: &refresh_hash,
                        kind: "refresh",
                        expires_at: session_expires_at,
                    },
                ],
                now,
                step_up,
            )
            .await?;
        Ok(Tokens {
            access_token: access,
            refresh_token: refresh,
            session_id: session_id.to_owned(),
        })
    }

    /// Whether a session is usable now (not revoked, not idle too long, not past its end).
    pub fn session_live(&self, s: &TokenSession) -> bool {
        let now = self.now();
        s.revoked_at.is_none()
            && now - s.last_active_at < SESSION_IDLE
            && now < s.session_expires_at
    }

    /// Resolves a dashboard access token.
    pub async fn resolve_access(&self, token: &str) -> Result<Option<TokenSession>, StoreError> {
        if !token.starts_with(ACCESS_PREFIX) {
            return Ok(None);
        }
        let Some(s) = self.store.find_token(&apikey::hash(token)).await? else {
            return Ok(None);
        };
        let now = self.now();
        if s.kind != "access" || s.token_expires_at <= now || !self.session_live(&s) {
            return Ok(None);
        }
        // Activity keeps the session from idling out; written at most once a minute.
        if now - s.last_active_at > MINUTE {
            self.store.touch_session(&s.session_id, now).await?;
        }
        Ok(Some(s))
    }

    /// Starts TOTP enrolment: a new secret, kept pending until a code proves the app has it.
    pub async fn enrol_totp(&self, user: &UserAuth) -> anyhow::Result<Enrolment> {
        let secret = totp_rs::Secret::generate().to_base32();
        let t = totp(&secret, &user.email)?;
        let url = t
            .to_url()
            .map_err(|e| anyhow::anyhow!("otpauth URL: {e:?}"))?;
        let sealed = self.totp_secrets.seal(&secret)?;
        self.store
            .set_pending_totp(&user.user_id(), &sealed)
            .await?;
        let svg = qr_svg(&url)?;
        Ok(Enrolment {
            secret,
            otpauth_url: url,
            qr_code: format!(
                "data:image/svg+xml;base64,{}",
                base64::engine::general_purpose::STANDARD.encode(svg)
            ),
        })
    }

    /// Counts an OTP attempt of `user` (at most [`OTP_PER_MINUTE`]).
    async fn otp_attempt(&self, user: &UserId) -> Result<(), OtpRefusal> {
        let now = self.now();
        let bucket = format!("otp:{user}");
        let taken = self
            .store
            .throttle_take(&bucket, now - MINUTE, OTP_PER_MINUTE, now)
            .await
            .map_err(|_| OtpRefusal::Invalid)?;
        if !taken {
            return Err(OtpRefusal::TooMany);
        }
        Ok(())
    }

    /// Checks a TOTP code against `sealed` (the active or the pending secret). A code, or any
    /// code of an earlier step, is never accepted twice. Returns the step.
    async fn check_totp(
        &self,
        user: &UserAuth,
        sealed: &[u8],
        code: &str,
        record: bool,
    ) -> Result<i64, OtpRefusal> {
        self.otp_attempt(&user.user_id()).await?;
        let secret = self
            .totp_secrets
            .open(sealed)
            .map_err(|_| OtpRefusal::Invalid)?;
        let t = totp(&secret, &user.email).map_err(|_| OtpRefusal::Invalid)?;
        let now = u64::try_from(self.now() / 1000).unwrap_or(0);
        let step = t
            .check(code.trim(), now)
            .and_then(|s| i64::try_from(s).ok())
            .ok_or(OtpRefusal::Invalid)?;
        if user.totp_last_step.is_some_and(|last| step <= last) {
            return Err(OtpRefusal::Invalid);
        }
        if record
            && !self
                .store
                .accept_step(&user.user_id(), step)
                .await
                .unwrap_or(false)
        {
            return Err(OtpRefusal::Invalid);
        }
        Ok(step)
    }

    /// Verifies the second factor of a user with MFA on: a TOTP code or an unused recovery code.
    pub async fn verify_second_factor(
        &self,
        user: &UserAuth,
        code: Option<&str>,
        recovery_code: Option<&str>,
    ) -> Result<(), OtpRefusal> {
        let sealed = user.totp_secret_enc.as_deref().ok_or(OtpRefusal::Invalid)?;
        match (code, recovery_code) {
            (Some(code), _) => self.check_totp(user, sealed, code, true).await.map(|_| ()),
            (None, Some(rc)) => {
                self.otp_attempt(&user.user_id()).await?;
                let used = self
                    .store
                    .use_recovery_code(&user.user_id(), &recovery_hash(rc), self.now())
                    .await
                    .unwrap_or(false);
                if used {
                    Ok(())
                } else {
                    Err(OtpRefusal::Invalid)
                }
            }
            (None, None) => Err(OtpRefusal::Invalid),
        }
    }

    /// Activates the pending TOTP secret with a valid code; returns the recovery codes.
    pub async fn activate_totp(
        &self,
        user: &UserAuth,
        code: &str,
    ) -> Result<Vec<String>, OtpRefusal> {
        let sealed = user
            .totp_pending_enc
            .as_deref()
            .ok_or(OtpRefusal::Invalid)?;
        let step = self.check_totp(user, sealed, code, false).await?;
        let (codes, hashes) = new_recovery_codes().map_err(|_| OtpRefusal::Invalid)?;
        self.store
            .activate_totp(&user.user_id(), step, &hashes, self.now())
            .await
            .map_err(|_| OtpRefusal::Invalid)?;
        Ok(codes)
    }
}
