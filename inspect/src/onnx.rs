//! ONNX: the protobuf `ModelProto`, decoded with prost from message definitions that name only
//! the fields read here (producer, opsets, graph inputs and outputs, initializer shapes, where
//! weights stored outside the file are); prost skips the rest, weights included, without
//! keeping them.
//!
//! Every tensor a runtime may load is searched for external data: initializers (dense and
//! sparse) of the main graph and of every subgraph, tensors in node attributes (a `Constant`'s
//! value, say) wherever the node is — subgraphs of `If`/`Loop`/`Scan`, model-local functions and
//! their default attributes, training graphs. onnx's own loader follows several of these, so a
//! location that leaves the folder is as dangerous in an attribute as in an initializer.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::InspectError;

/// Largest ONNX file decoded in memory.
pub const MAX_BYTES: u64 = 256 * 1024 * 1024;
/// Most external-data files one model may name (each is listed in full in the report).
pub const MAX_EXTERNAL_FILES: usize = 10_000;

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
    #[prost(message, repeated, tag = "20")]
    training_info: Vec<TrainingInfoProto>,
    #[prost(message, repeated, tag = "25")]
    functions: Vec<FunctionProto>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct TrainingInfoProto {
    #[prost(message, optional, tag = "1")]
    initialization: Option<GraphProto>,
    #[prost(message, optional, tag = "2")]
    algorithm: Option<GraphProto>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct FunctionProto {
    #[prost(message, repeated, tag = "7")]
    node: Vec<NodeProto>,
    /// Default values of the function's attributes.
    #[prost(message, repeated, tag = "11")]
    attribute_proto: Vec<AttributeProto>,
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
    #[prost(message, repeated, tag = "15")]
    sparse_initializer: Vec<SparseTensorProto>,
    #[prost(message, repeated, tag = "11")]
    input: Vec<ValueInfoProto>,
    #[prost(message, repeated, tag = "12")]
    output: Vec<ValueInfoProto>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct NodeProto {
    #[prost(string, optional, tag = "4")]
    op_type: Option<String>,
    #[prost(message, repeated, tag = "5")]
    attribute: Vec<AttributeProto>,
}

/// The attribute fields that hold tensors or graphs (read whatever the declared type).
#[derive(Clone, PartialEq, prost::Message)]
struct AttributeProto {
    #[prost(message, optional, tag = "5")]
    t: Option<TensorProto>,
    #[prost(message, optional, tag = "6")]
    g: Option<GraphProto>,
    #[prost(message, repeated, tag = "10")]
    tensors: Vec<TensorProto>,
    #[prost(message, repeated, tag = "11")]
    graphs: Vec<GraphProto>,
    #[prost(message, optional, tag = "22")]
    sparse_tensor: Option<SparseTensorProto>,
    #[prost(message, repeated, tag = "23")]
    sparse_tensors: Vec<SparseTensorProto>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct SparseTensorProto {
    #[prost(message, optional, tag = "1")]
    values: Option<TensorProto>,
    #[prost(message, optional, tag = "2")]
    indices: Option<TensorProto>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct TensorProto {
    #[prost(int64, repeated, packed = "false", tag = "1")]
    dims: Vec<i64>,
    #[prost(int32, optional, tag = "2")]
    data_type: Option<i32>,
    #[prost(string, optional, tag = "8")]
    name: Option<String>,
    #[prost(message, repeated, tag = "13")]
    external_data: Vec<StringStringEntryProto>,
    /// 1 (`EXTERNAL`) when the data is in another file, named by `external_data`.
    #[prost(int32, optional, tag = "14")]
    data_location: Option<i32>,
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

/// A file that holds weights of the model outside it (ONNX "external data"), and how far into
/// it the model reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExternalData {
    /// The `location` as the model names it, relative to the model's folder.
    pub location: String,
    /// The end of the furthest tensor it holds: the file must have at least these bytes.
    pub bytes_needed: u64,
    /// How many tensors it holds.
    pub tensors: u64,
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
    /// The files its weights are in besides itself, by location.
    pub external_data: Vec<ExternalData>,
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

/// Bytes per element of a fixed-size element type.
fn element_size(code: i32) -> Option<u64> {
    match code {
        2 | 3 | 9 => Some(1),
        4 | 5 | 10 | 16 => Some(2),
        1 | 6 | 12 => Some(4),
        7 | 11 | 13 | 14 => Some(8),
        15 => Some(16),
        _ => None,
    }
}

/// Whether an external-data location stays inside the model's folder: relative, `/` or `\`
/// separated, with no `..` segment. ONNX runtimes join it to the model's folder and open it,
/// so one that leaves the folder reads whatever file it names on the loading machine.
pub fn is_contained(location: &str) -> bool {
    !location.is_empty()
        && !location.starts_with(['/', '\\'])
        && !location.contains(':')
        && !location.contains('\0')
        && location.split(['/', '\\']).all(|segment| segment != "..")
}

/// Where a tensor's data is, if in another file: its location and the end of its bytes there.
fn external_extent(
    tensor: &TensorProto,
    count: Option<u64>,
) -> Result<Option<(String, u64)>, InspectError> {
    if tensor.data_location != Some(1) {
        return Ok(None);
    }
    let name = tensor.name.as_deref().unwrap_or("");
    let field = |key: &str| {
        tensor
            .external_data
            .iter()
            .find(|e| e.key.as_deref() == Some(key))
            .and_then(|e| e.value.as_deref())
    };
    let number = |key: &str| -> Result<Option<u64>, InspectError> {
        field(key)
            .map(|v| {
                v.parse::<u64>().map_err(|_| {
                    InspectError::Malformed(format!(
                        "tensor {name}: external data {key} `{v}` is not a number"
                    ))
                })
            })
            .transpose()
    };
    let location = field("location").ok_or_else(|| {
        InspectError::Malformed(format!("tensor {name}: external data without a location"))
    })?;
    let offset = number("offset")?.unwrap_or(0);
    let length = match number("length")? {
        Some(length) => length,
        None => count
            .zip(element_size(tensor.data_type.unwrap_or(0)))
            .and_then(|(n, size)| n.checked_mul(size))
            .ok_or_else(|| {
                InspectError::Malformed(format!(
                    "tensor {name}: external data without a length, of a type without a fixed size"
                ))
            })?,
    };
    let end = offset.checked_add(length).ok_or_else(|| {
        InspectError::Malformed(format!("tensor {name}: external data offset overflows"))
    })?;
    Ok(Some((location.to_owned(), end)))
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

/// How many elements a tensor's dimensions make, if they are valid and do not overflow.
fn element_count(tensor: &TensorProto) -> Option<u64> {
    tensor.dims.iter().try_fold(1u64, |acc, d| {
        u64::try_from(*d).ok().and_then(|d| acc.checked_mul(d))
    })
}

/// Every tensor a runtime may load from a model: see the module's documentation.
fn model_tensors(model: &ModelProto) -> Vec<&TensorProto> {
    let mut tensors = Vec::new();
    if let Some(graph) = &model.graph {
        graph_tensors(graph, &mut tensors);
    }
    for function in &model.functions {
        attribute_tensors(&function.attribute_proto, &mut tensors);
        for node in &function.node {
            attribute_tensors(&node.attribute, &mut tensors);
        }
    }
    for training in &model.training_info {
        for graph in training.initialization.iter().chain(&training.algorithm) {
            graph_tensors(graph, &mut tensors);
        }
    }
    tensors
}

/// A graph's initializers, dense and sparse, and its nodes' attribute tensors, subgraphs
/// included (as deep as the decoder's recursion limit lets a model nest them).
fn graph_tensors<'a>(graph: &'a GraphProto, tensors: &mut Vec<&'a TensorProto>) {
    tensors.extend(&graph.initializer);
    sparse_parts(&graph.sparse_initializer, tensors);
    for node in &graph.node {
        attribute_tensors(&node.attribute, tensors);
    }
}

fn attribute_tensors<'a>(attributes: &'a [AttributeProto], tensors: &mut Vec<&'a TensorProto>) {
    for attribute in attributes {
        tensors.extend(&attribute.t);
        tensors.extend(&attribute.tensors);
        sparse_parts(
            attribute
                .sparse_tensor
                .iter()
                .chain(&attribute.sparse_tensors),
            tensors,
        );
        for graph in attribute.g.iter().chain(&attribute.graphs) {
            graph_tensors(graph, tensors);
        }
    }
}

/// A sparse tensor's values and indices, each a tensor of its own.
fn sparse_parts<'a>(
    sparse: impl IntoIterator<Item = &'a SparseTensorProto>,
    tensors: &mut Vec<&'a TensorProto>,
) {
    for sparse in sparse {
        tensors.extend(&sparse.values);
        tensors.extend(&sparse.indices);
    }
}

/// Decodes an ONNX model.
pub fn read(bytes: &[u8]) -> Result<OnnxInfo, InspectError> {
    let model = <ModelProto as prost::Message>::decode(bytes)
        .map_err(|e| InspectError::Malformed(format!("not an ONNX protobuf: {e}")))?;
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| InspectError::Malformed("the ONNX model has no graph".into()))?;
    let initializers: Vec<&str> = graph
        .initializer
        .iter()
        .filter_map(|t| t.name.as_deref())
        .collect();
    let mut dtypes: Vec<String> = Vec::new();
    let mut parameter_count = 0u64;
    for tensor in &graph.initializer {
        parameter_count = parameter_count.saturating_add(element_count(tensor).unwrap_or(0));
        let dtype = element_type(tensor.data_type.unwrap_or(0));
        if !dtypes.contains(&dtype) {
            dtypes.push(dtype);
        }
    }
    // By location: the end of the furthest tensor, and how many tensors.
    let mut external: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for tensor in model_tensors(&model) {
        if let Some((location, end)) = external_extent(tensor, element_count(tensor))? {
            if external.len() == MAX_EXTERNAL_FILES && !external.contains_key(&location) {
                return Err(InspectError::TooComplex(format!(
                    "the model names more than {MAX_EXTERNAL_FILES} external data files"
                )));
            }
            let file = external.entry(location).or_default();
            file.0 = file.0.max(end);
            file.1 += 1;
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
        external_data: external
            .into_iter()
            .map(|(location, (bytes_needed, tensors))| ExternalData {
                location,
                bytes_needed,
                tensors,
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    fn entry(key: &str, value: &str) -> StringStringEntryProto {
        StringStringEntryProto {
            key: Some(key.into()),
            value: Some(value.into()),
        }
    }

    fn external(
        name: &str,
        data_type: i32,
        dims: Vec<i64>,
        fields: &[(&str, &str)],
    ) -> TensorProto {
        TensorProto {
            dims,
            data_type: Some(data_type),
            name: Some(name.into()),
            external_data: fields.iter().map(|(k, v)| entry(k, v)).collect(),
            data_location: Some(1),
        }
    }

    fn model(initializer: Vec<TensorProto>) -> Vec<u8> {
        ModelProto {
            graph: Some(GraphProto {
                initializer,
                ..GraphProto::default()
            }),
            ..ModelProto::default()
        }
        .encode_to_vec()
    }

    #[test]
    fn external_data_is_listed_by_file_with_the_furthest_byte_read() {
        let bytes = model(vec![
            // No length: 2 × 3 floats after offset 16 end at byte 40.
            external(
                "a",
                1,
                vec![2, 3],
                &[("location", "w.bin"), ("offset", "16")],
            ),
            external("b", 7, vec![1], &[("location", "w.bin"), ("length", "8")]),
            external(
                "c",
                10,
                vec![4],
                &[("location", "sub/x.bin"), ("offset", "2"), ("length", "8")],
            ),
        ]);
        let info = read(&bytes).unwrap();
        assert_eq!(
            info.external_data,
            [
                ExternalData {
                    location: "sub/x.bin".into(),
                    bytes_needed: 10,
                    tensors: 1
                },
                ExternalData {
                    location: "w.bin".into(),
                    bytes_needed: 40,
                    tensors: 2
                },
            ]
        );
        assert_eq!(info.parameter_count, 11);
    }

    #[test]
    fn external_data_is_found_wherever_a_runtime_may_load_a_tensor() {
        let at = |location: &str| external(location, 1, vec![1], &[("location", location)]);
        let constant = |tensor| NodeProto {
            op_type: Some("Constant".into()),
            attribute: vec![AttributeProto {
                t: Some(tensor),
                ..AttributeProto::default()
            }],
        };
        let sparse = |values, indices| SparseTensorProto {
            values: Some(values),
            indices: Some(indices),
        };
        let graph = |initializer, node| GraphProto {
            initializer,
            node,
            ..GraphProto::default()
        };
        let branch = AttributeProto {
            g: Some(graph(
                vec![at("if/init")],
                vec![constant(at("if/constant"))],
            )),
            graphs: vec![graph(vec![], vec![constant(at("scan/constant"))])],
            tensors: vec![at("attr/tensors")],
            sparse_tensor: Some(sparse(at("attr/sparse-v"), at("attr/sparse-i"))),
            sparse_tensors: vec![sparse(at("attr/sparses-v"), at("attr/sparses-i"))],
            ..AttributeProto::default()
        };
        let model = ModelProto {
            graph: Some(GraphProto {
                sparse_initializer: vec![sparse(at("sparse/values"), at("sparse/indices"))],
                node: vec![
                    constant(at("constant")),
                    NodeProto {
                        op_type: Some("If".into()),
                        attribute: vec![branch],
                    },
                ],
                ..GraphProto::default()
            }),
            functions: vec![FunctionProto {
                node: vec![constant(at("function/constant"))],
                attribute_proto: vec![AttributeProto {
                    t: Some(at("function/default")),
                    ..AttributeProto::default()
                }],
            }],
            training_info: vec![TrainingInfoProto {
                initialization: Some(graph(vec![at("training/init")], vec![])),
                algorithm: Some(graph(vec![], vec![constant(at("training/step"))])),
            }],
            ..ModelProto::default()
        };
        let info = read(&model.encode_to_vec()).unwrap();
        let found: Vec<&str> = info
            .external_data
            .iter()
            .map(|e| e.location.as_str())
            .collect();
        let mut expected = vec![
            "if/init",
            "if/constant",
            "scan/constant",
            "attr/tensors",
            "attr/sparse-v",
            "attr/sparse-i",
            "attr/sparses-v",
            "attr/sparses-i",
            "sparse/values",
            "sparse/indices",
            "constant",
            "function/constant",
            "function/default",
            "training/init",
            "training/step",
        ];
        expected.sort_unstable();
        assert_eq!(found, expected);
        // Only the main graph's dense initializers are the model's parameters.
        assert_eq!((info.parameter_count, info.node_count), (0, 2));
    }

    #[test]
    fn unreadable_external_data_is_malformed() {
        for fields in [
            &[("offset", "0")][..],
            &[("location", "w.bin"), ("offset", "-1")],
            &[
                ("location", "w.bin"),
                ("offset", "18446744073709551615"),
                ("length", "2"),
            ],
        ] {
            let bytes = model(vec![external("t", 1, vec![1], fields)]);
            assert!(
                matches!(read(&bytes), Err(InspectError::Malformed(_))),
                "{fields:?}"
            );
        }
        // A string tensor has no fixed size: its length must be given.
        let bytes = model(vec![external("s", 8, vec![3], &[("location", "w.bin")])]);
        assert!(matches!(read(&bytes), Err(InspectError::Malformed(_))));
    }

    #[test]
    fn locations_outside_the_folder_are_told_apart() {
        for inside in ["w.bin", "sub/w.bin", "./w.bin", "a\\b.bin", "..w.bin"] {
            assert!(is_contained(inside), "{inside}");
        }
        for outside in [
            "",
            "/etc/passwd",
            "../w.bin",
            "a/../../w.bin",
            "..\\w.bin",
            "C:w.bin",
            "\\\\host\\share",
        ] {
            assert!(!is_contained(outside), "{outside}");
        }
    }
}
