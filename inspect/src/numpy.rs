//! numpy `.npy` files (alone, or as the entries of an `.npz` archive): a magic string, a
//! version, a header that is a Python dict literal (`descr`, `fortran_order`, `shape`), then
//! the data. Arrays of plain numbers are inert; an array with object fields stores a pickle
//! after the header (`np.load(allow_pickle=True)` unpickles it), which is walked.

use std::io::BufRead;

use crate::{Context, InspectError, PICKLE_CLEARANCE, Report, pickle, read_pickles};

/// The signature of a `.npy` file.
pub const MAGIC: &[u8] = b"\x93NUMPY";
/// Longest header read (numpy itself refuses headers over 10,000 bytes by default).
const MAX_HEADER: usize = 1 << 20;

/// What a header's `descr` says, read strictly: numpy evaluates the header as a Python
/// literal and accepts many spellings of a type, so anything but the plain forms it writes
/// is not vouched for.
#[derive(Debug, PartialEq, Eq)]
enum Descr {
    /// Plain values only.
    Plain,
    /// An object type somewhere: the data is a pickle.
    Objects,
    /// Not a form read here.
    Unread,
}

/// A plain type code: an optional byte order, a kind, a size (`<f8`, `|b1`, `<U10`, `<M8[ns]`).
fn plain_code(code: &str) -> bool {
    let code = code.strip_prefix(['<', '>', '|', '=']).unwrap_or(code);
    let mut chars = code.chars();
    let Some(kind) = chars.next() else {
        return false;
    };
    let rest = chars.as_str();
    let (size, unit) = match rest.split_once('[') {
        Some((size, unit)) if matches!(kind, 'M' | 'm') => (size, Some(unit)),
        Some(_) => return false,
        None => (rest, None),
    };
    "biufcSUVMm".contains(kind)
        && !size.is_empty()
        && size.bytes().all(|b| b.is_ascii_digit())
        && unit.is_none_or(|u| {
            u.strip_suffix(']')
                .is_some_and(|u| !u.is_empty() && u.bytes().all(|b| b.is_ascii_alphanumeric()))
        })
}

/// The quoted strings and the other characters of a header, in order; `None` if a string
/// holds a backslash (an escape) or is not closed.
fn tokens(header: &str) -> Option<Vec<(bool, String)>> {
    let mut out = Vec::new();
    let mut chars = header.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                let mut text = String::new();
                loop {
                    match chars.next()? {
                        '\\' => return None,
                        q if q == c => break,
                        other => text.push(other),
                    }
                }
                out.push((true, text));
            }
            c if c.is_whitespace() => {}
            c => out.push((false, c.to_string())),
        }
    }
    Some(out)
}

fn descr(header: &str) -> Descr {
    // A comment, or a key given twice (the last one wins in Python), is not read here.
    if header.contains('#') || header.matches("descr").count() != 1 {
        return Descr::Unread;
    }
    let Some(tokens) = tokens(header) else {
        return Descr::Unread;
    };
    // Adjacent string literals are one string to Python (`'des' 'cr'`).
    if tokens.windows(2).any(|pair| pair[0].0 && pair[1].0) {
        return Descr::Unread;
    }
    let Some(at) = tokens
        .iter()
        .position(|(quoted, t)| *quoted && t == "descr")
    else {
        return Descr::Unread;
    };
    let rest = &tokens[at + 1..];
    if rest.first().map(|(_, t)| t.as_str()) != Some(":") {
        return Descr::Unread;
    }
    match rest.get(1) {
        Some((true, code))
            if code
                .trim_start_matches(['<', '>', '|', '='])
                .starts_with('O') =>
        {
            Descr::Objects
        }
        Some((true, code)) if plain_code(code) => Descr::Plain,
        // A structured dtype: a list of ('name', 'code') pairs (a shape may follow a code).
        Some((false, open)) if open == "[" => {
            let mut objects = false;
            let mut i = 2;
            loop {
                match (
                    rest.get(i),
                    rest.get(i + 1),
                    rest.get(i + 2),
                    rest.get(i + 3),
                ) {
                    (
                        Some((false, p)),
                        Some((true, _)),
                        Some((false, comma)),
                        Some((true, code)),
                    ) if p == "(" && comma == "," => {
                        if code
                            .trim_start_matches(['<', '>', '|', '='])
                            .starts_with('O')
                        {
                            objects = true;
                        } else if !plain_code(code) {
                            return Descr::Unread;
                        }
                        i += 4;
                        // Skip an optional shape, up to the pair's closing parenthesis.
                        let mut depth = 1;
                        while depth > 0 {
                            match rest.get(i) {
                                Some((false, t)) if t == "(" => depth += 1,
                                Some((false, t)) if t == ")" => depth -= 1,
                                Some((false, t))
                                    if t.chars().all(|c| c.is_ascii_digit() || c == ',') => {}
                                _ => return Descr::Unread,
                            }
                            i += 1;
                        }
                        if let Some((false, t)) = rest.get(i)
                            && t == ","
                        {
                            i += 1;
                        }
                    }
                    (Some((false, close)), ..) if close == "]" => {
                        return if objects {
                            Descr::Objects
                        } else {
                            Descr::Plain
                        };
                    }
                    _ => return Descr::Unread,
                }
            }
        }
        _ => Descr::Unread,
    }
}

/// Reads one `.npy` stream into `report`.
pub fn inspect<R: BufRead>(
    input: &mut R,
    cx: &mut Context<'_>,
    report: &mut Report,
) -> Result<(), InspectError> {
    let mut preamble = [0u8; 8];
    input
        .read_exact(&mut preamble)
        .map_err(|_| InspectError::Malformed("the .npy preamble is cut short".into()))?;
    if &preamble[..6] != MAGIC {
        return Err(InspectError::Malformed("no .npy signature".into()));
    }
    let header_len = match preamble[6] {
        1 => {
            let mut len = [0u8; 2];
            input.read_exact(&mut len)?;
            usize::from(u16::from_le_bytes(len))
        }
        2 | 3 => {
            let mut len = [0u8; 4];
            input.read_exact(&mut len)?;
            u32::from_le_bytes(len) as usize
        }
        other => {
            return Err(InspectError::Malformed(format!(
                "unknown .npy version {other}"
            )));
        }
    };
    if header_len > MAX_HEADER {
        return Err(InspectError::TooComplex(format!(
            "a .npy header of {header_len} bytes"
        )));
    }
    let mut header = vec![0u8; header_len];
    input
        .read_exact(&mut header)
        .map_err(|_| InspectError::Malformed("the .npy header is cut short".into()))?;
    let header = String::from_utf8_lossy(&header);
    report.meta("npy_header", header.trim());
    match descr(&header) {
        Descr::Plain => {
            report.clear("a numpy array of plain values, nothing executable");
            return Ok(());
        }
        Descr::Unread => {
            report.meta(
                "note",
                "a dtype written in a form not read here: not inspected",
            );
            return Ok(());
        }
        Descr::Objects => {}
    }
    report.meta("npy_objects", true);
    match read_pickles(input, cx, report)? {
        pickle::Stream::Pickles => {
            report.clear(PICKLE_CLEARANCE);
            Ok(())
        }
        pickle::Stream::NotPickle { .. } => Err(InspectError::Malformed(
            "an object array whose data is not a pickle".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::{Descr, descr};

    #[test]
    fn dtypes_are_read_strictly() {
        let plain = "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }";
        assert_eq!(descr(plain), Descr::Plain);
        assert_eq!(descr("{'descr': '<M8[ns]', 'shape': (2,), }"), Descr::Plain);
        assert_eq!(
            descr("{'descr': '|O', 'fortran_order': False, 'shape': (2,), }"),
            Descr::Objects
        );
        let structured = "{'descr': [('a', '<f8'), ('b', '<i4', (2, 3))], 'shape': (2,), }";
        assert_eq!(descr(structured), Descr::Plain);
        let with_object = "{'descr': [('a', '<f8'), ('b', 'O')], 'shape': (2,), }";
        assert_eq!(descr(with_object), Descr::Objects);
        for sneaky in [
            "{'descr': 'object', 'shape': (2,), }",
            "{'descr': '\\x4f', 'shape': (2,), }",
            "{'descr': 'i4,O', 'shape': (2,), }",
            "{'descr': '(2,)O', 'shape': (2,), }",
            "{'descr': [(\"a'\", '|O')], 'shape': (2,), }",
            "{'descr': '<f8', 'descr': '|O', 'shape': (1,), }",
            "{#'descr': '<f8',\n'descr': '|O', 'shape': (1,), }",
            "{'des' 'cr': '|O', 'descr': '<f8', 'shape': (1,), }",
        ] {
            assert_ne!(descr(sneaky), Descr::Plain, "{sneaky}");
        }
    }
}
