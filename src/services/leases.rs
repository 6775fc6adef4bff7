//! Leases on background jobs, so that of several replicas sharing a database one runs each
//! job at a time: a lease is taken when free, expired or already this replica's, and lapses
//! by itself if its holder dies.

use std::time::Duration;

use sea_orm::{
    ColumnTrait, EntityTrait, QueryFilter, Set,
    sea_query::{Expr, ExprTrait, OnConflict},
};

use crate::{entities::lease, error::AppResult, state::AppState};

/// Takes (or renews) the lease `name` for `ttl`; `false` when another replica holds it.
pub async fn take(state: &AppState, name: &str, ttl: Duration) -> AppResult<bool> {
    let now = super::now();
    let until = now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
    let taken = lease::Entity::insert(lease::ActiveModel {
        name: Set(name.to_owned()),
        holder: Set(state.replica.clone()),
        expires_at: Set(until),
    })
    .on_conflict(
        OnConflict::column(lease::Column::Name)
            .update_columns([lease::Column::Holder, lease::Column::ExpiresAt])
            .action_and_where(
                Expr::col((lease::Entity, lease::Column::ExpiresAt))
                    .lt(now)
                    .or(Expr::col((lease::Entity, lease::Column::Holder)).eq(&state.replica)),
            )
            .to_owned(),
    )
    .exec_without_returning(&state.db)
    .await?;
    Ok(taken == 1)
}

/// Gives the lease `name` back, if this replica holds it.
pub async fn release(state: &AppState, name: &str) -> AppResult<()> {
    lease::Entity::delete_many()
        .filter(lease::Column::Name.eq(name))
        .filter(lease::Column::Holder.eq(&state.replica))
        .exec(&state.db)
        .await?;
    Ok(())
}
