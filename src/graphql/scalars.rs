//! Scalars beyond GraphQL's own: `BigInt` for 64-bit sizes and counters, and id parsing.

use async_graphql::{ID, InputValueError, InputValueResult, Scalar, ScalarType, Value};
use uuid::Uuid;

use crate::error::{AppError, AppResult};

/// A 64-bit integer, sent as a JSON number (file sizes and counters pass 2^31).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BigInt(pub i64);

#[Scalar(name = "BigInt")]
/// A 64-bit signed integer, serialized as a JSON number.
impl ScalarType for BigInt {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::Number(n) => n
                .as_i64()
                .map(BigInt)
                .ok_or_else(|| InputValueError::custom("expected a 64-bit integer")),
            Value::String(s) => s
                .parse()
                .map(BigInt)
                .map_err(|_| InputValueError::custom("expected a 64-bit integer")),
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> Value {
        Value::Number(self.0.into())
    }
}

/// Parses a GraphQL `ID` holding a UUID; `field` names the argument in the error.
pub fn parse_id(field: &str, id: &ID) -> AppResult<Uuid> {
    Uuid::parse_str(id.as_str()).map_err(|_| AppError::bad_input(field, "is not a valid id"))
}
