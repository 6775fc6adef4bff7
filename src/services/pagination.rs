//! Relay-style keyset pagination: opaque cursors that carry the sort value and the id of the
//! last row seen, so each page is one indexed query however deep it is.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    error::{AppError, AppResult},
    state::AppState,
};

/// Default page size.
pub const DEFAULT_PAGE_SIZE: usize = 20;
/// Largest page size.
pub const MAX_PAGE_SIZE: usize = 100;

/// The sort value a cursor carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SortValue {
    /// A counter.
    Int(i64),
    /// A timestamp.
    Time(DateTime<Utc>),
    /// A name.
    Text(String),
    /// No value: the id alone orders the rows.
    None,
}

/// A position in a sorted list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    /// The sort value of the row.
    #[serde(rename = "v")]
    pub value: SortValue,
    /// The id of the row (the tie-breaker).
    pub id: Uuid,
}

impl Cursor {
    /// The opaque form given to clients.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    /// Parses a client's cursor; `field` names the argument in the error.
    pub fn decode(field: &str, raw: &str) -> AppResult<Self> {
        URL_SAFE_NO_PAD
            .decode(raw)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or_else(|| AppError::bad_input(field, "is not a valid cursor"))
    }
}

/// The size of a page from a client's `first`.
pub fn page_size(first: Option<i32>) -> AppResult<usize> {
    match first {
        None => Ok(DEFAULT_PAGE_SIZE),
        Some(n) if n < 0 => Err(AppError::bad_input("first", "must not be negative")),
        Some(n) if n as usize > MAX_PAGE_SIZE => Err(AppError::bad_input(
            "first",
            format!("must be at most {MAX_PAGE_SIZE}"),
        )),
        Some(n) => Ok(n as usize),
    }
}

/// One page of a list.
#[derive(Debug)]
pub struct Page<T> {
    /// The rows with their cursors.
    pub items: Vec<(Cursor, T)>,
    /// Whether rows precede this page.
    pub has_previous: bool,
    /// Whether rows follow this page.
    pub has_next: bool,
    /// How many rows the whole list has, when it was counted.
    pub total: Option<u64>,
}

impl<T> Page<T> {
    /// Builds a page from up to `size + 1` fetched rows.
    pub fn from_rows(
        mut rows: Vec<T>,
        size: usize,
        after: bool,
        total: Option<u64>,
        cursor: impl Fn(&T) -> Cursor,
    ) -> Self {
        let has_next = rows.len() > size;
        rows.truncate(size);
        Self {
            items: rows.into_iter().map(|row| (cursor(&row), row)).collect(),
            has_previous: after,
            has_next,
            total,
        }
    }

    /// A page of an in-memory list sorted by the caller, positioned after the row with
    /// `after`'s id.
    pub fn from_sorted(
        all: Vec<T>,
        size: usize,
        after: Option<&Cursor>,
        id: impl Fn(&T) -> Uuid,
    ) -> Self {
        let total = Some(all.len() as u64);
        let start = after
            .and_then(|c| all.iter().position(|row| id(row) == c.id).map(|i| i + 1))
            .unwrap_or(0);
        let rows: Vec<T> = all.into_iter().skip(start).take(size + 1).collect();
        Self::from_rows(rows, size, start > 0, total, |row| Cursor {
            value: SortValue::None,
            id: id(row),
        })
    }
}

/// The rows of several pages in one statement: each page a query of `E`, ordered and limited
/// on its own (one indexed search each), joined with `UNION ALL`. The rows do not come in the
/// pages' order.
pub async fn pages_in_one<E>(
    db: &sea_orm::DatabaseConnection,
    pages: Vec<sea_orm::Select<E>>,
) -> Result<Vec<E::Model>, sea_orm::DbErr>
where
    E: sea_orm::EntityTrait,
    E::Model: Send + Sync,
{
    use sea_orm::{
        QueryTrait,
        sea_query::{Asterisk, Query, UnionType},
    };
    let mut wrapped = pages.into_iter().map(|page| {
        Query::select()
            .column(Asterisk)
            .from_subquery(page.into_query(), "page")
            .to_owned()
    });
    let Some(mut union) = wrapped.next() else {
        return Ok(Vec::new());
    };
    union.unions(wrapped.map(|page| (UnionType::All, page)));
    E::find()
        .from_raw_sql(db.get_database_backend().build(&union))
        .all(db)
        .await
}

/// The rows of several parents' pages in one statement, each newest first by the UUIDv7 `id`
/// column: of what `base` selects, each parent's rows (by the `parent` column) before
/// `before`, at most `limit` of them.
pub async fn newest_of_parents<E>(
    db: &sea_orm::DatabaseConnection,
    base: sea_orm::Select<E>,
    parent: E::Column,
    id: E::Column,
    parents: &[Uuid],
    limit: u64,
    before: Option<Uuid>,
) -> Result<Vec<E::Model>, sea_orm::DbErr>
where
    E: sea_orm::EntityTrait,
    E::Model: Send + Sync,
{
    use sea_orm::{ColumnTrait, QueryFilter, QueryOrder, QuerySelect};
    let pages = parents
        .iter()
        .map(|key| {
            let mut rows = base.clone().filter(parent.eq(*key));
            if let Some(before) = before {
                rows = rows.filter(id.lt(before));
            }
            rows.order_by_desc(id).limit(limit)
        })
        .collect();
    pages_in_one(db, pages).await
}

/// How many rows `base` selects of each of `parents` (by the `parent` column; those with none
/// are left out): one statement.
pub async fn count_of_parents<E>(
    db: &sea_orm::DatabaseConnection,
    base: sea_orm::Select<E>,
    parent: E::Column,
    parents: &[Uuid],
) -> Result<Vec<(Uuid, i64)>, sea_orm::DbErr>
where
    E: sea_orm::EntityTrait,
{
    use sea_orm::{ColumnTrait, QueryFilter, QuerySelect, sea_query::Expr};
    base.select_only()
        .column(parent)
        .column_as(Expr::cust("COUNT(*)"), "rows")
        .filter(parent.is_in(parents.iter().copied()))
        .group_by(parent)
        .into_tuple()
        .all(db)
        .await
}

/// How many rows `select` finds, remembered under the change counter (see
/// [`AppState::totals`]): a list's total costs a count of every matching row, which pages
/// must not pay on each request as the catalog grows.
pub async fn total<E>(state: &AppState, select: sea_orm::Select<E>) -> AppResult<u64>
where
    E: sea_orm::EntityTrait,
    E::Model: Send + Sync,
{
    use sea_orm::{PaginatorTrait, QueryTrait};
    let generation = state.changes.current();
    let key = state
        .db
        .get_database_backend()
        .build(&select.as_query().clone())
        .to_string();
    if let Some(total) = state.totals.as_ref().and_then(|c| c.get(&key, generation)) {
        return Ok(total);
    }
    let total = select.count(&state.db).await?;
    if let Some(cache) = &state.totals {
        cache.put(key, generation, total);
    }
    Ok(total)
}

/// A page of `base` ordered newest first by its UUIDv7 `id` column, with the total count.
pub async fn newest_first<E>(
    state: &AppState,
    base: sea_orm::Select<E>,
    id: E::Column,
    size: usize,
    after: Option<Cursor>,
    id_of: impl Fn(&E::Model) -> Uuid,
) -> AppResult<Page<E::Model>>
where
    E: sea_orm::EntityTrait,
    E::Model: Send + Sync,
{
    use sea_orm::{ColumnTrait, QueryFilter, QueryOrder, QuerySelect};
    let total = total(state, base.clone()).await?;
    let mut query = base;
    if let Some(cursor) = &after {
        query = query.filter(id.lt(cursor.id));
    }
    let rows = query
        .order_by_desc(id)
        .limit(size as u64 + 1)
        .all(&state.db)
        .await?;
    Ok(Page::from_rows(
        rows,
        size,
        after.is_some(),
        Some(total),
        |row| Cursor {
            value: SortValue::None,
            id: id_of(row),
        },
    ))
}
