//! A static walk over pickle opcodes (protocols 0–5) that never executes anything. It keeps a
//! small model of the unpickler's stack and memo, enough to resolve every import — including
//! names fetched back from the memo and `STACK_GLOBAL` operands — to follow joblib's inline
//! numpy arrays, and to read the class and scikit-learn version of the object it rebuilds.
//! An import whose name cannot be resolved statically is itself a finding.
//!
//! Nothing here recurses on the input's nesting: the walk is a loop over opcodes, nested
//! pickles (joblib object arrays) are bounded by [`MAX_NESTING`], and dropping a deeply nested
//! value is iterative (see `Drop for Val`). Memory is charged to the [`Budget`].
//!
//! [`walk_stream`] reads a whole stream: pickle after pickle to its end, the raw storages of a
//! legacy PyTorch file by their declared sizes; every byte is accounted for.

use std::{
    collections::{HashMap, HashSet},
    io::{self, BufRead, Read},
    mem,
    rc::Rc,
};

use crate::{Budget, Finding, InspectError, Severity, imports::Rules};

/// Longest string kept (longer ones are treated as opaque values).
const MAX_STRING: usize = 4096;
/// Longest protocol 0 argument line kept; longer lines are read to their end and their
/// value is opaque (Python has no such limit, so this must never fail a walk).
const MAX_LINE: usize = 64 * 1024;
/// Most items of a container that are tracked.
const MAX_ITEMS: usize = 64;
/// Most storage keys a legacy PyTorch key list may hold.
const MAX_STORAGE_KEYS: usize = 1 << 20;
/// Deepest stack accepted.
const MAX_STACK: usize = 1_000_000;
/// Most memo entries accepted.
const MAX_MEMO: usize = 4_000_000;
/// Deepest nesting of pickles inside joblib object arrays.
const MAX_NESTING: usize = 8;
/// Most distinct imports listed in a report (the verdict still counts every one).
const MAX_FINDINGS: usize = 256;
/// Most pickles read from one stream.
const MAX_PICKLES: usize = 4096;
/// The first pickle of a legacy PyTorch file is this number.
const TORCH_LEGACY_MAGIC: i128 = 0x1950a86a20f9469cfc6c;

/// A value on the simulated stack.
#[derive(Debug, Clone)]
enum Val {
    Str(String),
    Int(i128),
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
    /// A value of plain data this walk does not follow (bytes, floats, long strings, sets).
    Opaque,
    /// A value that may be callable and is not known: what an extension code, a persistent
    /// id or a computed import stands for.
    Unknown,
}

impl Val {
    /// The value of a string key, as Python's dict keeps it: the last one set.
    fn get(&self, key: &str) -> Option<&Rc<Val>> {
        match self {
            Val::Dict(items) => items
                .iter()
                .rev()
                .find(|(k, _)| matches!(k.as_ref(), Val::Str(s) if s == key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    fn has_children(&self) -> bool {
        match self {
            Val::Tuple(items) | Val::List(items) => !items.is_empty(),
            Val::Dict(pairs) => !pairs.is_empty(),
            Val::Object { args, state, .. } => !args.is_empty() || state.is_some(),
            _ => false,
        }
    }

    fn take_children(&mut self, out: &mut Vec<Rc<Val>>) {
        match self {
            Val::Tuple(items) | Val::List(items) => out.append(items),
            Val::Dict(pairs) => {
                for (k, v) in pairs.drain(..) {
                    out.push(k);
                    out.push(v);
                }
            }
            Val::Object { args, state, .. } => {
                out.append(args);
                out.extend(state.take());
            }
            _ => {}
        }
    }

    /// Roughly what the value costs in memory, for the budget.
    fn weight(&self) -> u64 {
        let own = match self {
            Val::Str(s) => s.len(),
            Val::Global(m, n) => m.len() + n.len(),
            Val::Tuple(items) | Val::List(items) => items.len() * 8,
            Val::Dict(pairs) => pairs.len() * 16,
            Val::Object { class, args, .. } => {
                class.as_ref().map_or(0, |(m, n)| m.len() + n.len()) + args.len() * 8
            }
            _ => 0,
        };
        (mem::size_of::<Val>() + 16 + own) as u64
    }
}

/// Values can nest as deep as the input makes them: drop them with a loop, not recursion.
impl Drop for Val {
    fn drop(&mut self) {
        if !self.has_children() {
            return;
        }
        let mut pending = Vec::new();
        self.take_children(&mut pending);
        while let Some(child) = pending.pop() {
            if let Ok(mut value) = Rc::try_unwrap(child) {
                value.take_children(&mut pending);
            }
        }
    }
}

/// What the walks of a file found.
#[derive(Debug, Default)]
pub struct PickleSummary {
    /// Every import, in order of first appearance, with its verdict (at most
    /// [`MAX_FINDINGS`]; the last one then stands for the rest, with their worst severity).
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
    /// Pickles read to their STOP.
    pub pickles: u64,
    /// Opcodes that make the unpickler look a callable up (imports, extension codes): without
    /// any, loading runs no code of the file's choosing.
    pub lookups: u64,
    /// Raw tensor storages of a legacy PyTorch file that were skipped over.
    pub storages: u64,
    rules: Rules,
    seen: HashSet<(String, String)>,
    /// Storage keys named by persistent ids, with their element sizes where known.
    storage_keys: HashMap<String, Option<u64>>,
    omitted: u64,
}

impl PickleSummary {
    /// A summary whose imports are classified by `rules`.
    pub fn new(rules: Rules) -> Self {
        Self {
            rules,
            ..Self::default()
        }
    }

    /// Adds what another walk found.
    pub(crate) fn absorb(&mut self, other: PickleSummary) {
        for finding in other.findings {
            if self
                .seen
                .insert((finding.module.clone(), finding.name.clone()))
            {
                self.add(finding);
            }
        }
        self.lookups += other.lookups;
        self.opcodes += other.opcodes;
        self.pickles += other.pickles;
        self.arrays += other.arrays;
        self.persistent_ids += other.persistent_ids;
    }

    /// The storage keys the walked pickles' persistent ids name.
    pub(crate) fn storage_key_set(&self) -> HashSet<String> {
        self.storage_keys.keys().cloned().collect()
    }

    fn note(&mut self, module: &str, name: &str) {
        // An import of names that are not Python identifiers fails: it cannot run code.
        if is_dotted_name(module) && is_dotted_name(name) {
            self.lookups += 1;
        }
        if self.seen.contains(&(module.to_owned(), name.to_owned())) {
            return;
        }
        let verdict = self.rules.classify(module, name);
        self.seen.insert((module.to_owned(), name.to_owned()));
        self.add(Finding {
            module: module.to_owned(),
            name: name.to_owned(),
            severity: verdict.severity,
            reason: verdict.reason,
        });
    }

    fn add(&mut self, finding: Finding) {
        if self.findings.len() < MAX_FINDINGS {
            self.findings.push(finding);
            return;
        }
        // The list is full: its last entry stands for every import left out.
        self.omitted += 1;
        let worst = self
            .findings
            .last()
            .map_or(finding.severity, |last| last.severity.max(finding.severity));
        let omitted = self.omitted;
        if let Some(last) = self.findings.last_mut() {
            *last = Finding {
                module: "<more>".into(),
                name: format!("{} further imports", omitted + 1),
                severity: worst,
                reason: "left out of the report; the verdict counts them".into(),
            };
        }
    }

    fn dynamic(&mut self, what: &str) {
        self.lookups += 1;
        if !self.seen.insert(("<dynamic>".into(), what.into())) {
            return;
        }
        self.add(Finding {
            module: "<dynamic>".into(),
            name: what.into(),
            severity: Severity::Dangerous,
            reason: "an import or call whose target is computed while loading cannot be checked"
                .into(),
        });
    }
}

/// How an object is made: NEWOBJ skips `__init__`, REDUCE, INST and OBJ run it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Call {
    NewObj,
    Init,
}

/// Whether `module.name` is joblib's array wrapper.
fn is_wrapper(module: &str, name: &str) -> bool {
    name == "NumpyArrayWrapper"
        && matches!(
            module,
            "joblib.numpy_pickle" | "sklearn.externals.joblib.numpy_pickle"
        )
}

/// How a nested pickle is read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reader {
    /// `joblib.load`: a `NumpyArrayWrapper`'s BUILD is followed by the array's bytes.
    Joblib,
    /// `pickle.load` (joblib reads object arrays with it): no inline arrays.
    Plain,
}

struct Walker<'a, R: Read> {
    input: &'a mut R,
    budget: &'a mut Budget,
    reader: Reader,
    /// How deep in nested pickles this walker is.
    depth: usize,
    /// Bytes read from the input so far, and where the current protocol 4 frame ends.
    pos: u64,
    frame_end: u64,
    /// Most items kept per list (raised to read a legacy PyTorch storage key list).
    max_items: usize,
    stack: Vec<Rc<Val>>,
    memo: HashMap<u64, Rc<Val>>,
    /// The memo keys holding each value (by address), so that a value changed in place — a
    /// copy here, the same object to Python — is changed in the memo too.
    memo_index: HashMap<usize, Vec<u64>>,
    /// The address a value had before the current opcode copied it to change it.
    copied: Option<usize>,
    summary: &'a mut PickleSummary,
    opaque: Rc<Val>,
    mark: Rc<Val>,
    none: Rc<Val>,
}

fn io_error(err: io::Error) -> InspectError {
    if err.kind() == io::ErrorKind::UnexpectedEof {
        InspectError::Malformed("the pickle ends before its STOP opcode".into())
    } else {
        InspectError::Io(err)
    }
}

fn too_deep() -> InspectError {
    InspectError::TooComplex("the pickle's stack grows too deep".into())
}

impl<'a, R: Read> Walker<'a, R> {
    fn new(
        input: &'a mut R,
        budget: &'a mut Budget,
        summary: &'a mut PickleSummary,
        reader: Reader,
        depth: usize,
    ) -> Self {
        Self {
            input,
            budget,
            reader,
            depth,
            pos: 0,
            frame_end: 0,
            max_items: MAX_ITEMS,
            stack: Vec::new(),
            memo: HashMap::new(),
            memo_index: HashMap::new(),
            copied: None,
            summary,
            opaque: Rc::new(Val::Opaque),
            mark: Rc::new(Val::Mark),
            none: Rc::new(Val::None),
        }
    }

    fn fill(&mut self, buf: &mut [u8]) -> Result<(), InspectError> {
        self.input.read_exact(buf).map_err(io_error)?;
        self.pos += buf.len() as u64;
        Ok(())
    }

    fn byte(&mut self) -> Result<u8, InspectError> {
        let mut b = [0u8; 1];
        self.fill(&mut b)?;
        Ok(b[0])
    }

    fn bytes<const N: usize>(&mut self) -> Result<[u8; N], InspectError> {
        let mut b = [0u8; N];
        self.fill(&mut b)?;
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
        self.fill(&mut buf)?;
        Ok(match String::from_utf8(buf) {
            Ok(s) => Val::Str(s),
            Err(_) => Val::Opaque,
        })
    }

    fn skip(&mut self, len: u64) -> Result<(), InspectError> {
        skip(&mut *self.input, self.budget, len)?;
        self.pos += len;
        Ok(())
    }

    /// A newline-terminated argument (protocol 0 opcodes): `None` when it is longer than
    /// [`MAX_LINE`] (read to its end all the same).
    fn line(&mut self) -> Result<Option<String>, InspectError> {
        let mut out = Vec::new();
        let mut long = false;
        loop {
            let b = self.byte()?;
            if b == b'\n' {
                break;
            }
            if out.len() < MAX_LINE {
                out.push(b);
            } else {
                long = true;
            }
        }
        if long {
            return Ok(None);
        }
        Ok(Some(String::from_utf8_lossy(&out).into_owned()))
    }

    /// The decimal memo key of a protocol 0 PUT or GET, read as Python's `int()` reads it
    /// (surrounding whitespace, a sign, underscores between digits).
    fn decimal_key(&mut self, opcode: &str) -> Result<u64, InspectError> {
        let line = self.line()?.ok_or_else(|| {
            InspectError::TooComplex(format!("{opcode} with a key too long to follow"))
        })?;
        // CPython parses the key as a C string: it ends at the first NUL.
        let line = line.split('\0').next().unwrap_or_default();
        match python_int(line) {
            Some(PythonInt::Value(key)) if key >= 0 => u64::try_from(key)
                .map_err(|_| InspectError::TooComplex(format!("{opcode} with a huge key"))),
            Some(PythonInt::Value(_)) => Err(InspectError::Malformed(format!(
                "{opcode} with a negative key"
            ))),
            Some(PythonInt::Huge) => Err(InspectError::TooComplex(format!(
                "{opcode} with a key too large to follow"
            ))),
            None => Err(InspectError::Malformed(format!("{opcode} with a bad key"))),
        }
    }

    /// A GLOBAL or INST operand pair; a name too long to check is reported as such. A
    /// trailing `\r` is dropped (CPython keeps it, and the import then fails: dropping it only
    /// makes the check stricter).
    fn global_lines(&mut self) -> Result<(String, String), InspectError> {
        let strip = |s: String| s.strip_suffix('\r').map(str::to_owned).unwrap_or(s);
        let module = self.line()?.map(strip);
        let name = self.line()?.map(strip);
        Ok(match (module, name) {
            (Some(m), Some(n)) => (m, n),
            _ => ("<long>".into(), "a name too long to check".into()),
        })
    }

    fn push(&mut self, value: Val) -> Result<(), InspectError> {
        self.budget.charge(value.weight())?;
        self.push_rc(Rc::new(value))
    }

    fn push_rc(&mut self, value: Rc<Val>) -> Result<(), InspectError> {
        if self.stack.len() >= MAX_STACK {
            return Err(too_deep());
        }
        self.stack.push(value);
        Ok(())
    }

    fn push_opaque(&mut self) -> Result<(), InspectError> {
        let value = self.opaque.clone();
        self.push_rc(value)
    }

    fn pop(&mut self) -> Result<Rc<Val>, InspectError> {
        self.stack
            .pop()
            .ok_or_else(|| InspectError::Malformed("an opcode pops from an empty stack".into()))
    }

    /// The top value, for changing in place (copied first if it is shared, as the memo's
    /// values are: the copy is charged to the budget).
    fn top_mut(&mut self) -> Result<&mut Val, InspectError> {
        let top = self.stack.last_mut().ok_or_else(|| {
            InspectError::Malformed("an opcode needs a value on an empty stack".into())
        })?;
        if Rc::strong_count(top) > 1 {
            self.budget.charge(top.weight())?;
            self.copied = Some(Rc::as_ptr(top) as usize);
        }
        Ok(Rc::make_mut(top))
    }

    /// After an opcode changed a shared value (now a copy on top of the stack), points the
    /// memo keys that held the original at the copy, as Python's memo holds the one object.
    fn sync_memo(&mut self) {
        let Some(old) = self.copied.take() else {
            return;
        };
        let Some(new) = self.stack.last().cloned() else {
            return;
        };
        let Some(keys) = self.memo_index.remove(&old) else {
            return;
        };
        let mut kept = Vec::with_capacity(keys.len());
        for key in keys {
            if let Some(slot) = self.memo.get_mut(&key)
                && Rc::as_ptr(slot) as usize == old
            {
                *slot = new.clone();
                kept.push(key);
            }
        }
        self.memo_index
            .entry(Rc::as_ptr(&new) as usize)
            .or_default()
            .extend(kept);
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
        self.budget.charge(64)?;
        self.memo_index
            .entry(Rc::as_ptr(&top) as usize)
            .or_default()
            .push(key);
        self.memo.insert(key, top);
        Ok(())
    }

    fn memo_get(&mut self, key: u64) -> Result<(), InspectError> {
        let value = self.memo.get(&key).cloned().ok_or_else(|| {
            InspectError::Malformed(format!("memo entry {key} is read before it is written"))
        })?;
        self.push_rc(value)
    }

    fn import(&mut self, module: String, name: String) -> Result<(), InspectError> {
        self.summary.note(&module, &name);
        self.push(Val::Global(module, name))
    }

    /// A call or instantiation of `callable`: fine for an import (already classified),
    /// dangerous for anything computed or unknown; plain data is not callable, so the
    /// unpickler would stop there.
    fn call(&mut self, callable: &Val, args: Vec<Rc<Val>>, how: Call) -> Result<Val, InspectError> {
        Ok(match callable {
            Val::Global(module, name) => {
                // copyreg._reconstructor(cls, base, state), __newobj__(cls, …) and
                // __newobj_ex__(cls, args, kwargs) build `cls` without running its `__init__`.
                let constructor = matches!(
                    (module.as_str(), name.as_str()),
                    (
                        "copyreg" | "copy_reg",
                        "_reconstructor" | "__newobj__" | "__newobj_ex__"
                    )
                );
                let class = match (constructor, args.first().map(Rc::as_ref)) {
                    (true, Some(Val::Global(m, n))) => Some((m.clone(), n.clone())),
                    _ => Some((module.clone(), name.clone())),
                };
                // joblib's array wrapper is only ever rebuilt without `__init__` (whose defaults
                // change how its array is read): any other call involving it is not followed.
                let wrapper_involved = is_wrapper(module, name)
                    || args
                        .iter()
                        .any(|a| matches!(a.as_ref(), Val::Global(m, n) if is_wrapper(m, n)));
                let rebuilt = (how == Call::NewObj && is_wrapper(module, name))
                    || (constructor
                        && matches!(args.first().map(Rc::as_ref), Some(Val::Global(m, n)) if is_wrapper(m, n)));
                if wrapper_involved && !rebuilt {
                    return Err(InspectError::Malformed(
                        "joblib's array wrapper built by a call this walk does not follow".into(),
                    ));
                }
                Val::Object {
                    class,
                    args,
                    state: None,
                }
            }
            Val::Object { .. } | Val::Unknown => {
                self.summary.dynamic("call of a computed object");
                Val::Unknown
            }
            _ => {
                return Err(InspectError::Malformed(
                    "a call of a value that is not callable".into(),
                ));
            }
        })
    }

    fn collect(&self, mut items: Vec<Rc<Val>>) -> Vec<Rc<Val>> {
        items.truncate(self.max_items);
        items
    }

    fn tuple_items(value: &Val) -> Vec<Rc<Val>> {
        match value {
            Val::Tuple(items) => items.clone(),
            _ => Vec::new(),
        }
    }

    /// Walks one pickle, from its first opcode to STOP; returns the rebuilt top value.
    fn walk(&mut self) -> Result<Rc<Val>, InspectError> {
        loop {
            self.sync_memo();
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
                    let len = self.u64le()?;
                    self.frame_end = self.pos.saturating_add(len);
                }
                b'(' => {
                    let mark = self.mark.clone();
                    self.push_rc(mark)?;
                }
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
                    self.push_rc(top)?;
                }
                // Imports.
                b'c' => {
                    let (module, name) = self.global_lines()?;
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
                            self.push(Val::Unknown)?;
                        }
                    }
                }
                b'i' => {
                    let (module, name) = self.global_lines()?;
                    self.summary.note(&module, &name);
                    let args = self.pop_mark()?;
                    let args = self.collect(args);
                    let object = self.call(&Val::Global(module, name), args, Call::Init)?;
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
                    self.push(Val::Unknown)?;
                }
                // Calls and instantiations.
                b'R' | 0x81 => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let how = if op == 0x81 { Call::NewObj } else { Call::Init };
                    let object = self.call(&callable, Self::tuple_items(&args), how)?;
                    self.push(object)?;
                }
                b'o' => {
                    let mut items = self.pop_mark()?;
                    if items.is_empty() {
                        return Err(InspectError::Malformed("OBJ without a class".into()));
                    }
                    let class = items.remove(0);
                    let items = self.collect(items);
                    let object = self.call(&class, items, Call::Init)?;
                    self.push(object)?;
                }
                0x92 => {
                    let _kwargs = self.pop()?;
                    let args = self.pop()?;
                    let class = self.pop()?;
                    let object = self.call(&class, Self::tuple_items(&args), Call::NewObj)?;
                    self.push(object)?;
                }
                b'b' => {
                    let state = self.pop()?;
                    let target = self.top_mut()?;
                    let wrapper = match target {
                        Val::Object {
                            class, state: slot, ..
                        } => {
                            // An object without `__setstate__` merges a dict state into its
                            // `__dict__`; anything else replaces what was there.
                            let merged = match (slot.as_deref(), state.as_ref()) {
                                (Some(Val::Dict(old)), Val::Dict(new)) => {
                                    let mut items = old.clone();
                                    for (k, v) in new {
                                        set_item(&mut items, k.clone(), v.clone());
                                    }
                                    Rc::new(Val::Dict(items))
                                }
                                _ => state.clone(),
                            };
                            *slot = Some(merged);
                            class.as_ref().is_some_and(|(m, n)| is_wrapper(m, n))
                        }
                        _ => false,
                    };
                    if wrapper && self.reader == Reader::Joblib {
                        let state = match self.stack.last().map(Rc::as_ref) {
                            Some(Val::Object {
                                state: Some(state), ..
                            }) => state.clone(),
                            _ => state,
                        };
                        self.skip_inline_array(&state)?;
                    }
                }
                // Persistent ids call the loader's own `persistent_load` (PyTorch's builds
                // storages; a plain unpickler refuses them): not a lookup of the file's choosing.
                b'P' => {
                    self.line()?;
                    self.summary.persistent_ids += 1;
                    self.push(Val::Unknown)?;
                }
                b'Q' => {
                    let pid = self.pop()?;
                    self.summary.persistent_ids += 1;
                    self.note_storage(&pid);
                    self.push(Val::Unknown)?;
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
                    let value = match self.line()? {
                        Some(raw) if !raw.contains('\\') => Val::Str(raw),
                        _ => Val::Opaque,
                    };
                    self.push(value)?;
                }
                b'S' => {
                    let value = match self.line()? {
                        Some(raw) => {
                            let unquoted = raw
                                .strip_prefix('\'')
                                .and_then(|s| s.strip_suffix('\''))
                                .or_else(|| raw.strip_prefix('"').and_then(|s| s.strip_suffix('"')))
                                .ok_or_else(|| {
                                    InspectError::Malformed("STRING argument is not quoted".into())
                                })?;
                            if unquoted.contains('\\') {
                                Val::Opaque
                            } else {
                                Val::Str(unquoted.to_owned())
                            }
                        }
                        None => Val::Opaque,
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
                    self.push_opaque()?;
                }
                b'C' => {
                    let len = u64::from(self.byte()?);
                    self.skip(len)?;
                    self.push_opaque()?;
                }
                0x8e | 0x96 => {
                    let len = self.u64le()?;
                    self.skip(len)?;
                    self.push_opaque()?;
                }
                0x97 => self.push_opaque()?,
                0x98 => {}
                // Numbers and constants.
                b'I' => {
                    let value = match self.line()?.as_deref() {
                        Some(other) => other.trim().parse().map(Val::Int).unwrap_or(Val::Opaque),
                        None => Val::Opaque,
                    };
                    self.push(value)?;
                }
                b'J' => {
                    let v = i32::from_le_bytes(self.bytes::<4>()?);
                    self.push(Val::Int(i128::from(v)))?;
                }
                b'K' => {
                    let v = self.byte()?;
                    self.push(Val::Int(i128::from(v)))?;
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.bytes::<2>()?);
                    self.push(Val::Int(i128::from(v)))?;
                }
                b'L' => {
                    let value = self
                        .line()?
                        .and_then(|raw| raw.trim_end_matches('L').parse().ok())
                        .map_or(Val::Opaque, Val::Int);
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
                    self.push_opaque()?;
                }
                b'G' => {
                    self.bytes::<8>()?;
                    self.push_opaque()?;
                }
                b'N' => {
                    let none = self.none.clone();
                    self.push_rc(none)?;
                }
                0x88 | 0x89 => self.push_opaque()?,
                // Containers.
                b']' => self.push(Val::List(Vec::new()))?,
                b'}' => self.push(Val::Dict(Vec::new()))?,
                b')' => self.push(Val::Tuple(Vec::new()))?,
                0x8f => self.push_opaque()?,
                b'l' => {
                    let items = self.pop_mark()?;
                    let items = self.collect(items);
                    self.push(Val::List(items))?;
                }
                b't' => {
                    let items = self.pop_mark()?;
                    let items = self.collect(items);
                    self.push(Val::Tuple(items))?;
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
                    self.push_opaque()?;
                }
                b'a' => {
                    let item = self.pop()?;
                    let max = self.max_items;
                    if let Val::List(items) = self.top_mut()?
                        && items.len() < max
                    {
                        items.push(item);
                    }
                }
                b'e' => {
                    let new = self.pop_mark()?;
                    let max = self.max_items;
                    if let Val::List(items) = self.top_mut()? {
                        let room = max.saturating_sub(items.len());
                        items.extend(new.into_iter().take(room));
                    }
                }
                b's' => {
                    let value = self.pop()?;
                    let key = self.pop()?;
                    if let Val::Dict(items) = self.top_mut()? {
                        set_item(items, key, value);
                    }
                }
                b'u' => {
                    let new = pairs(self.pop_mark()?);
                    if let Val::Dict(items) = self.top_mut()? {
                        for (key, value) in new {
                            set_item(items, key, value);
                        }
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
        if len > 16 {
            self.skip(len)?;
            return self.push_opaque();
        }
        let mut buf = [0u8; 16];
        self.fill(&mut buf[..len as usize])?;
        if len > 0 && buf[len as usize - 1] & 0x80 != 0 {
            for b in buf.iter_mut().skip(len as usize) {
                *b = 0xff;
            }
        }
        self.push(Val::Int(i128::from_le_bytes(buf)))
    }

    /// Remembers the storage a PyTorch persistent id names:
    /// `('storage', torch.FloatStorage, key, location, numel, …)`.
    fn note_storage(&mut self, pid: &Val) {
        let Val::Tuple(items) = pid else { return };
        let [kind, storage_type, key, ..] = items.as_slice() else {
            return;
        };
        let (Val::Str(kind), Val::Str(key)) = (kind.as_ref(), key.as_ref()) else {
            return;
        };
        if kind != "storage" || self.summary.storage_keys.len() >= MAX_STORAGE_KEYS {
            return;
        }
        let size = match storage_type.as_ref() {
            Val::Global(_, name) => storage_element_size(name),
            _ => None,
        };
        self.summary.storage_keys.insert(key.clone(), size);
    }

    /// joblib writes a numpy array's bytes right after the BUILD of its wrapper (object arrays
    /// as a nested pickle, which joblib reads with plain `pickle.load`). Skip them, or walk
    /// the nested pickle.
    fn skip_inline_array(&mut self, state: &Val) -> Result<(), InspectError> {
        self.summary.arrays += 1;
        // Keys Python could take for the same string as another (a `str` subclass, an escape
        // this walk does not decode) are not followed.
        match state {
            Val::Dict(items) if items.iter().all(|(k, _)| matches!(k.as_ref(), Val::Str(_))) => {}
            _ => {
                return Err(InspectError::Malformed(
                    "a joblib array wrapper whose state is not a plain dict".into(),
                ));
            }
        }
        // joblib reads array bytes from the file itself, after the current frame: bytes left
        // in the frame would be read as opcodes.
        if self.pos < self.frame_end {
            return Err(InspectError::Malformed(
                "joblib array data starts inside a pickle frame".into(),
            ));
        }
        let dtype = state
            .get("dtype")
            .map(|d| dtype_of(d))
            .unwrap_or(Dtype::Unknown);
        match dtype {
            Dtype::Object => {
                if self.depth >= MAX_NESTING {
                    return Err(InspectError::TooComplex("pickles nested too deep".into()));
                }
                let mut nested = Walker::new(
                    &mut *self.input,
                    &mut *self.budget,
                    &mut *self.summary,
                    Reader::Plain,
                    self.depth + 1,
                );
                let walked = nested.walk().map(|_| ());
                let read = nested.pos;
                self.pos += read;
                walked
            }
            Dtype::Unknown => Err(InspectError::Malformed(
                "a joblib array wrapper without a readable dtype".into(),
            )),
            Dtype::Sized(itemsize) => {
                let count = match state.get("shape").map(Rc::as_ref) {
                    Some(Val::Tuple(dims)) => {
                        dims.iter().try_fold(1u64, |acc, d| match d.as_ref() {
                            Val::Int(n) => u64::try_from(*n).ok().and_then(|n| acc.checked_mul(n)),
                            _ => None,
                        })
                    }
                    _ => None,
                }
                .ok_or_else(|| {
                    InspectError::Malformed("a joblib array wrapper without a shape".into())
                })?;
                if state
                    .get("numpy_array_alignment_bytes")
                    .is_some_and(|v| !matches!(v.as_ref(), Val::None))
                {
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

/// Whether `text` could name a module or an attribute path: dotted Python identifiers
/// (Unicode letters allowed, as Python allows them).
fn is_dotted_name(text: &str) -> bool {
    !text.is_empty()
        && text.split('.').all(|part| {
            let mut chars = part.chars();
            chars.next().is_some_and(|c| c == '_' || c.is_alphabetic())
                && chars.all(|c| c == '_' || c.is_alphanumeric())
        })
}

/// A number as Python's `int(text)` reads it.
enum PythonInt {
    Value(i128),
    /// Well formed, but past what is followed here.
    Huge,
}

fn python_int(text: &str) -> Option<PythonInt> {
    let text = text.trim_matches(|c: char| c.is_ascii_whitespace() || c == '\x0b' || c == '\x0c');
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let bytes = digits.as_bytes();
    let well_formed = !bytes.is_empty()
        && bytes.first().is_some_and(u8::is_ascii_digit)
        && bytes.last().is_some_and(u8::is_ascii_digit)
        && bytes.iter().all(|b| b.is_ascii_digit() || *b == b'_')
        && !digits.contains("__");
    if !well_formed {
        return None;
    }
    let value: i128 = match digits.replace('_', "").parse() {
        Ok(v) => v,
        Err(_) => return Some(PythonInt::Huge),
    };
    Some(PythonInt::Value(if negative { -value } else { value }))
}

/// All pairs, in order (a later key wins, see [`set_item`]).
fn pairs(items: Vec<Rc<Val>>) -> Vec<(Rc<Val>, Rc<Val>)> {
    let mut out = Vec::new();
    let mut iter = items.into_iter();
    while let (Some(k), Some(v)) = (iter.next(), iter.next()) {
        set_item(&mut out, k, v);
    }
    out
}

/// Sets a key as Python's dict does: a string key already there gets the new value; a new
/// key is kept while the dict holds fewer than [`MAX_ITEMS`].
fn set_item(items: &mut Vec<(Rc<Val>, Rc<Val>)>, key: Rc<Val>, value: Rc<Val>) {
    if let Val::Str(name) = key.as_ref()
        && let Some(slot) = items
            .iter_mut()
            .find(|(k, _)| matches!(k.as_ref(), Val::Str(s) if s == name))
    {
        slot.1 = value;
        return;
    }
    if items.len() < MAX_ITEMS {
        items.push((key, value));
    }
}

/// Skips `len` bytes of `input`, within the time budget (a decompressed stream can be long).
fn skip<R: Read>(input: &mut R, budget: &mut Budget, len: u64) -> Result<(), InspectError> {
    const CHUNK: u64 = 16 << 20;
    let mut left = len;
    while left > 0 {
        budget.check()?;
        let want = left.min(CHUNK);
        let copied = io::copy(&mut (&mut *input).take(want), &mut io::sink())?;
        if copied < want {
            return Err(InspectError::Malformed(
                "a value runs past the end of the file".into(),
            ));
        }
        left -= want;
    }
    Ok(())
}

/// The element size of a PyTorch storage type (`FloatStorage` → 4).
fn storage_element_size(name: &str) -> Option<u64> {
    Some(match name {
        "ByteStorage"
        | "CharStorage"
        | "BoolStorage"
        | "UntypedStorage"
        | "QInt8Storage"
        | "QUInt8Storage"
        | "Float8_e4m3fnStorage"
        | "Float8_e5m2Storage" => 1,
        "ShortStorage" | "HalfStorage" | "BFloat16Storage" => 2,
        "IntStorage" | "FloatStorage" | "QInt32Storage" => 4,
        "LongStorage" | "DoubleStorage" | "ComplexFloatStorage" => 8,
        "ComplexDoubleStorage" => 16,
        _ => return None,
    })
}

#[derive(Clone, Copy)]
enum Dtype {
    Object,
    Sized(u64),
    Unknown,
}

/// How deep structured dtypes' fields are followed.
const MAX_DTYPE_DEPTH: usize = 4;

/// The item size of a `numpy.dtype('<f8', …)` object, with the state its BUILD gave it
/// (`(version, byteorder, subarray, names, fields, elsize, alignment, flags[, metadata])`):
/// a structured dtype's size is its `elsize`, and it holds objects when a field does or its
/// flags say so.
fn dtype_of(value: &Val) -> Dtype {
    dtype_at(value, 0)
}

fn dtype_at(value: &Val, depth: usize) -> Dtype {
    let Val::Object {
        class: Some((_, name)),
        args,
        state,
    } = value
    else {
        return Dtype::Unknown;
    };
    if name != "dtype" || depth > MAX_DTYPE_DEPTH {
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
    let base = match (kind, digits.parse::<u64>().unwrap_or(0)) {
        ('O', _) => return Dtype::Object,
        (_, 0) => return Dtype::Unknown,
        ('U', n) => n.checked_mul(4).map_or(Dtype::Unknown, Dtype::Sized),
        ('b' | 'i' | 'u' | 'f' | 'c' | 'S' | 'V' | 'M' | 'm', n) => Dtype::Sized(n),
        _ => return Dtype::Unknown,
    };
    // Without a state, a fixed-size kind has its size; a flexible one (`V`, `S`, `U`) takes
    // it from the state, so one without is not followed.
    let Some(state) = state else {
        return if matches!(kind, 'V' | 'S' | 'U') {
            Dtype::Unknown
        } else {
            base
        };
    };
    let Val::Tuple(items) = state.as_ref() else {
        return Dtype::Unknown;
    };
    let [version, _, subarray, names, fields, elsize, _, flags, ..] = items.as_slice() else {
        return Dtype::Unknown;
    };
    // Older state versions have numpy recompute the flags.
    if !matches!(version.as_ref(), Val::Int(3 | 4)) {
        return Dtype::Unknown;
    }
    let int = |v: &Rc<Val>| match v.as_ref() {
        Val::Int(n) => Some(*n),
        _ => None,
    };
    if !matches!(subarray.as_ref(), Val::None) {
        return Dtype::Unknown;
    }
    match int(flags) {
        Some(f) if f & 1 != 0 => return Dtype::Object,
        Some(_) => {}
        None => return Dtype::Unknown,
    }
    let size = int(elsize);
    match (names.as_ref(), fields.as_ref()) {
        (Val::None, Val::None) => match (size, base) {
            (Some(-1), base) => base,
            (Some(n), Dtype::Sized(b)) if u64::try_from(n) == Ok(b) => base,
            // Flexible kinds take their size from the state.
            (Some(n), Dtype::Sized(_)) if n > 0 && matches!(kind, 'V' | 'S' | 'U') => {
                Dtype::Sized(n as u64)
            }
            _ => Dtype::Unknown,
        },
        (Val::Tuple(_), Val::Dict(entries)) if kind == 'V' && entries.len() < MAX_ITEMS => {
            for (_, field) in entries {
                let Val::Tuple(parts) = field.as_ref() else {
                    return Dtype::Unknown;
                };
                match parts.first().map(|d| dtype_at(d, depth + 1)) {
                    Some(Dtype::Sized(_)) => {}
                    Some(Dtype::Object) => return Dtype::Object,
                    _ => return Dtype::Unknown,
                }
            }
            match size {
                Some(n) if n > 0 => Dtype::Sized(n as u64),
                _ => Dtype::Unknown,
            }
        }
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

/// What one pickle rebuilt, as far as a stream needs to know.
enum Root {
    /// A plain integer (a legacy PyTorch file starts with its magic number).
    Int(i128),
    /// A list of strings (a legacy PyTorch storage key list).
    Strings(Vec<String>),
    Other,
}

fn walk_one<R: Read>(
    input: &mut R,
    budget: &mut Budget,
    summary: &mut PickleSummary,
    max_items: usize,
) -> Result<Root, InspectError> {
    let mut walker = Walker::new(input, budget, summary, Reader::Joblib, 0);
    walker.max_items = max_items;
    let root = walker.walk()?;
    walker.summary.pickles += 1;
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
    Ok(match root.as_ref() {
        Val::Int(n) => Root::Int(*n),
        Val::List(items) => items
            .iter()
            .map(|v| match v.as_ref() {
                Val::Str(s) => Some(s.clone()),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
            .map_or(Root::Other, Root::Strings),
        _ => Root::Other,
    })
}

/// Walks the first pickle of `input` as a plain `pickle.load` reads it: bytes after a joblib
/// array wrapper's BUILD are opcodes, not array data.
pub(crate) fn walk_plain<R: Read>(
    input: &mut R,
    budget: &mut Budget,
    summary: &mut PickleSummary,
) -> Result<(), InspectError> {
    Walker::new(input, budget, summary, Reader::Plain, 0)
        .walk()
        .map(|_| ())
}

/// A reader that counts the bytes taken from it.
struct Counted<R> {
    inner: R,
    at: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.at += n as u64;
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Counted<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amt: usize) {
        self.at += amt as u64;
        self.inner.consume(amt);
    }
}

/// How a stream read by [`walk_stream`] turned out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stream {
    /// One or more pickles, ending exactly at the end of the stream.
    Pickles,
    /// Not a pickle: the unpickler would stop at `offset`, for the reason given, before it
    /// imported or called anything, so loading it runs no code.
    NotPickle { offset: u64, why: String },
}

/// Reads a whole stream: every pickle in it, one after another, and the raw storages of a
/// legacy PyTorch file. Bytes after a pickle must be another pickle; if they are not, the
/// stream counts as inert only when nothing in it imports anything (a pickle of plain data
/// followed by bytes no unpickler accepts); otherwise the stream is malformed.
pub fn walk_stream<R: BufRead>(
    input: &mut R,
    budget: &mut Budget,
    summary: &mut PickleSummary,
) -> Result<Stream, InspectError> {
    let mut input = Counted {
        inner: input,
        at: 0,
    };
    let mut roots: Vec<Root> = Vec::new();
    loop {
        if input.fill_buf()?.is_empty() {
            return Ok(Stream::Pickles);
        }
        if roots.len() >= MAX_PICKLES {
            return Err(InspectError::TooComplex(format!(
                "more than {MAX_PICKLES} pickles in one stream"
            )));
        }
        let start = input.at;
        let lookups = summary.lookups;
        let opens_as_pickle = input
            .fill_buf()?
            .first()
            .is_some_and(|b| crate::magic::is_pickle_opcode(*b));
        // The fifth pickle of a legacy PyTorch file lists every storage key.
        let torch_legacy = roots.len() == 4 && matches!(roots[0], Root::Int(TORCH_LEGACY_MAGIC));
        let max_items = if torch_legacy {
            MAX_STORAGE_KEYS
        } else {
            MAX_ITEMS
        };
        match walk_one(&mut input, budget, summary, max_items) {
            Ok(root) => {
                if torch_legacy {
                    let Root::Strings(keys) = root else {
                        return Err(InspectError::Malformed(
                            "a legacy PyTorch file without its storage key list".into(),
                        ));
                    };
                    roots.push(Root::Other);
                    skip_storages(&mut input, budget, summary, &keys)?;
                } else {
                    roots.push(root);
                }
            }
            Err(InspectError::Malformed(why)) if summary.lookups == lookups => {
                // Bytes an unpickler does not take a step into: not a pickle. A segment that
                // starts with an opcode and fails is a pickle this walk could not read.
                if summary.lookups == 0 && (!opens_as_pickle || roots.is_empty()) {
                    return Ok(Stream::NotPickle { offset: start, why });
                }
                return Err(InspectError::Malformed(if roots.is_empty() {
                    why
                } else {
                    format!(
                        "the {} bytes after the pickle at offset {start} are not a pickle ({why})",
                        remaining(&mut input)?
                    )
                }));
            }
            Err(e) => return Err(e),
        }
    }
}

fn remaining<R: BufRead>(input: &mut Counted<R>) -> Result<String, InspectError> {
    let start = input.at;
    io::copy(&mut input.take(u64::MAX), &mut io::sink())?;
    Ok((input.at - start).to_string())
}

/// The raw storages after a legacy PyTorch file's key list: for each key, an 8-byte element
/// count and that many elements of the storage's type.
fn skip_storages<R: BufRead>(
    input: &mut Counted<R>,
    budget: &mut Budget,
    summary: &mut PickleSummary,
    keys: &[String],
) -> Result<(), InspectError> {
    for key in keys {
        budget.tick()?;
        let size = summary
            .storage_keys
            .get(key)
            .copied()
            .flatten()
            .ok_or_else(|| {
                InspectError::Malformed(format!(
                    "storage `{key}` has no persistent id of a known type"
                ))
            })?;
        let mut count = [0u8; 8];
        input.read_exact(&mut count).map_err(io_error)?;
        let bytes = u64::from_le_bytes(count)
            .checked_mul(size)
            .ok_or_else(|| InspectError::Malformed("a storage size overflows".into()))?;
        skip(&mut *input, budget, bytes).map_err(|e| match e {
            InspectError::Malformed(_) => {
                InspectError::Malformed(format!("storage `{key}` runs past the end of the file"))
            }
            other => other,
        })?;
        summary.storages += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn stream(bytes: &[u8]) -> (Result<Stream, InspectError>, PickleSummary) {
        let mut budget = Budget::new(Duration::from_secs(10));
        let mut summary = PickleSummary::default();
        let outcome = walk_stream(&mut &bytes[..], &mut budget, &mut summary);
        (outcome, summary)
    }

    #[test]
    fn a_million_nested_tuples_are_walked_and_dropped_without_recursion() {
        let mut bytes = b"\x80\x02N".to_vec();
        bytes.extend(std::iter::repeat_n(0x85u8, 1_000_000));
        bytes.push(b'.');
        let (outcome, summary) = stream(&bytes);
        assert_eq!(outcome.unwrap(), Stream::Pickles);
        assert_eq!(summary.pickles, 1);
    }

    #[test]
    fn lines_longer_than_the_buffer_are_read_to_their_end() {
        let mut bytes = b"S'".to_vec();
        bytes.extend(std::iter::repeat_n(b'a', 200_000));
        bytes.extend(b"'\n0cos\nsystem\n(S'x'\ntR.");
        let (outcome, summary) = stream(&bytes);
        assert_eq!(outcome.unwrap(), Stream::Pickles);
        assert!(
            summary
                .findings
                .iter()
                .any(|f| f.module == "os" && f.severity == Severity::Dangerous)
        );
    }

    #[test]
    fn every_pickle_of_a_stream_is_walked_and_trailing_bytes_are_accounted_for() {
        let (outcome, summary) = stream(b"N.cos\nsystem\n(S'x'\ntR.");
        assert_eq!(outcome.unwrap(), Stream::Pickles);
        assert_eq!(summary.pickles, 2);
        assert_eq!(summary.findings[0].module, "os");
        // Trailing bytes that are no pickle after a pickle that imports: malformed.
        let (outcome, _) = stream(b"ccollections\nOrderedDict\n)R.\xff\xfe");
        assert!(
            matches!(outcome, Err(InspectError::Malformed(_))),
            "{outcome:?}"
        );
        // Plain data followed by bytes no unpickler accepts: nothing can run.
        let (outcome, _) = stream(b"N.\xff\xfe");
        assert!(matches!(
            outcome.unwrap(),
            Stream::NotPickle { offset: 2, .. }
        ));
        let (outcome, _) = stream(b"hello world");
        assert!(matches!(
            outcome.unwrap(),
            Stream::NotPickle { offset: 0, .. }
        ));
    }

    #[test]
    fn the_findings_list_is_bounded_but_keeps_the_worst_severity() {
        let mut bytes = Vec::new();
        for i in 0..2000 {
            bytes.extend(format!("cpkg{i}\nName\n0").as_bytes());
        }
        bytes.extend(b"cos\nsystem\n0N.");
        let (outcome, summary) = stream(&bytes);
        assert_eq!(outcome.unwrap(), Stream::Pickles);
        assert_eq!(summary.findings.len(), MAX_FINDINGS);
        assert_eq!(
            summary.findings.last().unwrap().severity,
            Severity::Dangerous
        );
    }

    #[test]
    fn memory_is_charged_to_the_budget() {
        // A memoized list, copied on every append and memoized again.
        let mut bytes = b"\x80\x04]\x94".to_vec();
        for _ in 0..50 {
            bytes.extend(b"N");
        }
        bytes.extend(b"\x94");
        for _ in 0..200_000 {
            bytes.extend(b"h\x00Na\x94");
        }
        let mut budget = Budget::new(Duration::from_secs(10)).with_memory(1 << 20);
        let mut summary = PickleSummary::default();
        let outcome = walk_stream(&mut &bytes[..], &mut budget, &mut summary);
        assert!(
            matches!(outcome, Err(InspectError::TooComplex(_))),
            "{outcome:?}"
        );
    }
}
