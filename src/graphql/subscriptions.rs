//! Live updates (GraphQL subscriptions over WebSocket, see [`crate::http`]): fed by the same
//! change events as webhooks ([`crate::services::events`]). Before each event is sent, the
//! connection's credential is resolved again and the access policy asked again, so a model
//! made private or an account disabled stops its subscriptions' events.

use std::sync::Arc;

use async_graphql::{Context, ID, MergedObject, Object, Result, Subscription};
use futures_util::{Stream, stream};
use tokio::sync::broadcast;
use uuid::Uuid;

use super::{
    RequestContext,
    context::{EventLoaders, SocketCredential},
    loaders::Loaders,
    models::{Model, ModelVersion},
    scalars::parse_id,
    webhooks::ChangeEvent,
};
use crate::{
    auth::Viewer,
    entities::{enums::EventKind, event, model, model_version},
    error::{AppError, AppResult},
    services::{access, accounts, models, versions},
    state::AppState,
};

/// Something that happened to a model (as webhooks receive it), with the model and version
/// as they are now.
#[derive(MergedObject)]
pub struct ModelEvent(ChangeEvent, EventSubjects);

/// What an event is about, as it is now.
pub struct EventSubjects {
    model_id: Uuid,
    model: Option<model::Model>,
    version: Option<model_version::Model>,
}

#[Object]
impl EventSubjects {
    /// The model's id (also once the model is deleted).
    async fn model_id(&self) -> ID {
        ID(self.model_id.to_string())
    }

    /// The model as it is now; null once deleted.
    async fn model(&self) -> Option<Model> {
        self.model.clone().map(Model)
    }

    /// The version the event is about, as it is now (null if none, or deleted since).
    async fn version(&self) -> Option<ModelVersion> {
        self.version.clone().map(ModelVersion)
    }
}

/// The subscription root.
#[derive(Default)]
pub struct SubscriptionRoot;

#[Subscription(name = "Subscription")]
impl SubscriptionRoot {
    /// The version whenever its inspection finishes: at once if it already has, then each
    /// time a re-inspection changes its verdict.
    async fn version_inspected(
        &self,
        ctx: &Context<'_>,
        version_id: ID,
    ) -> Result<impl Stream<Item = Result<ModelVersion>> + use<>> {
        let id = parse_id("versionId", &version_id)?;
        let follower = Follower::of(ctx)?;
        // Subscribed before the version is read, so an inspection in between is not missed.
        let events = follower.state.events.subscribe();
        let (version, _) = versions::find(&follower.state, &follower.viewer, id)
            .await?
            .ok_or(AppError::NotFound("model version"))?;
        let first = (version.inspection_status
            != crate::entities::enums::InspectionStatus::Pending)
            .then_some(version);
        let wanted = move |e: &event::Model| {
            e.kind == EventKind::VersionInspected && e.version_id == Some(id)
        };
        Ok(follower.follow(
            events,
            first,
            wanted,
            move |state, viewer, _| async move {
                Ok(versions::find(&state, &viewer, id).await?.map(|(v, _)| v))
            },
            ModelVersion,
        ))
    }

    /// Everything that happens to a model the caller may see: versions created and
    /// inspected, publication steps, alias moves, withdrawals, its deletion.
    async fn model_events(
        &self,
        ctx: &Context<'_>,
        model_id: ID,
    ) -> Result<impl Stream<Item = Result<ModelEvent>> + use<>> {
        let id = parse_id("modelId", &model_id)?;
        let follower = Follower::of(ctx)?;
        let events = follower.state.events.subscribe();
        models::find(&follower.state, &follower.viewer, id)
            .await?
            .ok_or(AppError::NotFound("model"))?;
        let wanted = move |e: &event::Model| e.model_id == Some(id) && e.kind != EventKind::Ping;
        Ok(follower.follow(events, None, wanted, model_event, |e| e))
    }

    /// The approval queue as it moves: publications requested, approved and rejected
    /// (administrators).
    async fn approval_queue(
        &self,
        ctx: &Context<'_>,
    ) -> Result<impl Stream<Item = Result<ModelEvent>> + use<>> {
        let follower = Follower::of(ctx)?;
        follower.viewer.require_admin()?;
        let events = follower.state.events.subscribe();
        let wanted = |e: &event::Model| {
            matches!(
                e.kind,
                EventKind::PublicationRequested
                    | EventKind::PublicationApproved
                    | EventKind::PublicationRejected
            )
        };
        Ok(follower.follow(events, None, wanted, model_event, |e| e))
    }
}

/// An event of a model as `viewer` may see it (`None`: not at all).
async fn model_event(
    state: AppState,
    viewer: Viewer,
    event: Arc<event::Model>,
) -> AppResult<Option<ModelEvent>> {
    let Some(model_id) = event.model_id else {
        return Ok(None);
    };
    let event = ChangeEvent(Arc::unwrap_or_clone(event));
    if event.0.kind == EventKind::ModelDeleted {
        let was_public = event.0.payload["model"]["approvalStatus"] == "APPROVED";
        let subjects = EventSubjects {
            model_id,
            model: None,
            version: None,
        };
        return Ok(
            access::may_see_deleted(&viewer, event.0.owner_id, was_public)
                .then_some(ModelEvent(event, subjects)),
        );
    }
    // The version's read brings its model; a model's own event (or a version deleted
    // since) reads the model alone.
    let found = match event.0.version_id {
        Some(id) => versions::find(&state, &viewer, id).await?,
        None => None,
    };
    let (model, version) = match found {
        Some((version, model)) => (model, Some(version)),
        None => match models::find(&state, &viewer, model_id).await? {
            Some(model) => (model, None),
            None => return Ok(None),
        },
    };
    let subjects = EventSubjects {
        model_id,
        model: Some(model),
        version,
    };
    Ok(Some(ModelEvent(event, subjects)))
}

/// What a subscription needs to follow events for its connection.
struct Follower {
    state: AppState,
    credential: SocketCredential,
    viewer: Viewer,
    loaders: Arc<EventLoaders>,
}

impl Follower {
    fn of(ctx: &Context<'_>) -> AppResult<Self> {
        let credential = ctx.data_opt::<SocketCredential>().cloned().ok_or_else(|| {
            AppError::bad_input("operation", "subscribe over WebSocket at /graphql")
        })?;
        let loaders = ctx
            .data_opt::<Arc<EventLoaders>>()
            .cloned()
            .ok_or_else(|| AppError::internal("the connection has no event loaders"))?;
        Ok(Self {
            state: ctx.state().clone(),
            viewer: ctx.viewer().clone(),
            credential,
            loaders,
        })
    }

    /// The caller as the connection's credential says now: the same account with the same
    /// rights, or the subscription ends.
    async fn viewer_now(&self) -> AppResult<Viewer> {
        let now = accounts::authenticate(&self.state, self.credential.token.as_deref()).await?;
        if now.user_id() != self.viewer.user_id() || now.is_admin() != self.viewer.is_admin() {
            return Err(AppError::Forbidden(
                "the connection's credential changed; subscribe again".into(),
            ));
        }
        Ok(now)
    }

    /// A stream of `first` (if any), then of what `make` gives for each wanted event, as
    /// the caller may see it now; it ends with an error once the credential no longer holds.
    fn follow<T, N, W, F, Fut, M>(
        self,
        events: broadcast::Receiver<Arc<event::Model>>,
        first: Option<T>,
        wanted: W,
        make: F,
        node: M,
    ) -> impl Stream<Item = Result<N>> + use<T, N, W, F, Fut, M>
    where
        T: Send + 'static,
        N: Send + 'static,
        W: Fn(&event::Model) -> bool + Send + 'static,
        M: Fn(T) -> N + Send + 'static,
        F: Fn(AppState, Viewer, Arc<event::Model>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = AppResult<Option<T>>> + Send,
    {
        struct Run<T, W, F> {
            follower: Follower,
            events: broadcast::Receiver<Arc<event::Model>>,
            first: Option<T>,
            wanted: W,
            make: F,
            done: bool,
        }
        let run = Run {
            follower: self,
            events,
            first,
            wanted,
            make,
            done: false,
        };
        stream::unfold((run, node), |(mut run, node)| async move {
            if run.done {
                return None;
            }
            if let Some(first) = run.first.take() {
                run.follower.fresh_loaders(&run.follower.viewer.clone());
                return Some((Ok(node(first)), (run, node)));
            }
            loop {
                let event = match run.events.recv().await {
                    Ok(event) => event,
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "a subscription fell behind and missed events");
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                };
                if !(run.wanted)(&event) {
                    continue;
                }
                let shown = match run.follower.viewer_now().await {
                    Ok(viewer) => {
                        let made =
                            (run.make)(run.follower.state.clone(), viewer.clone(), event).await;
                        run.follower.fresh_loaders(&viewer);
                        made
                    }
                    Err(e) => Err(e),
                };
                match shown {
                    Ok(Some(item)) => return Some((Ok(node(item)), (run, node))),
                    Ok(None) => {}
                    Err(e) => {
                        run.done = true;
                        return Some((Err(e.into()), (run, node)));
                    }
                }
            }
        })
    }

    /// Gives the next event fresh loaders, for what it selects.
    fn fresh_loaders(&self, viewer: &Viewer) {
        self.loaders
            .replace(Arc::new(Loaders::new(&self.state, viewer)));
    }
}
