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
