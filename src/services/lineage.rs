//! Lineage: what a model was made from — a model of this hub the caller may see, or an
//! external reference — how, from which datasets, in which training run. Given with the model
//! (`createModel`, `updateModel`), or else taken from its first model card's front matter
//! (`base_model`, `base_model_relation`, `datasets`). A base model's derivatives are the models
//! that name it; when it is deleted, they keep its `owner/slug` as a reference.

use sea_orm::{
    ActiveValue, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set, sea_query::Expr,
};
use uuid::Uuid;

use super::hub;
use crate::{
    auth::Viewer,
    domain::lineage::{self, Relation},
    entities::model,
    error::{AppError, AppResult},
    services::version_facts::Facts,
    state::AppState,
};

/// How far up a chain of base models a new link is checked for a cycle.
const MAX_DEPTH: usize = 64;
/// The lock class of lineage links ("LINK"; see [`super::serialize`]).
const LINKS_LOCK: i32 = 0x4c49_4e4b;

/// What a model was made from.
#[derive(Debug, Clone, Default)]
pub struct BaseModel {
    /// A model of this hub.
    pub model_id: Option<Uuid>,
    /// Anything else (a repository id elsewhere, a link).
    pub reference: Option<String>,
    pub relation: Option<Relation>,
}

/// Lineage given with a model; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct Lineage {
    /// The base model; one with neither a model nor a reference clears it.
    pub base: Option<BaseModel>,
    pub datasets: Option<Vec<String>>,
    /// A link; empty clears it.
    pub training_run: Option<String>,
}

/// Sets `row`'s lineage from `lineage` (the fields it gives). A base model of this hub must be
/// one the caller may see (`may_see`), and neither the model itself nor one made from it.
pub async fn apply<C: ConnectionTrait>(
    db: &C,
    may_see: impl Fn(&model::Model) -> bool,
    row: &mut model::ActiveModel,
    lineage: &Lineage,
) -> AppResult<()> {
    if let Some(base) = &lineage.base {
        if base.model_id.is_some() && base.reference.is_some() {
            return Err(AppError::bad_input(
                "baseModel",
                "give a modelId or a reference, not both",
            ));
        }
        if let Some(base_id) = base.model_id {
            let id = *row.id.as_ref();
            let found = model::Entity::find_by_id(base_id).one(db).await?;
            if !found.as_ref().is_some_and(&may_see) {
                return Err(AppError::bad_input(
                    "baseModel.modelId",
                    "is not a model you may see",
                ));
            }
            if !is_new(row) {
                ensure_no_cycle(db, id, base_id).await?;
            }
        }
        let reference = base
            .reference
            .as_deref()
            .map(|r| lineage::reference("baseModel.reference", r))
            .transpose()?;
        let named = base.model_id.is_some() || reference.is_some();
        row.base_model_id = Set(base.model_id);
        row.base_model_ref = Set(reference);
        row.base_relation = Set(base
            .relation
            .filter(|_| named)
            .map(|r| r.as_str().to_owned()));
    }
    if let Some(datasets) = &lineage.datasets {
        row.datasets = Set(serde_json::json!(lineage::datasets("datasets", datasets)?));
    }
    if let Some(run) = &lineage.training_run {
        row.training_run = Set(match run.trim() {
            "" => None,
            run => Some(lineage::training_run("trainingRun", run)?),
        });
    }
    Ok(())
}

/// Whether `row` is a model not stored yet: nothing can be made from it, so no link from it
/// closes a cycle.
fn is_new(row: &model::ActiveModel) -> bool {
    matches!(row.id, ActiveValue::Set(_))
}

/// Refuses `base` as the base of `model` when `base` is `model` or made from it. Checks in
/// transactions wait for each other, so two links made at once cannot close a cycle.
async fn ensure_no_cycle<C: ConnectionTrait>(db: &C, model: Uuid, base: Uuid) -> AppResult<()> {
    super::serialize(db, LINKS_LOCK, "lineage").await?;
    let mut next = Some(base);
    for _ in 0..MAX_DEPTH {
        match next {
            Some(id) if id == model => {
                return Err(AppError::bad_input(
                    "baseModel.modelId",
                    "is this model or made from it",
                ));
            }
            Some(id) => {
                next = model::Entity::find_by_id(id)
                    .one(db)
                    .await?
                    .and_then(|m| m.base_model_id);
            }
            None => return Ok(()),
        }
    }
    Err(AppError::bad_input(
        "baseModel.modelId",
        format!("has a chain of more than {MAX_DEPTH} base models"),
    ))
}

/// Fills a new model's lineage, where its uploader gave none (`given` and the row's own
/// values), from the front matter of its first model card: `base_model` (the first one named;
/// linked when it is `owner/slug` of a model here the viewer may see and not made from this
/// one), `base_model_relation` and `datasets`. Values that are not valid are left out.
pub async fn card_defaults<C: ConnectionTrait>(
    state: &AppState,
    db: &C,
    viewer: &Viewer,
    row: &mut model::ActiveModel,
    given: &Lineage,
    facts: &Facts,
) -> AppResult<()> {
    let Some(card) = &facts.card else {
        return Ok(());
    };
    let first = |key: &str| match card.get(key) {
        Some(serde_json::Value::String(s)) => Some(vec![s.clone()]),
        Some(serde_json::Value::Array(items)) => Some(
            items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_owned))
                .collect(),
        ),
        _ => None,
    };
    let unset = |value: &ActiveValue<Option<String>>| {
        matches!(value, ActiveValue::Set(None) | ActiveValue::Unchanged(None))
    };
    if given.base.is_none()
        && unset(&row.base_model_ref)
        && matches!(
            row.base_model_id,
            ActiveValue::Set(None) | ActiveValue::Unchanged(None)
        )
        && let Some(base) = first("base_model").and_then(|b| b.into_iter().next())
        && let Ok(reference) = lineage::reference("base_model", &base)
    {
        let local = match reference.split_once('/') {
            Some((owner, name)) => match hub::repository(state, viewer, owner, name).await {
                Ok(base) if is_new(row) => Some(base),
                Ok(base) => ensure_no_cycle(db, *row.id.as_ref(), base.id)
                    .await
                    .is_ok()
                    .then_some(base),
                Err(AppError::NotFound(_)) => None,
                Err(e) => return Err(e),
            },
            None => None,
        };
        match local {
            Some(base) => row.base_model_id = Set(Some(base.id)),
            None => row.base_model_ref = Set(Some(reference)),
        }
        row.base_relation = Set(facts
            .card_text("base_model_relation")
            .and_then(|r| Relation::parse(&r))
            .map(|r| r.as_str().to_owned()));
    }
    if given.datasets.is_none()
        && matches!(&row.datasets, ActiveValue::Set(d) | ActiveValue::Unchanged(d)
            if d.as_array().is_some_and(Vec::is_empty))
        && let Some(datasets) = first("datasets")
        && let Ok(datasets) = lineage::datasets("datasets", &datasets)
    {
        row.datasets = Set(serde_json::json!(datasets));
    }
    Ok(())
}

/// Before `model` (owned by `owner`) is deleted: its derivatives keep it as the reference
/// `owner/slug` (its repository id).
pub async fn orphan_derivatives<C: ConnectionTrait>(
    db: &C,
    model: &model::Model,
    owner: &str,
) -> AppResult<()> {
    model::Entity::update_many()
        .col_expr(model::Column::BaseModelId, Expr::value(None::<Uuid>))
        .col_expr(
            model::Column::BaseModelRef,
            Expr::value(format!("{owner}/{}", model.slug)),
        )
        .filter(model::Column::BaseModelId.eq(model.id))
        .exec(db)
        .await?;
    Ok(())
}
