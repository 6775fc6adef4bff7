//! A static walk over pickle opcodes (protocols 0–5) that never executes anything. It keeps a
//! small model of the unpickler's stack and memo, enough to resolve every import — including
//! names fetched back from the memo and `STACK_GLOBAL` operands — to follow joblib's inline
//! numpy arrays, and to read the class and scikit-learn version of the object it rebuilds.
//! An import whose name cannot be resolved statically is itself a finding.

use std::{
    collections::HashMap,
    io::{self, Read},
    rc::Rc,
};

use crate::{Budget, Finding, InspectError, Severity, imports};

/// Longest string kept (longer ones are treated as opaque values).
const MAX_STRING: usize = 4096;
/// Most items of a container that are tracked.
const MAX_ITEMS: usize = 64;
/// Deepest stack accepted.
const MAX_STACK: usize = 1_000_000;
/// Most memo entries accepted.
const MAX_MEMO: usize = 4_000_000;
/// Deepest nesting of pickles inside joblib object arrays.
const MAX_NESTING: usize = 8;

/// A value on the simulated stack.
#[derive(Debug, Clone, PartialEq)]
enum Val {
    Str(String),
    Int(i64),
    Bool(bool),
    None,
    Global(String, String),
    Tuple(Vec<Rc<Val>>),
    List(Vec<Rc<Val>>),
    Dict(Vec<(Rc<Val>, Rc<Val>)>),
    Object {
        class: Option<(String, String)>,
        args: Vec<Rc<Val>>,
        state: Option<Rc<Val>>,
    },
    Mark,
    Opaque,
}

impl Val {
    fn get(&self, key: &str) -> Option<&Rc<Val>> {
        match self {
            Val::Dict(items) => items
                .iter()
                .find(|(k, _)| matches!(k.as_ref(), Val::Str(s) if s == key))
                .map(|(_, v)| v),
            _ => None,
        }
    }
}

/// What one walk found.
#[derive(Debug, Default)]
pub struct PickleSummary {
    /// Every import, in order of first appearance, with its verdict.
    pub findings: Vec<Finding>,
    /// The class of the rebuilt top-level object, e.g. `sklearn.ensemble._forest.RandomForestClassifier`.
    pub root_class: Option<String>,
    /// `_sklearn_version` from the top-level object's state.
    pub sklearn_version: Option<String>,
    /// Inline numpy arrays (joblib) that were skipped over.
    pub arrays: u64,
    /// Persistent ids seen (PyTorch storages).
    pub persistent_ids: u64,
    /// Opcodes read.
    pub opcodes: u64,
}

impl PickleSummary {
    fn note(&mut self, module: &str, name: &str) {
        if self
            .findings
            .iter()
            .any(|f| f.module == module && f.name == name)
        {
            return;
        }
        let verdict = imports::classify(module, name);
        self.findings.push(Finding {
            module: module.to_owned(),
            name: name.to_owned(),
            severity: verdict.severity,
            reason: verdict.reason,
        });
    }

    fn dynamic(&mut self, what: &str) {
        if self
            .findings
            .iter()
            .any(|f| f.name == what && f.module == "<dynamic>")
        {
            return;
        }
        self.findings.push(Finding {
            module: "<dynamic>".into(),
            name: what.into(),
            severity: Severity::Dangerous,
            reason: "an import or call whose target is computed while loading cannot be checked"
                .into(),
        });
    }
}

struct Walker<'a, R: Read> {
    input: &'a mut R,
    budget: &'a mut Budget,
    /// Whether the file is read by joblib, which puts array bytes after a wrapper's BUILD.
    joblib: bool,
    /// How deep in nested pickles this walker is.
    depth: usize,
    stack: Vec<Rc<Val>>,
    memo: HashMap<u64, Rc<Val>>,
    summary: &'a mut PickleSummary,
}

fn io_error(err: io::Error) -> InspectError {
    if err.kind() == io::ErrorKind::UnexpectedEof {
        InspectError::Malformed("the pickle ends before its STOP opcode".into())
    } else {
        InspectError::Io(err)
    }
}

impl<R: Read> Walker<'_, R> {
    fn byte(&mut self) -> Result<u8, InspectError> {
        let mut b = [0u8; 1];
        self.input.read_exact(&mut b).map_err(io_error)?;
        Ok(b[0])
    }

    fn bytes<const N: usize>(&mut self) -> Result<[u8; N], InspectError> {
        let mut b = [0u8; N];
        self.input.read_exact(&mut b).map_err(io_error)?;
        Ok(b)
    }

    fn u32le(&mut self) -> Result<u64, InspectError> {
        Ok(u64::from(u32::from_le_bytes(self.bytes::<4>()?)))
    }

    fn u64le(&mut self) -> Result<u64, InspectError> {
        Ok(u64::from_le_bytes(self.bytes::<8>()?))
    }

    /// Reads `len` bytes as text if short enough, else skips them.
    fn text(&mut self, len: u64) -> Result<Val, InspectError> {
        if len as usize > MAX_STRING {
            self.skip(len)?;
            return Ok(Val::Opaque);
        }
        let mut buf = vec![0u8; len as usize];
        self.input.read_exact(&mut buf).map_err(io_error)?;
        Ok(match String::from_utf8(buf) {
            Ok(s) => Val::Str(s),
            Err(_) => Val::Opaque,
        })
    }

    fn skip(&mut self, len: u64) -> Result<(), InspectError> {
        let copied = io::copy(&mut (&mut *self.input).take(len), &mut io::sink())
            .map_err(InspectError::Io)?;
        if copied < len {
            return Err(InspectError::Malformed(
                "a value runs past the end of the file".into(),
            ));
        }
        Ok(())
    }

    /// A newline-terminated argument (protocol 0 opcodes), at most 64 KiB.
    fn line(&mut self) -> Result<String, InspectError> {
        let mut out = Vec::new();
        loop {
            let b = self.byte()?;
            if b == b'\n' {
                break;
            }
            if out.len() >= 64 * 1024 {
                return Err(InspectError::Malformed(
                    "an opcode argument line is too long".into(),
                ));
            }
            out.push(b);
        }
        if out.last() == Some(&b'\r') {
            out.pop();
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// The decimal memo key of a protocol 0 PUT or GET.
    fn decimal_key(&mut self, opcode: &str) -> Result<u64, InspectError> {
        self.line()?
            .trim()
            .parse()
            .map_err(|_| InspectError::Malformed(format!("{opcode} with a bad key")))
    }

    fn push(&mut self, value: Val) -> Result<(), InspectError> {
        if self.stack.len() >= MAX_STACK {
            return Err(InspectError::TooComplex(
                "the pickle's stack grows too deep".into(),
            ));
        }
        self.stack.push(Rc::new(value));
        Ok(())
    }

    fn pop(&mut self) -> Result<Rc<Val>, InspectError> {
        self.stack
            .pop()
            .ok_or_else(|| InspectError::Malformed("an opcode pops from an empty stack".into()))
    }

    fn top_mut(&mut self) -> Result<&mut Val, InspectError> {
        self.stack.last_mut().map(Rc::make_mut).ok_or_else(|| {
            InspectError::Malformed("an opcode needs a value on an empty stack".into())
        })
    }

    /// Pops everything down to the topmost MARK.
    fn pop_mark(&mut self) -> Result<Vec<Rc<Val>>, InspectError> {
        let at = self
            .stack
            .iter()
            .rposition(|v| matches!(v.as_ref(), Val::Mark))
            .ok_or_else(|| InspectError::Malformed("no MARK on the stack".into()))?;
        let items = self.stack.split_off(at + 1);
        self.stack.pop();
        Ok(items)
    }

    fn memo_put(&mut self, key: u64) -> Result<(), InspectError> {
        if self.memo.len() >= MAX_MEMO {
            return Err(InspectError::TooComplex(
                "the pickle's memo is too large".into(),
            ));
        }
        let top = self
            .stack
            .last()
            .cloned()
            .ok_or_else(|| InspectError::Malformed("memoizing from an empty stack".into()))?;
        self.memo.insert(key, top);
        Ok(())
    }

    fn memo_get(&mut self, key: u64) -> Result<(), InspectError> {
        let value = self.memo.get(&key).cloned().ok_or_else(|| {
            InspectError::Malformed(format!("memo entry {key} is read before it is written"))
        })?;
        if self.stack.len() >= MAX_STACK {
            return Err(InspectError::TooComplex(
                "the pickle's stack grows too deep".into(),
            ));
        }
        self.stack.push(value);
        Ok(())
    }

    fn import(&mut self, module: String, name: String) -> Result<(), InspectError> {
        self.summary.note(&module, &name);
        self.push(Val::Global(module, name))
    }

    /// A call or instantiation of `callable`: fine for an import (already classified),
    /// dangerous for anything computed.
    fn call(&mut self, callable: &Val, args: Vec<Rc<Val>>) -> Val {
        match callable {
            Val::Global(module, name) => {
                // copyreg._reconstructor(cls, base, state) and __newobj__(cls, …) build `cls`.
                let class = match (module.as_str(), name.as_str(), args.first().map(Rc::as_ref)) {
                    (
                        "copyreg" | "copy_reg",
                        "_reconstructor" | "__newobj__",
                        Some(Val::Global(m, n)),
                    ) => Some((m.clone(), n.clone())),
                    _ => Some((module.clone(), name.clone())),
                };
                Val::Object {
                    class,
                    args,
                    state: None,
                }
            }
            _ => {
                self.summary.dynamic("call of a computed object");
                Val::Opaque
            }
        }
    }

    fn collect(items: Vec<Rc<Val>>) -> Vec<Rc<Val>> {
        items.into_iter().take(MAX_ITEMS).collect()
    }

    /// Walks one pickle, from its first opcode to STOP; returns the rebuilt top value.
    fn walk(&mut self) -> Result<Rc<Val>, InspectError> {
        loop {
            self.budget.tick()?;
            self.summary.opcodes += 1;
            let op = self.byte()?;
            match op {
                b'.' => {
                    let result = self.pop()?;
                    return Ok(result);
                }
                0x80 => {
                    let proto = self.byte()?;
                    if proto > 5 {
                        return Err(InspectError::Malformed(format!(
                            "unknown pickle protocol {proto}"
                        )));
                    }
                }
                0x95 => {
                    self.u64le()?;
                }
                b'(' => self.push(Val::Mark)?,
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let top =
                        self.stack.last().cloned().ok_or_else(|| {
                            InspectError::Malformed("DUP on an empty stack".into())
                        })?;
                    if self.stack.len() >= MAX_STACK {
                        return Err(InspectError::TooComplex(
                            "the pickle's stack grows too deep".into(),
                        ));
                    }
                    self.stack.push(top);
                }
                // Imports.
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.import(module, name)?;
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module.as_ref(), name.as_ref()) {
                        (Val::Str(m), Val::Str(n)) => self.import(m.clone(), n.clone())?,
                        _ => {
                            self.summary
                                .dynamic("STACK_GLOBAL with a computed module or name");
                            self.push(Val::Opaque)?;
                        }
                    }
                }
                b'i' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.summary.note(&module, &name);
                    let args = self.pop_mark()?;
                    let object = self.call(&Val::Global(module, name), Self::collect(args));
                    self.push(object)?;
                }
                0x82..=0x84 => {
                    // EXT1/2/4: objects from the copyreg extension registry.
                    let code = match op {
                        0x82 => u64::from(self.byte()?),
                        0x83 => u64::from(u16::from_le_bytes(self.bytes::<2>()?)),
                        _ => self.u32le()?,
                    };
                    self.summary.note("copyreg.extension", &code.to_string());
                    self.push(Val::Opaque)?;
                }
                // Calls and instantiations.
                b'R' => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let args = match args.as_ref() {
                        Val::Tuple(items) => items.clone(),
                        _ => Vec::new(),
                    };
                    let object = self.call(&callable, args);
                    self.push(object)?;
                }
                b'o' => {
                    let mut items = self.pop_mark()?;
                    if items.is_empty() {
                        return Err(InspectError::Malformed("OBJ without a class".into()));
                    }
                    let class = items.remove(0);
                    let object = self.call(&class, Self::collect(items));
                    self.push(object)?;
                }
                0x81 => {
                    let args = self.pop()?;
                    let class = self.pop()?;
                    let args = match args.as_ref() {
                        Val::Tuple(items) => items.clone(),
                        _ => Vec::new(),
                    };
                    let object = self.call(&class, args);
                    self.push(object)?;
                }
                0x92 => {
                    let _kwargs = self.pop()?;
                    let args = self.pop()?;
                    let class = self.pop()?;
                    let args = match args.as_ref() {
                        Val::Tuple(items) => items.clone(),
                        _ => Vec::new(),
                    };
                    let object = self.call(&class, args);
                    self.push(object)?;
                }
                b'b' => {
                    let state = self.pop()?;
                    let target = self.top_mut()?;
                    let wrapper = match target {
                        Val::Object {
                            class, state: slot, ..
                        } => {
                            *slot = Some(state.clone());
                            class.as_ref().is_some_and(|(m, n)| {
                                n == "NumpyArrayWrapper"
                                    && matches!(
                                        m.as_str(),
                                        "joblib.numpy_pickle"
                                            | "sklearn.externals.joblib.numpy_pickle"
                                    )
                            })
                        }
                        _ => false,
                    };
                    if wrapper && self.joblib {
                        self.skip_inline_array(&state)?;
                    }
                }
                b'P' => {
                    self.line()?;
                    self.summary.persistent_ids += 1;
                    self.push(Val::Opaque)?;
                }
                b'Q' => {
                    self.pop()?;
                    self.summary.persistent_ids += 1;
                    self.push(Val::Opaque)?;
                }
                // Strings and bytes.
                0x8c => {
                    let len = u64::from(self.byte()?);
                    let value = self.text(len)?;
                    self.push(value)?;
                }
                b'X' => {
                    let len = self.u32le()?;
                    let value = self.text(len)?;
                    self.push(value)?;
                }
                0x8d => {
                    let len = self.u64le()?;
                    let value = self.text(len)?;
                    self.push(value)?;
                }
                // Python unescapes these arguments; a name with escapes is treated as
                // unknown rather than read literally (so `V\u006fs` cannot pass for a
                // harmless module).
                b'V' => {
                    let raw = self.line()?;
                    let value = if raw.contains('\\') {
                        Val::Opaque
                    } else {
                        Val::Str(raw)
                    };
                    self.push(value)?;
                }
                b'S' => {
                    let raw = self.line()?;
                    let unquoted = raw
                        .strip_prefix('\'')
                        .and_then(|s| s.strip_suffix('\''))
                        .or_else(|| raw.strip_prefix('"').and_then(|s| s.strip_suffix('"')))
                        .ok_or_else(|| {
                            InspectError::Malformed("STRING argument is not quoted".into())
                        })?;
                    let value = if unquoted.contains('\\') {
                        Val::Opaque
                    } else {
                        Val::Str(unquoted.to_owned())
                    };
                    self.push(value)?;
                }
                b'T' => {
                    let len = self.u32le()?;
                    let value = self.text(len)?;
                    self.push(value)?;
                }
                b'U' => {
                    let len = u64::from(self.byte()?);
                    let value = self.text(len)?;
                    self.push(value)?;
                }
                b'B' => {
                    let len = self.u32le()?;
                    self.skip(len)?;
                    self.push(Val::Opaque)?;
                }
                b'C' => {
                    let len = u64::from(self.byte()?);
                    self.skip(len)?;
                    self.push(Val::Opaque)?;
                }
                0x8e | 0x96 => {
                    let len = self.u64le()?;
                    self.skip(len)?;
                    self.push(Val::Opaque)?;
                }
                0x97 => self.push(Val::Opaque)?,
                0x98 => {}
                // Numbers and constants.
                b'I' => {
                    let raw = self.line()?;
                    let value = match raw.as_str() {
                        "00" => Val::Bool(false),
                        "01" => Val::Bool(true),
                        other => other.trim().parse().map(Val::Int).unwrap_or(Val::Opaque),
                    };
                    self.push(value)?;
                }
                b'J' => {
                    let v = i32::from_le_bytes(self.bytes::<4>()?);
                    self.push(Val::Int(i64::from(v)))?;
                }
                b'K' => {
                    let v = self.byte()?;
                    self.push(Val::Int(i64::from(v)))?;
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.bytes::<2>()?);
                    self.push(Val::Int(i64::from(v)))?;
                }
                b'L' => {
                    let raw = self.line()?;
                    let value = raw
                        .trim_end_matches('L')
                        .parse()
                        .map(Val::Int)
                        .unwrap_or(Val::Opaque);
                    self.push(value)?;
                }
                0x8a => {
                    let len = u64::from(self.byte()?);
                    self.push_long(len)?;
                }
                0x8b => {
                    let len = self.u32le()?;
                    self.push_long(len)?;
                }
                b'F' => {
                    self.line()?;
                    self.push(Val::Opaque)?;
                }
                b'G' => {
                    self.bytes::<8>()?;
                    self.push(Val::Opaque)?;
                }
                b'N' => self.push(Val::None)?,
                0x88 => self.push(Val::Bool(true))?,
                0x89 => self.push(Val::Bool(false))?,
                // Containers.
                b']' => self.push(Val::List(Vec::new()))?,
                b'}' => self.push(Val::Dict(Vec::new()))?,
                b')' => self.push(Val::Tuple(Vec::new()))?,
                0x8f => self.push(Val::Opaque)?,
                b'l' => {
                    let items = self.pop_mark()?;
                    self.push(Val::List(Self::collect(items)))?;
                }
                b't' => {
                    let items = self.pop_mark()?;
                    self.push(Val::Tuple(Self::collect(items)))?;
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    if self.stack.len() < n {
                        return Err(InspectError::Malformed(
                            "TUPLE opcode on a short stack".into(),
                        ));
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.push(Val::Tuple(items))?;
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    let pairs = pairs(items);
                    self.push(Val::Dict(pairs))?;
                }
                0x91 => {
                    self.pop_mark()?;
                    self.push(Val::Opaque)?;
                }
                b'a' => {
                    let item = self.pop()?;
                    if let Val::List(items) = self.top_mut()?
                        && items.len() < MAX_ITEMS
                    {
                        items.push(item);
                    }
                }
                b'e' => {
                    let new = self.pop_mark()?;
                    if let Val::List(items) = self.top_mut()? {
                        let room = MAX_ITEMS.saturating_sub(items.len());
                        items.extend(new.into_iter().take(room));
                    }
                }
                b's' => {
                    let value = self.pop()?;
                    let key = self.pop()?;
                    if let Val::Dict(items) = self.top_mut()?
                        && items.len() < MAX_ITEMS
                    {
                        items.push((key, value));
                    }
                }
                b'u' => {
                    let new = pairs(self.pop_mark()?);
                    if let Val::Dict(items) = self.top_mut()? {
                        let room = MAX_ITEMS.saturating_sub(items.len());
                        items.extend(new.into_iter().take(room));
                    }
                }
                0x90 => {
                    self.pop_mark()?;
                }
                // Memo.
                b'p' => {
                    let key = self.decimal_key("PUT")?;
                    self.memo_put(key)?;
                }
                b'q' => {
                    let key = u64::from(self.byte()?);
                    self.memo_put(key)?;
                }
                b'r' => {
                    let key = self.u32le()?;
                    self.memo_put(key)?;
                }
                0x94 => {
                    let key = self.memo.len() as u64;
                    self.memo_put(key)?;
                }
                b'g' => {
                    let key = self.decimal_key("GET")?;
                    self.memo_get(key)?;
                }
                b'h' => {
                    let key = u64::from(self.byte()?);
                    self.memo_get(key)?;
                }
                b'j' => {
                    let key = self.u32le()?;
                    self.memo_get(key)?;
                }
                other => {
                    return Err(InspectError::Malformed(format!(
                        "unknown pickle opcode 0x{other:02x}"
                    )));
                }
            }
        }
    }

    fn push_long(&mut self, len: u64) -> Result<(), InspectError> {
        if len > 8 {
            self.skip(len)?;
            return self.push(Val::Opaque);
        }
        let mut buf = [0u8; 8];
        self.input
            .read_exact(&mut buf[..len as usize])
            .map_err(io_error)?;
        if len > 0 && buf[len as usize - 1] & 0x80 != 0 {
            for b in buf.iter_mut().skip(len as usize) {
                *b = 0xff;
            }
        }
        self.push(Val::Int(i64::from_le_bytes(buf)))
    }

    /// joblib writes a numpy array's bytes right after the BUILD of its wrapper (object arrays
    /// as a nested pickle). Skip them, or walk the nested pickle.
    fn skip_inline_array(&mut self, state: &Val) -> Result<(), InspectError> {
        self.summary.arrays += 1;
        let dtype = state
            .get("dtype")
            .map(|d| dtype_of(d))
            .unwrap_or(Dtype::Unknown);
        match dtype {
            Dtype::Object => {
                if self.depth >= MAX_NESTING {
                    return Err(InspectError::TooComplex("pickles nested too deep".into()));
                }
                let mut nested = Walker {
                    input: &mut *self.input,
                    budget: &mut *self.budget,
                    joblib: true,
                    depth: self.depth + 1,
                    stack: Vec::new(),
                    memo: HashMap::new(),
                    summary: &mut *self.summary,
                };
                nested.walk().map(|_| ())
            }
            Dtype::Unknown => Err(InspectError::Malformed(
                "a joblib array wrapper without a readable dtype".into(),
            )),
            Dtype::Sized(itemsize) => {
                let count = match state.get("shape").map(Rc::as_ref) {
                    Some(Val::Tuple(dims)) => {
                        dims.iter().try_fold(1u64, |acc, d| match d.as_ref() {
                            Val::Int(n) if *n >= 0 => acc.checked_mul(*n as u64),
                            _ => None,
                        })
                    }
                    _ => None,
                }
                .ok_or_else(|| {
                    InspectError::Malformed("a joblib array wrapper without a shape".into())
                })?;
                if matches!(
                    state.get("numpy_array_alignment_bytes").map(Rc::as_ref),
                    Some(Val::Int(_))
                ) {
                    let padding = self.byte()?;
                    self.skip(u64::from(padding))?;
                }
                let bytes = count
                    .checked_mul(itemsize)
                    .ok_or_else(|| InspectError::Malformed("an array size overflows".into()))?;
                self.skip(bytes)
            }
        }
    }
}

fn pairs(items: Vec<Rc<Val>>) -> Vec<(Rc<Val>, Rc<Val>)> {
    let mut out = Vec::new();
    let mut iter = items.into_iter();
    while let (Some(k), Some(v)) = (iter.next(), iter.next()) {
        if out.len() < MAX_ITEMS {
            out.push((k, v));
        }
    }
    out
}

enum Dtype {
    Object,
    Sized(u64),
    Unknown,
}

/// The item size of a `numpy.dtype('<f8', …)` object.
fn dtype_of(value: &Val) -> Dtype {
    let Val::Object {
        class: Some((_, name)),
        args,
        ..
    } = value
    else {
        return Dtype::Unknown;
    };
    if name != "dtype" {
        return Dtype::Unknown;
    }
    let Some(Val::Str(code)) = args.first().map(Rc::as_ref) else {
        return Dtype::Unknown;
    };
    // Only numpy's canonical codes (`f8`, `<i4`, `O8`, `U10` …): a kind letter, a size.
    let code = code.trim_start_matches(['<', '>', '=', '|']);
    let mut chars = code.chars();
    let kind = chars.next().unwrap_or('?');
    let digits = chars.as_str();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Dtype::Unknown;
    }
    match (kind, digits.parse::<u64>().unwrap_or(0)) {
        ('O', _) => Dtype::Object,
        (_, 0) => Dtype::Unknown,
        ('U', n) => Dtype::Sized(4 * n),
        ('b' | 'i' | 'u' | 'f' | 'c' | 'S' | 'V' | 'M' | 'm', n) => Dtype::Sized(n),
        _ => Dtype::Unknown,
    }
}

fn class_name(value: &Val) -> Option<String> {
    match value {
        Val::Object {
            class: Some((m, n)),
            ..
        } => Some(format!("{m}.{n}")),
        _ => None,
    }
}

/// Walks one pickle from `input` (which must start at its first opcode) to its STOP.
/// `joblib` says the file is read by joblib, which stores array bytes inline.
pub fn walk<R: Read>(
    input: &mut R,
    budget: &mut Budget,
    summary: &mut PickleSummary,
    joblib: bool,
) -> Result<(), InspectError> {
    let mut walker = Walker {
        input,
        budget,
        joblib,
        depth: 0,
        stack: Vec::new(),
        memo: HashMap::new(),
        summary,
    };
    let root = walker.walk()?;
    if walker.summary.root_class.is_none() {
        walker.summary.root_class = class_name(&root);
        if let Val::Object {
            state: Some(state), ..
        } = root.as_ref()
            && let Some(Val::Str(version)) = state.get("_sklearn_version").map(Rc::as_ref)
        {
            walker.summary.sklearn_version = Some(version.clone());
        }
    }
    Ok(())
}
