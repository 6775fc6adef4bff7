//! The ONNX runtime (tract, pure Rust): loading a model from its bytes, what it declares, and
//! one run under a deadline, checked between operators.

use std::{
    collections::BTreeSet,
    path::Path,
    sync::{Arc, LazyLock},
    time::Instant,
};

use tract_onnx::{
    pb,
    prelude::{
        Framework, InferenceModel, InferenceModelExt, IntoRunnable, IntoTensor, TDim, TValue,
        Tensor, TractResult, TypedRunnableModel,
    },
    tract_core::plan,
    tract_hir::infer::GenericFactoid,
};

use super::tensors::InputSpec;

/// Every operator the runtime knows, registered once.
static ONNX: LazyLock<tract_onnx::Onnx> = LazyLock::new(tract_onnx::onnx);

/// Why a model cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// It uses operators the runtime does not implement (by domain and name).
    #[error("the model uses operators the runtime does not support: {}", .0.join(", "))]
    Unsupported(Vec<String>),
    /// Its bytes are not an ONNX model the runtime can read.
    #[error("the model cannot be loaded: {0}")]
    Invalid(String),
}

/// A loaded model, ready to run.
pub struct Loaded {
    plan: Arc<TypedRunnableModel>,
    /// Its inputs, in order.
    pub inputs: Vec<InputSpec>,
    /// Its outputs' names, in order.
    pub outputs: Vec<String>,
    /// How many bytes its files have (what it weighs in the pool).
    pub bytes: u64,
}

/// Why a run stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("the time limit was reached")]
    TimedOut,
    #[error("{0}")]
    Failed(String),
}

/// Marks the deadline's error apart from the model's own.
#[derive(Debug, thiserror::Error)]
#[error("the time limit was reached")]
struct PastDeadline;

/// The names (`domain:op`, or `op` in the default domain) of the operators `graph` and its
/// subgraphs use that the runtime does not implement.
fn unsupported(graph: &pb::GraphProto, into: &mut BTreeSet<String>) {
    for node in &graph.node {
        if !ONNX.op_register.0.contains_key(&node.op_type) {
            into.insert(if node.domain.is_empty() || node.domain == "ai.onnx" {
                node.op_type.clone()
            } else {
                format!("{}:{}", node.domain, node.op_type)
            });
        }
        for attribute in &node.attribute {
            attribute
                .g
                .iter()
                .chain(&attribute.graphs)
                .for_each(|g| unsupported(g, into));
        }
    }
}

/// An attribute of `node`, by name.
fn attribute<'n>(node: &'n pb::NodeProto, name: &str) -> Option<&'n pb::AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

fn int_attribute(name: &str, value: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i: value,
        ..Default::default()
    }
}

/// Has each binary `TreeEnsembleClassifier` (two labels, every leaf voting for the first:
/// what skl2onnx writes for a binary scikit-learn forest) take its label from its own
/// probabilities. The runtime gets those probabilities right but picks the label from the
/// single score column before it completes it, so it always answers the first class; the
/// label is what ONNX says it is, the class of the highest probability.
fn mend_binary_tree_labels(graph: &mut pb::GraphProto) {
    let mut mended = Vec::with_capacity(graph.node.len());
    for mut node in std::mem::take(&mut graph.node) {
        let labels = attribute(&node, "classlabels_int64s")
            .map(|a| (a.ints.len(), pb::tensor_proto::DataType::Int64))
            .or_else(|| {
                attribute(&node, "classlabels_strings")
                    .map(|a| (a.strings.len(), pb::tensor_proto::DataType::String))
            });
        let binary = node.op_type == "TreeEnsembleClassifier"
            && matches!(labels, Some((2, _)))
            && attribute(&node, "class_ids").is_some_and(|a| a.ints.iter().all(|&c| c == 0))
            && node.output.len() == 2
            && !node.output.iter().any(String::is_empty);
        let Some((_, dtype)) = labels.filter(|_| binary) else {
            mended.push(node);
            continue;
        };
        let unused = format!("{}.runtime_label", node.output[0]);
        let label = std::mem::replace(&mut node.output[0], unused);
        let scores = node.output[1].clone();
        let classes = pb::TensorProto {
            name: format!("{label}.classes"),
            dims: vec![2],
            data_type: dtype as i32,
            int64_data: attribute(&node, "classlabels_int64s")
                .map(|a| a.ints.clone())
                .unwrap_or_default(),
            string_data: attribute(&node, "classlabels_strings")
                .map(|a| a.strings.clone())
                .unwrap_or_default(),
            ..Default::default()
        };
        let constant = pb::NodeProto {
            op_type: "Constant".into(),
            output: vec![classes.name.clone()],
            attribute: vec![pb::AttributeProto {
                name: "value".into(),
                r#type: pb::attribute_proto::AttributeType::Tensor as i32,
                t: Some(classes.clone()),
                ..Default::default()
            }],
            ..Default::default()
        };
        let winner = pb::NodeProto {
            op_type: "ArgMax".into(),
            input: vec![scores],
            output: vec![format!("{label}.winner")],
            attribute: vec![int_attribute("axis", 1), int_attribute("keepdims", 0)],
            ..Default::default()
        };
        let lookup = pb::NodeProto {
            op_type: "Gather".into(),
            input: vec![classes.name, format!("{label}.winner")],
            output: vec![label],
            attribute: vec![int_attribute("axis", 0)],
            ..Default::default()
        };
        mended.extend([node, constant, winner, lookup]);
    }
    graph.node = mended;
}

/// Gives every input dimension the model leaves unnamed (`None` in skl2onnx's `[None, 10]`)
/// a symbol of its own, as a named one (`batch`) has, so its size is taken from each call.
fn name_unknown_dims(model: &mut InferenceModel) -> TractResult<()> {
    let symbols = model.symbols.clone();
    for ix in 0..model.input_outlets()?.len() {
        let fact = model.input_fact_mut(ix)?;
        if fact.shape.is_open() {
            continue;
        }
        let rank = fact.shape.dims().count();
        for axis in 0..rank {
            if fact.shape.dim(axis) == Some(GenericFactoid::Any) {
                let name = symbols.new_with_prefix(if axis == 0 { "batch" } else { "dim" });
                fact.shape.set_dim(axis, TDim::Sym(name));
            }
        }
    }
    Ok(())
}

/// Loads the ONNX model in `bytes`. A model with external data reads it from `dir`, where its
/// files were laid out; `bytes` counts them all.
pub fn load(model: &[u8], dir: Option<&Path>, bytes: u64) -> Result<Loaded, LoadError> {
    let invalid = |e: tract_onnx::prelude::TractError| LoadError::Invalid(format!("{e:#}"));
    let mut proto = ONNX.proto_model_for_read(&mut &*model).map_err(invalid)?;
    let graph = proto
        .graph
        .as_mut()
        .ok_or_else(|| LoadError::Invalid("it has no graph".into()))?;
    let mut missing = BTreeSet::new();
    unsupported(graph, &mut missing);
    mend_binary_tree_labels(graph);
    if !missing.is_empty() {
        return Err(LoadError::Unsupported(missing.into_iter().collect()));
    }
    let dir = dir.and_then(Path::to_str);
    let parsed = ONNX.parse(&proto, dir).map_err(invalid)?;
    if !parsed.unresolved_inputs.is_empty() {
        return Err(LoadError::Invalid(format!(
            "inputs {:?} are used but never defined",
            parsed.unresolved_inputs
        )));
    }
    let mut model = parsed.model;
    name_unknown_dims(&mut model).map_err(invalid)?;
    let plan = model
        .into_optimized()
        .and_then(IntoRunnable::into_runnable)
        .map_err(invalid)?;
    let typed = plan.model();
    let mut inputs = Vec::new();
    for (ix, outlet) in typed.input_outlets().map_err(invalid)?.iter().enumerate() {
        let fact = typed.input_fact(ix).map_err(invalid)?;
        inputs.push(InputSpec {
            name: typed.node(outlet.node).name.clone(),
            dtype: fact.datum_type,
            dims: fact.shape.iter().map(TDim::as_i64).collect(),
        });
    }
    let outputs = typed
        .output_outlets()
        .map_err(invalid)?
        .iter()
        .map(|outlet| {
            typed
                .outlet_label(*outlet)
                .map_or_else(|| typed.node(outlet.node).name.clone(), str::to_owned)
        })
        .collect();
    Ok(Loaded {
        plan,
        inputs,
        outputs,
        bytes,
    })
}

impl Loaded {
    /// Runs the model on `inputs` (in the model's order), giving up between two operators
    /// once `deadline` has passed.
    pub fn run(&self, inputs: Vec<Tensor>, deadline: Instant) -> Result<Vec<Tensor>, RunError> {
        let values = inputs.into_iter().map(TValue::from).collect();
        let mut state = self
            .plan
            .spawn()
            .map_err(|e| RunError::Failed(format!("{e:#}")))?;
        let ran: TractResult<_> = state.run_plan_with_eval(values, |ctx, op_state, node, input| {
            if Instant::now() >= deadline {
                return Err(PastDeadline.into());
            }
            plan::eval(ctx, op_state, node, input)
        });
        let outputs = ran.map_err(|e| {
            if e.downcast_ref::<PastDeadline>().is_some() {
                RunError::TimedOut
            } else {
                RunError::Failed(format!("{e:#}"))
            }
        })?;
        Ok(outputs.into_iter().map(IntoTensor::into_tensor).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/inference")
                .join(name),
        )
        .unwrap()
    }

    #[test]
    fn unsupported_operators_are_named_before_anything_runs() {
        let Err(LoadError::Unsupported(ops)) = load(&fixture("unsupported.onnx"), None, 0) else {
            panic!("loaded a model with an unknown operator");
        };
        assert_eq!(ops, ["com.example:Frobnicate"]);
    }

    #[test]
    fn a_run_past_its_deadline_stops_between_operators() {
        let model = load(&fixture("heavy.onnx"), None, 0).unwrap();
        let x = Tensor::from_shape(&[64, 256], &vec![1.0f32; 64 * 256]).unwrap();
        let past = Instant::now();
        assert!(matches!(
            model.run(vec![x.clone()], past),
            Err(RunError::TimedOut)
        ));
        let later = Instant::now() + std::time::Duration::from_secs(60);
        let y = model.run(vec![x], later).unwrap();
        assert_eq!(y[0].shape(), &[64, 256]);
    }
}
