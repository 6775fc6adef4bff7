//! Recognising model file formats from their first bytes, and checking a declared format
//! against them.

use crate::{
    entities::enums::ModelFormat,
    error::{AppError, AppResult},
};

use modelhub_inspect::magic::{
    GGUF_MAGIC, ZIP_MAGIC, is_hdf5, is_joblib_compressed, is_pickle, is_safetensors,
};

/// Whether the file's first bytes fit `format`. ONNX and OTHER are accepted as declared.
fn matches(format: ModelFormat, head: &[u8], size: u64) -> bool {
    match format {
        ModelFormat::Pickle => is_pickle(head),
        ModelFormat::Joblib => is_pickle(head) || is_joblib_compressed(head),
        ModelFormat::H5 => is_hdf5(head),
        ModelFormat::Keras => head.starts_with(ZIP_MAGIC) || is_hdf5(head),
        ModelFormat::Pth => head.starts_with(ZIP_MAGIC) || is_pickle(head),
        ModelFormat::Safetensors => is_safetensors(head, size),
        ModelFormat::Gguf => head.starts_with(GGUF_MAGIC),
        ModelFormat::Onnx | ModelFormat::Other => true,
    }
}

fn extension(filename: Option<&str>) -> String {
    filename
        .and_then(|f| f.rsplit_once('.'))
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .unwrap_or_default()
}

/// Guesses the format from the content, using the file name's extension where the content
/// alone is ambiguous (a zip may be PyTorch or Keras; a pickle may be joblib).
pub fn detect(head: &[u8], size: u64, filename: Option<&str>) -> ModelFormat {
    let ext = extension(filename);
    if head.starts_with(GGUF_MAGIC) {
        ModelFormat::Gguf
    } else if is_hdf5(head) {
        if ext == "keras" {
            ModelFormat::Keras
        } else {
            ModelFormat::H5
        }
    } else if head.starts_with(ZIP_MAGIC) {
        if ext == "keras" {
            ModelFormat::Keras
        } else {
            ModelFormat::Pth
        }
    } else if is_safetensors(head, size) {
        ModelFormat::Safetensors
    } else if is_pickle(head) {
        match ext.as_str() {
            "joblib" => ModelFormat::Joblib,
            "pth" | "pt" | "bin" => ModelFormat::Pth,
            _ => ModelFormat::Pickle,
        }
    } else if is_joblib_compressed(head) && ext == "joblib" {
        ModelFormat::Joblib
    } else if ext == "onnx" {
        ModelFormat::Onnx
    } else {
        ModelFormat::Other
    }
}

/// The format to record: the declared one if the content fits it, else `BAD_USER_INPUT`;
/// detected from the content when none is declared.
pub fn resolve(
    declared: Option<ModelFormat>,
    head: &[u8],
    size: u64,
    filename: Option<&str>,
) -> AppResult<ModelFormat> {
    match declared {
        None => Ok(detect(head, size, filename)),
        Some(format) if matches(format, head, size) => Ok(format),
        Some(format) => Err(AppError::bad_input(
            "format",
            format!(
                "the file's content is not {} (it looks like {})",
                label(format),
                label(detect(head, size, filename))
            ),
        )),
    }
}

/// The format's name as in the API.
pub fn label(format: ModelFormat) -> &'static str {
    match format {
        ModelFormat::Joblib => "JOBLIB",
        ModelFormat::Pickle => "PICKLE",
        ModelFormat::H5 => "H5",
        ModelFormat::Keras => "KERAS",
        ModelFormat::Pth => "PTH",
        ModelFormat::Safetensors => "SAFETENSORS",
        ModelFormat::Onnx => "ONNX",
        ModelFormat::Gguf => "GGUF",
        ModelFormat::Other => "OTHER",
    }
}

/// The format a client names by its API name (`JOBLIB`) or its usual file extension
/// (`joblib`, `pkl`, `pt`), in any case.
pub fn from_name(name: &str) -> Option<ModelFormat> {
    Some(match name.trim().to_ascii_lowercase().as_str() {
        "joblib" => ModelFormat::Joblib,
        "pickle" | "pkl" => ModelFormat::Pickle,
        "h5" | "hdf5" => ModelFormat::H5,
        "keras" => ModelFormat::Keras,
        "pth" | "pt" | "pytorch" => ModelFormat::Pth,
        "safetensors" => ModelFormat::Safetensors,
        "onnx" => ModelFormat::Onnx,
        "gguf" => ModelFormat::Gguf,
        "other" | "bin" => ModelFormat::Other,
        _ => return None,
    })
}

/// The usual file extension of a format, for download file names.
pub fn file_extension(format: ModelFormat) -> &'static str {
    match format {
        ModelFormat::Joblib => "joblib",
        ModelFormat::Pickle => "pkl",
        ModelFormat::H5 => "h5",
        ModelFormat::Keras => "keras",
        ModelFormat::Pth => "pth",
        ModelFormat::Safetensors => "safetensors",
        ModelFormat::Onnx => "onnx",
        ModelFormat::Gguf => "gguf",
        ModelFormat::Other => "bin",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_formats_from_magic_bytes() {
        assert_eq!(detect(b"GGUF\x03\x00", 6, None), ModelFormat::Gguf);
        assert_eq!(
            detect(b"\x89HDF\r\n\x1a\n....", 12, Some("m.h5")),
            ModelFormat::H5
        );
        assert_eq!(
            detect(b"PK\x03\x04....", 8, Some("m.pth")),
            ModelFormat::Pth
        );
        assert_eq!(
            detect(b"PK\x03\x04....", 8, Some("m.keras")),
            ModelFormat::Keras
        );
        assert_eq!(
            detect(b"\x80\x04\x95", 3, Some("m.joblib")),
            ModelFormat::Joblib
        );
        assert_eq!(
            detect(b"\x80\x04\x95", 3, Some("m.pkl")),
            ModelFormat::Pickle
        );
        let mut st = 2u64.to_le_bytes().to_vec();
        st.extend_from_slice(b"{}");
        assert_eq!(detect(&st, 10, None), ModelFormat::Safetensors);
        assert_eq!(detect(b"\x08\x07", 2, Some("m.onnx")), ModelFormat::Onnx);
    }

    #[test]
    fn rejects_a_declared_format_the_content_contradicts() {
        assert!(resolve(Some(ModelFormat::Gguf), b"\x80\x04", 2, None).is_err());
        assert!(resolve(Some(ModelFormat::H5), b"PK\x03\x04", 4, None).is_err());
        assert!(resolve(Some(ModelFormat::Onnx), b"anything", 8, None).is_ok());
    }
}
