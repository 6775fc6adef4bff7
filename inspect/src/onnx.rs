//! ONNX: the protobuf `ModelProto`, decoded with prost from message definitions that name only
//! the fields read here (producer, opsets, graph inputs and outputs, initializer shapes);
//! prost skips the rest, weights included, without keeping them.

use serde::{Deserialize, Serialize};

use crate::InspectError;

/// Largest ONNX file decoded in memory.
pub const MAX_BYTES: u64 = 256 * 1024 * 1024;

#[derive(Clone, PartialEq, prost::Message)]
struct ModelProto {
    #[prost(int64, optional, tag = "1")]
    ir_version: Option<i64>,
    #[prost(string, optional, tag = "2")]
    producer_name: Option<String>,
    #[prost(string, optional, tag = "3")]
    producer_version: Option<String>,
    #[prost(string, optional, tag = "4")]
    domain: Option<String>,
    #[prost(message, optional, tag = "7")]
    graph: Option<GraphProto>,
    #[prost(message, repeated, tag = "8")]
    opset_import: Vec<OperatorSetIdProto>,
    #[prost(message, repeated, tag = "14")]
    metadata_props: Vec<StringStringEntryProto>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct OperatorSetIdProto {
    #[prost(string, optional, tag = "1")]
    domain: Option<String>,
    #[prost(int64, optional, tag = "2")]
    version: Option<i64>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct StringStringEntryProto {
    #[prost(string, optional, tag = "1")]
    key: Option<String>,
    #[prost(string, optional, tag = "2")]
    value: Option<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct GraphProto {
    #[prost(message, repeated, tag = "1")]
    node: Vec<NodeProto>,
    #[prost(string, optional, tag = "2")]
    name: Option<String>,
    #[prost(message, repeated, tag = "5")]
    initializer: Vec<TensorProto>,
    #[prost(message, repeated, tag = "11")]
    input: Vec<ValueInfoProto>,
    #[prost(message, repeated, tag = "12")]
    output: Vec<ValueInfoProto>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct NodeProto {
    #[prost(string, optional, tag = "4")]
    op_type: Option<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct TensorProto {
    #[prost(int64, repeated, packed = "false", tag = "1")]
    dims: Vec<i64>,
    #[prost(int32, optional, tag = "2")]
    data_type: Option<i32>,
    #[prost(string, optional, tag = "8")]
    name: Option<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ValueInfoProto {
    #[prost(string, optional, tag = "1")]
    name: Option<String>,
    #[prost(message, optional, tag = "2")]
    r#type: Option<TypeProto>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct TypeProto {
    #[prost(message, optional, tag = "1")]
    tensor_type: Option<TensorTypeProto>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct TensorTypeProto {
    #[prost(int32, optional, tag = "1")]
    elem_type: Option<i32>,
    #[prost(message, optional, tag = "2")]
    shape: Option<TensorShapeProto>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct TensorShapeProto {
    #[prost(message, repeated, tag = "1")]
    dim: Vec<Dimension>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Dimension {
    #[prost(int64, optional, tag = "1")]
    dim_value: Option<i64>,
    #[prost(string, optional, tag = "2")]
    dim_param: Option<String>,
}

/// A graph input or output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TensorSpec {
    pub name: String,
    /// e.g. `FLOAT`, `INT64`.
    pub element_type: String,
    /// Dimensions: numbers, or symbolic names such as `batch`.
    pub shape: Vec<String>,
}

/// What an ONNX model declares.
#[derive(Debug, Default)]
pub struct OnnxInfo {
    pub ir_version: Option<i64>,
    pub producer: Option<String>,
    /// The default-domain opset.
    pub opset: Option<i64>,
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
    pub parameter_count: u64,
    pub initializer_count: u64,
    pub node_count: u64,
    pub dtypes: Vec<String>,
    pub metadata: Vec<(String, String)>,
}

fn element_type(code: i32) -> String {
    const NAMES: &[&str] = &[
        "UNDEFINED",
        "FLOAT",
        "UINT8",
        "INT8",
        "UINT16",
        "INT16",
        "INT32",
        "INT64",
        "STRING",
        "BOOL",
        "FLOAT16",
        "DOUBLE",
        "UINT32",
        "UINT64",
        "COMPLEX64",
        "COMPLEX128",
        "BFLOAT16",
    ];
    usize::try_from(code)
        .ok()
        .and_then(|i| NAMES.get(i))
        .map_or_else(|| format!("TYPE{code}"), |n| (*n).to_owned())
}

fn spec(value: &ValueInfoProto) -> TensorSpec {
    let tensor = value.r#type.as_ref().and_then(|t| t.tensor_type.as_ref());
    TensorSpec {
        name: value.name.clone().unwrap_or_default(),
        element_type: tensor
            .and_then(|t| t.elem_type)
            .map_or_else(|| "UNKNOWN".to_owned(), element_type),
        shape: tensor
            .and_then(|t| t.shape.as_ref())
            .map(|s| {
                s.dim
                    .iter()
                    .map(|d| match (d.dim_value, &d.dim_param) {
                        (Some(v), _) => v.to_string(),
                        (None, Some(p)) if !p.is_empty() => p.clone(),
                        _ => "?".to_owned(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// Decodes an ONNX model.
pub fn read(bytes: &[u8]) -> Result<OnnxInfo, InspectError> {
    let model = <ModelProto as prost::Message>::decode(bytes)
        .map_err(|e| InspectError::Malformed(format!("not an ONNX protobuf: {e}")))?;
    let graph = model
        .graph
        .ok_or_else(|| InspectError::Malformed("the ONNX model has no graph".into()))?;
    let initializers: Vec<&str> = graph
        .initializer
        .iter()
        .filter_map(|t| t.name.as_deref())
        .collect();
    let mut dtypes: Vec<String> = Vec::new();
    let mut parameter_count = 0u64;
    for tensor in &graph.initializer {
        let count = tensor
            .dims
            .iter()
            .try_fold(1u64, |acc, d| {
                u64::try_from(*d).ok().and_then(|d| acc.checked_mul(d))
            })
            .unwrap_or(0);
        parameter_count = parameter_count.saturating_add(count);
        let dtype = element_type(tensor.data_type.unwrap_or(0));
        if !dtypes.contains(&dtype) {
            dtypes.push(dtype);
        }
    }
    dtypes.sort();
    let producer = match (&model.producer_name, &model.producer_version) {
        (Some(name), Some(version)) if !version.is_empty() => Some(format!("{name} {version}")),
        (Some(name), _) => Some(name.clone()),
        _ => None,
    };
    Ok(OnnxInfo {
        ir_version: model.ir_version,
        producer,
        opset: model
            .opset_import
            .iter()
            .find(|o| o.domain.as_deref().unwrap_or("").is_empty())
            .and_then(|o| o.version),
        inputs: graph
            .input
            .iter()
            .filter(|i| !initializers.contains(&i.name.as_deref().unwrap_or("")))
            .map(spec)
            .collect(),
        outputs: graph.output.iter().map(spec).collect(),
        parameter_count,
        initializer_count: graph.initializer.len() as u64,
        node_count: graph.node.len() as u64,
        dtypes,
        metadata: model
            .metadata_props
            .into_iter()
            .map(|p| (p.key.unwrap_or_default(), p.value.unwrap_or_default()))
            .collect(),
    })
}
