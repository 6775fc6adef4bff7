//! Recently read versions with their models, so that repeated downloads of one file do not
//! each read two rows. An entry is used only while no change has gone through this process
//! since it was read (an edit, a withdrawal, a re-inspection show at once here; other
//! replicas' within the time to live). Who may see the model is decided afresh on every use.

use std::{sync::Arc, time::Duration};

use uuid::Uuid;

use crate::entities::{model, model_version};

/// Most versions kept.
const CAPACITY: u64 = 100_000;

/// A version and its model, as read at a change count.
pub type Found = Arc<(model_version::Model, model::Model)>;

/// Versions by id.
pub struct VersionCache {
    entries: moka::sync::Cache<Uuid, (u64, Found)>,
}

impl VersionCache {
    /// A cache whose entries live at most `ttl`; `None` when `ttl` is zero.
    pub fn new(ttl: Duration) -> Option<Self> {
        (!ttl.is_zero()).then(|| Self {
            entries: moka::sync::Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(ttl)
                .build(),
        })
    }

    /// The version read at `generation`, if it is still current.
    pub fn get(&self, id: &Uuid, generation: u64) -> Option<Found> {
        self.entries
            .get(id)
            .filter(|(read_at, _)| *read_at == generation)
            .map(|(_, found)| found)
    }

    /// Keeps a version read at `generation`.
    pub fn put(&self, id: Uuid, generation: u64, found: Found) {
        self.entries.insert(id, (generation, found));
    }
}
