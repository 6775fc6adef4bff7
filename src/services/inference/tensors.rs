//! A model's inputs from JSON and its outputs to JSON: nested arrays, checked against the
//! names, element types and shapes the model declares.

use serde_json::{Map, Value};
use tract_onnx::prelude::{DatumType, Tensor, tract_ndarray};

use crate::error::{AppError, AppResult};

/// What a model declares of one input.
#[derive(Debug, Clone)]
pub struct InputSpec {
    pub name: String,
    pub dtype: DatumType,
    /// Each dimension: its size, or `None` when it is symbolic (e.g. the batch).
    pub dims: Vec<Option<i64>>,
}

/// How much one call may send.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The most rows (the first dimension, when it is symbolic).
    pub max_batch: usize,
    /// The most values over all inputs.
    pub max_values: usize,
}

/// The deepest nesting read (no model declares inputs of this many dimensions).
const MAX_RANK: usize = 16;

/// One output of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    pub name: String,
    /// Its element type, as ONNX names it (`FLOAT`, `INT64`, …).
    pub dtype: &'static str,
    pub shape: Vec<usize>,
    /// Its values as nested arrays (`null` for a float that is not a number).
    pub values: Value,
}

/// An element type's ONNX name.
pub fn onnx_name(dtype: DatumType) -> &'static str {
    match dtype {
        DatumType::Bool => "BOOL",
        DatumType::U8 => "UINT8",
        DatumType::U16 => "UINT16",
        DatumType::U32 => "UINT32",
        DatumType::U64 => "UINT64",
        DatumType::I8 => "INT8",
        DatumType::I16 => "INT16",
        DatumType::I32 => "INT32",
        DatumType::I64 | DatumType::TDim => "INT64",
        DatumType::F16 => "FLOAT16",
        DatumType::F32 => "FLOAT",
        DatumType::F64 => "DOUBLE",
        DatumType::String => "STRING",
        _ => "OTHER",
    }
}

/// The leaves of a nested array, in order, and its shape (every sub-array of one level must be
/// as long as the others).
fn flatten<'v>(
    field: &str,
    value: &'v Value,
    limit: usize,
) -> AppResult<(Vec<usize>, Vec<&'v Value>)> {
    let mut shape = Vec::new();
    let mut level = value;
    while let Value::Array(items) = level {
        if shape.len() == MAX_RANK {
            return Err(AppError::bad_input(
                field,
                format!("nests deeper than {MAX_RANK} levels"),
            ));
        }
        shape.push(items.len());
        match items.first() {
            Some(first) => level = first,
            None => break,
        }
    }
    let count = shape.iter().try_fold(1usize, |n, d| n.checked_mul(*d));
    if count.is_none_or(|n| n > limit) {
        return Err(AppError::bad_input(
            field,
            format!("has more than the {limit} values a call may send"),
        ));
    }
    let mut leaves = Vec::with_capacity(count.unwrap_or_default());
    collect(field, value, &shape, &mut leaves)?;
    Ok((shape, leaves))
}

fn collect<'v>(
    field: &str,
    value: &'v Value,
    shape: &[usize],
    into: &mut Vec<&'v Value>,
) -> AppResult<()> {
    match (shape.split_first(), value) {
        (None, Value::Array(_)) => Err(AppError::bad_input(
            field,
            "is not rectangular: an array where a value belongs",
        )),
        (None, leaf) => {
            into.push(leaf);
            Ok(())
        }
        (Some((&len, rest)), Value::Array(items)) if items.len() == len => items
            .iter()
            .try_for_each(|item| collect(field, item, rest, into)),
        (Some(_), _) => Err(AppError::bad_input(
            field,
            "is not rectangular: its arrays of one level differ in length",
        )),
    }
}

/// Reads leaves as `T`, refusing the first that is not one.
fn read<T>(
    field: &str,
    leaves: &[&Value],
    what: &str,
    parse: impl Fn(&Value) -> Option<T>,
) -> AppResult<Vec<T>> {
    leaves
        .iter()
        .map(|leaf| {
            parse(leaf).ok_or_else(|| {
                AppError::bad_input(field, format!("holds {leaf}, which is not {what}"))
            })
        })
        .collect()
}

fn tensor<T: tract_onnx::prelude::Datum>(
    field: &str,
    shape: &[usize],
    data: Vec<T>,
) -> AppResult<Tensor> {
    tract_ndarray::ArrayD::from_shape_vec(tract_ndarray::IxDyn(shape), data)
        .map(Tensor::from)
        .map_err(|e| AppError::bad_input(field, e.to_string()))
}

fn integer<T: TryFrom<i64>>(value: &Value) -> Option<T> {
    value.as_i64().and_then(|n| T::try_from(n).ok())
}

/// The tensor of one input from its JSON value.
fn input(
    spec: &InputSpec,
    value: &Value,
    limits: Limits,
    budget: usize,
) -> AppResult<(Tensor, usize)> {
    let field = format!("inputs.{}", spec.name);
    let (shape, leaves) = flatten(&field, value, budget)?;
    if shape.len() != spec.dims.len() {
        return Err(AppError::bad_input(
            &field,
            format!(
                "has {} dimensions; the model takes {} ({})",
                shape.len(),
                spec.dims.len(),
                describe(&spec.dims)
            ),
        ));
    }
    for (axis, (got, declared)) in shape.iter().zip(&spec.dims).enumerate() {
        match declared {
            Some(size) if i64::try_from(*got).ok() != Some(*size) => {
                return Err(AppError::bad_input(
                    &field,
                    format!(
                        "has {got} along axis {axis}; the model takes {} ({})",
                        size,
                        describe(&spec.dims)
                    ),
                ));
            }
            None if axis == 0 && *got > limits.max_batch => {
                return Err(AppError::bad_input(
                    &field,
                    format!(
                        "has {got} rows; a call may send at most {}",
                        limits.max_batch
                    ),
                ));
            }
            _ => {}
        }
    }
    let count = leaves.len();
    let made = match spec.dtype {
        DatumType::F32 => tensor(
            &field,
            &shape,
            read(&field, &leaves, "a number", |v| {
                v.as_f64().map(|f| f as f32)
            })?,
        ),
        DatumType::F64 => tensor(
            &field,
            &shape,
            read(&field, &leaves, "a number", Value::as_f64)?,
        ),
        DatumType::I64 => tensor(
            &field,
            &shape,
            read(&field, &leaves, "an integer", Value::as_i64)?,
        ),
        DatumType::I32 => tensor(
            &field,
            &shape,
            read(&field, &leaves, "a 32-bit integer", integer::<i32>)?,
        ),
        DatumType::I16 => tensor(
            &field,
            &shape,
            read(&field, &leaves, "a 16-bit integer", integer::<i16>)?,
        ),
        DatumType::I8 => tensor(
            &field,
            &shape,
            read(&field, &leaves, "an 8-bit integer", integer::<i8>)?,
        ),
        DatumType::U8 => tensor(
            &field,
            &shape,
            read(&field, &leaves, "an 8-bit unsigned integer", integer::<u8>)?,
        ),
        DatumType::U16 => tensor(
            &field,
            &shape,
            read(&field, &leaves, "a 16-bit unsigned integer", integer::<u16>)?,
        ),
        DatumType::U32 => tensor(
            &field,
            &shape,
            read(&field, &leaves, "a 32-bit unsigned integer", integer::<u32>)?,
        ),
        DatumType::U64 => tensor(
            &field,
            &shape,
            read(&field, &leaves, "an unsigned integer", Value::as_u64)?,
        ),
        DatumType::Bool => tensor(
            &field,
            &shape,
            read(&field, &leaves, "true or false", Value::as_bool)?,
        ),
        DatumType::String => tensor(
            &field,
            &shape,
            read(&field, &leaves, "a string", |v| {
                v.as_str().map(str::to_owned)
            })?,
        ),
        other => Err(AppError::bad_input(
            &field,
            format!(
                "is of type {}, which cannot be sent as JSON",
                onnx_name(other)
            ),
        )),
    }?;
    Ok((made, count))
}

/// A declared shape, e.g. `[batch, 10]` (`?` for a symbolic dimension).
fn describe(dims: &[Option<i64>]) -> String {
    let dims: Vec<String> = dims
        .iter()
        .map(|d| d.map_or_else(|| "?".to_owned(), |n| n.to_string()))
        .collect();
    format!("[{}]", dims.join(", "))
}

/// The tensors `values` gives for the model's inputs, in the model's order: every input named,
/// no other, each of its declared type and shape, within `limits`.
pub fn inputs(
    specs: &[InputSpec],
    values: &Map<String, Value>,
    limits: Limits,
) -> AppResult<Vec<Tensor>> {
    if let Some(unknown) = values.keys().find(|k| !specs.iter().any(|s| &s.name == *k)) {
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        return Err(AppError::bad_input(
            format!("inputs.{unknown}"),
            format!(
                "is not an input of the model, which takes {}",
                names.join(", ")
            ),
        ));
    }
    let mut budget = limits.max_values;
    specs
        .iter()
        .map(|spec| {
            let value = values.get(&spec.name).ok_or_else(|| {
                AppError::bad_input(
                    format!("inputs.{}", spec.name),
                    format!(
                        "is missing ({} {})",
                        onnx_name(spec.dtype),
                        describe(&spec.dims)
                    ),
                )
            })?;
            let (tensor, count) = input(spec, value, limits, budget)?;
            budget -= count;
            Ok(tensor)
        })
        .collect()
}

/// Nests `leaves` (in row-major order) by `shape`.
fn nest(shape: &[usize], leaves: &mut impl Iterator<Item = Value>) -> Value {
    match shape.split_first() {
        None => leaves.next().unwrap_or(Value::Null),
        Some((&len, rest)) => Value::Array((0..len).map(|_| nest(rest, leaves)).collect()),
    }
}

/// One output tensor as JSON.
pub fn output(name: &str, tensor: &Tensor) -> AppResult<Output> {
    let dtype = tensor.datum_type();
    let shape = tensor.shape().to_vec();
    let failed = |e: tract_onnx::prelude::TractError| {
        AppError::internal(format!("reading output {name}: {e:#}"))
    };
    let leaves: Vec<Value> = match dtype {
        DatumType::F16 | DatumType::F32 | DatumType::F64 => {
            let cast = tensor.cast_to::<f64>().map_err(failed)?;
            let view = cast.to_plain_array_view::<f64>().map_err(failed)?;
            view.iter()
                .map(|f| serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number))
                .collect()
        }
        DatumType::Bool => {
            let view = tensor.to_plain_array_view::<bool>().map_err(failed)?;
            view.iter().map(|b| Value::Bool(*b)).collect()
        }
        DatumType::String => {
            let view = tensor.to_plain_array_view::<String>().map_err(failed)?;
            view.iter().map(|s| Value::String(s.clone())).collect()
        }
        DatumType::U64 => {
            let view = tensor.to_plain_array_view::<u64>().map_err(failed)?;
            view.iter().map(|n| Value::from(*n)).collect()
        }
        dt if dt.is_integer() || dt == DatumType::TDim => {
            let cast = tensor.cast_to::<i64>().map_err(failed)?;
            let view = cast.to_plain_array_view::<i64>().map_err(failed)?;
            view.iter().map(|n| Value::from(*n)).collect()
        }
        other => {
            return Err(AppError::bad_input(
                "versionId",
                format!("output {name} is of type {other:?}, which cannot be answered as JSON"),
            ));
        }
    };
    let values = nest(&shape, &mut leaves.into_iter());
    Ok(Output {
        name: name.to_owned(),
        dtype: onnx_name(dtype),
        shape,
        values,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(dtype: DatumType, dims: &[Option<i64>]) -> Vec<InputSpec> {
        vec![InputSpec {
            name: "x".into(),
            dtype,
            dims: dims.to_vec(),
        }]
    }

    const LIMITS: Limits = Limits {
        max_batch: 4,
        max_values: 100,
    };

    fn refused(specs: &[InputSpec], values: Value) -> (String, String) {
        let Err(AppError::BadInput { field, message }) =
            inputs(specs, values.as_object().unwrap(), LIMITS)
        else {
            panic!("accepted {values}");
        };
        (field, message)
    }

    #[test]
    fn inputs_are_checked_against_the_declared_names_types_and_shapes() {
        let specs = spec(DatumType::F32, &[None, Some(2)]);
        let made = inputs(
            &specs,
            json!({ "x": [[1, 2.5], [3, 4]] }).as_object().unwrap(),
            LIMITS,
        )
        .unwrap();
        assert_eq!(made[0].shape(), &[2, 2]);
        assert_eq!(made[0].datum_type(), DatumType::F32);
        for (values, field, says) in [
            (json!({}), "inputs.x", "missing"),
            (json!({ "x": [[1, 2]], "y": 1 }), "inputs.y", "not an input"),
            (json!({ "x": [1, 2] }), "inputs.x", "1 dimensions"),
            (json!({ "x": [[1, 2, 3]] }), "inputs.x", "along axis 1"),
            (json!({ "x": [[1, 2], [3]] }), "inputs.x", "not rectangular"),
            (json!({ "x": [[1, "a"]] }), "inputs.x", "not a number"),
            (
                json!({ "x": [[1, 2], [1, 2], [1, 2], [1, 2], [1, 2]] }),
                "inputs.x",
                "at most 4",
            ),
        ] {
            let (got_field, message) = refused(&specs, values.clone());
            assert_eq!(got_field, field, "{values}");
            assert!(message.contains(says), "{values}: {message}");
        }
        let (_, message) = refused(&spec(DatumType::F32, &[None]), json!({ "x": vec![0; 101] }));
        assert!(message.contains("100 values"), "{message}");
        let (_, message) = refused(&spec(DatumType::I64, &[Some(1)]), json!({ "x": [1.5] }));
        assert!(message.contains("not an integer"), "{message}");
    }

    #[test]
    fn outputs_nest_by_their_shape() {
        let t = Tensor::from_shape(&[2, 3], &[1i64, 2, 3, 4, 5, 6]).unwrap();
        let out = output("label", &t).unwrap();
        assert_eq!(out.values, json!([[1, 2, 3], [4, 5, 6]]));
        assert_eq!((out.dtype, out.shape), ("INT64", vec![2, 3]));
        let f = Tensor::from_shape(&[2], &[0.5f32, f32::NAN]).unwrap();
        assert_eq!(output("p", &f).unwrap().values, json!([0.5, null]));
    }
}
