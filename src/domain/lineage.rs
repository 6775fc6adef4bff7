//! Lineage: how a model was made from its base (the relations the Hugging Face model card's
//! `base_model_relation` names), the external reference to a base outside this hub, the
//! datasets a model was trained on and the link to its training run.

use async_graphql::Enum;

use crate::error::{AppError, AppResult};

/// The most datasets a model names.
pub const MAX_DATASETS: usize = 50;
/// The longest dataset name or link, and the longest external base reference.
pub const MAX_NAME: usize = 255;
/// The longest training-run link.
pub const MAX_LINK: usize = 1024;

/// How a model was made from its base model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(name = "ModelRelation")]
pub enum Relation {
    /// Trained further on new data.
    Finetune,
    /// An adapter (LoRA, …) applied on top of it.
    Adapter,
    /// Its weights at a lower precision.
    Quantized,
    /// Merged from it and others.
    Merge,
}

impl Relation {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Finetune => "finetune",
            Self::Adapter => "adapter",
            Self::Quantized => "quantized",
            Self::Merge => "merge",
        }
    }

    /// The relation a stored or model-card value names.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "finetune" | "fine-tune" | "finetuned" => Some(Self::Finetune),
            "adapter" => Some(Self::Adapter),
            "quantized" | "quantization" => Some(Self::Quantized),
            "merge" | "merged" => Some(Self::Merge),
            _ => None,
        }
    }
}

/// One line of text of at most `max` bytes, trimmed; `field` names it in errors.
fn line(field: &str, raw: &str, max: usize) -> AppResult<String> {
    let value = raw.trim();
    if value.is_empty() || value.len() > max || value.chars().any(char::is_control) {
        return Err(AppError::bad_input(
            field,
            format!("must be one line of 1 to {max} bytes"),
        ));
    }
    Ok(value.to_owned())
}

/// An external base model: a repository id such as `meta-llama/Llama-3.1-8B`, or a link.
pub fn reference(field: &str, raw: &str) -> AppResult<String> {
    line(field, raw, MAX_NAME)
}

/// Dataset names or links: at most [`MAX_DATASETS`], duplicates dropped, order kept.
pub fn datasets(field: &str, raw: &[String]) -> AppResult<Vec<String>> {
    if raw.len() > MAX_DATASETS {
        return Err(AppError::bad_input(
            field,
            format!("at most {MAX_DATASETS} datasets"),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(raw.len());
    for name in raw {
        let name = line(field, name, MAX_NAME)?;
        if !out.contains(&name) {
            out.push(name);
        }
    }
    Ok(out)
}

/// A training run's link: an `http` or `https` URL.
pub fn training_run(field: &str, raw: &str) -> AppResult<String> {
    let link = line(field, raw, MAX_LINK)?;
    match url::Url::parse(&link) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Ok(link),
        _ => Err(AppError::bad_input(field, "must be an http(s) link")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lineage_values_are_checked() {
        assert_eq!(Relation::parse("Fine-Tune"), Some(Relation::Finetune));
        assert_eq!(Relation::parse("quantized"), Some(Relation::Quantized));
        assert_eq!(Relation::parse("distilled"), None);
        assert_eq!(
            datasets("d", &["squad".into(), " squad ".into(), "glue".into()]).unwrap(),
            ["squad", "glue"]
        );
        assert!(datasets("d", &vec!["x".to_owned(); MAX_DATASETS + 1]).is_err());
        assert!(datasets("d", &["two\nlines".into()]).is_err());
        assert!(training_run("t", "https://wandb.ai/team/runs/1").is_ok());
        for bad in ["javascript:alert(1)", "ftp://runs/1", "not a link", ""] {
            assert!(training_run("t", bad).is_err(), "{bad}");
        }
        assert!(reference("r", &"a".repeat(MAX_NAME + 1)).is_err());
    }
}
