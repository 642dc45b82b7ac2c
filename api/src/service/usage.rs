//! Usage reports: an account's meters this month against its tier's caps, with the live bytes of
//! its sessions on this node's runner. Used by the usage routes, by admission of new sessions
//! (monthly caps) and by the threshold announcer.

use common::ids::AccountId;

use crate::{error::ApiError, state::AppState, usage::Report};

/// The usage report of `account` now (tier from the account, live bytes from this node's runner).
pub async fn report(state: &AppState, account: &AccountId) -> Result<Report, ApiError> {
    let acct = state.accounts.get(account).await?;
    let tier = state
        .tiers
        .get(&acct.tier)
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("unknown tier {}", acct.tier)))?;
    report_with(state, account, tier).await
}

/// The usage report of `account` on `tier`.
pub async fn report_with(
    state: &AppState,
    account: &AccountId,
    tier: &crate::tiers::Tier,
) -> Result<Report, ApiError> {
    let live = state
        .runner
        .as_ref()
        .map(|r| r.live_bytes(account))
        .unwrap_or(0);
    Ok(state.usage.report(account, tier, live).await?)
}
