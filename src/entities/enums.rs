//! Enumerations stored as short strings and exposed as GraphQL enums under the same names.

use async_graphql::Enum;
use sea_orm::entity::prelude::*;

/// What a user may do beyond their own models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum, Enum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum Role {
    /// An ordinary account.
    #[sea_orm(string_value = "user")]
    User,
    /// An administrator: reviews publications and manages users.
    #[sea_orm(string_value = "admin")]
    Admin,
}

/// Who can see a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum, Enum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum Visibility {
    /// Only the owner and administrators.
    #[sea_orm(string_value = "private")]
    Private,
    /// Everyone, anonymous callers included.
    #[sea_orm(string_value = "public")]
    Public,
}

/// Where a model stands in the publication workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum, Enum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum ApprovalStatus {
    /// Never submitted for publication.
    #[sea_orm(string_value = "draft")]
    Draft,
    /// Waiting for an administrator's review.
    #[sea_orm(string_value = "pending")]
    Pending,
    /// Approved and public.
    #[sea_orm(string_value = "approved")]
    Approved,
    /// Rejected by an administrator; the owner may edit and submit again.
    #[sea_orm(string_value = "rejected")]
    Rejected,
}

/// The file format of a model version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Enum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum ModelFormat {
    /// scikit-learn / joblib dump (a pickle stream, possibly compressed).
    #[sea_orm(string_value = "joblib")]
    Joblib,
    /// A Python pickle.
    #[sea_orm(string_value = "pickle")]
    Pickle,
    /// Keras / TensorFlow HDF5.
    #[sea_orm(string_value = "h5")]
    H5,
    /// Keras v3 zip archive.
    #[sea_orm(string_value = "keras")]
    Keras,
    /// PyTorch checkpoint (zip archive or legacy pickle).
    #[sea_orm(string_value = "pth")]
    Pth,
    /// Hugging Face safetensors.
    #[sea_orm(string_value = "safetensors")]
    Safetensors,
    /// ONNX protobuf.
    #[sea_orm(string_value = "onnx")]
    Onnx,
    /// GGUF (llama.cpp).
    #[sea_orm(string_value = "gguf")]
    Gguf,
    /// Anything else, stored as declared.
    #[sea_orm(string_value = "other")]
    Other,
}

impl From<modelhub_inspect::Status> for InspectionStatus {
    fn from(status: modelhub_inspect::Status) -> Self {
        match status {
            modelhub_inspect::Status::Safe => Self::Safe,
            modelhub_inspect::Status::Unsafe => Self::Unsafe,
            modelhub_inspect::Status::Unknown => Self::Unknown,
            modelhub_inspect::Status::Error => Self::Error,
        }
    }
}

impl ModelFormat {
    /// How the inspector should read a file declared in this format.
    pub fn declared(self) -> modelhub_inspect::Declared {
        match self {
            Self::Joblib => modelhub_inspect::Declared::Joblib,
            Self::Onnx => modelhub_inspect::Declared::Onnx,
            _ => modelhub_inspect::Declared::Other,
        }
    }
}

/// The outcome of the static inspection of a version's file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum, Enum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum InspectionStatus {
    /// Not inspected yet (held).
    #[sea_orm(string_value = "pending")]
    Pending,
    /// Positively cleared: every import on the allowlist, or a format that runs no code.
    #[sea_orm(string_value = "safe")]
    Safe,
    /// Something that runs code on load was found (held; never public).
    #[sea_orm(string_value = "unsafe")]
    Unsafe,
    /// Imports outside the allowlist, or content nothing could vouch for (held).
    #[sea_orm(string_value = "unknown")]
    Unknown,
    /// The file could not be read completely, or not within the time or memory budget (held).
    #[sea_orm(string_value = "error")]
    Error,
}

/// What happened, in a change event (webhook deliveries and subscriptions carry it; the
/// stored value is the `type` of a webhook's JSON body).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Enum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(40))")]
#[graphql(name = "EventType")]
pub enum EventKind {
    /// A version was stored (its inspection has its own event).
    #[sea_orm(string_value = "version.created")]
    VersionCreated,
    /// A version's inspection finished: at upload, or again under new rules.
    #[sea_orm(string_value = "version.inspected")]
    VersionInspected,
    /// The owner asked for the model to be published.
    #[sea_orm(string_value = "publication.requested")]
    PublicationRequested,
    /// An administrator approved the publication: the model is public.
    #[sea_orm(string_value = "publication.approved")]
    PublicationApproved,
    /// An administrator rejected the publication.
    #[sea_orm(string_value = "publication.rejected")]
    PublicationRejected,
    /// An alias was set, moved or removed.
    #[sea_orm(string_value = "alias.moved")]
    AliasMoved,
    /// An administrator withdrew a version.
    #[sea_orm(string_value = "version.withdrawn")]
    VersionWithdrawn,
    /// The model was deleted, with its versions.
    #[sea_orm(string_value = "model.deleted")]
    ModelDeleted,
    /// A test delivery a webhook's owner asked for.
    #[sea_orm(string_value = "ping")]
    Ping,
}

/// Where a webhook delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum, Enum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum DeliveryStatus {
    /// Waiting for its first try or its next retry.
    #[sea_orm(string_value = "pending")]
    Pending,
    /// The receiver answered with a 2xx status.
    #[sea_orm(string_value = "delivered")]
    Delivered,
    /// Every try failed until the retry window closed, or the webhook went away.
    #[sea_orm(string_value = "failed")]
    Failed,
}
