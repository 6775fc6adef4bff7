//! Classifying the Python globals a pickle imports: an allowlist of what models need, a
//! denylist of what runs code, and everything else unknown.

use crate::Severity;

/// Modules whose every member can run code, read files or open connections.
const DANGEROUS_MODULES: &[&str] = &[
    "os",
    "posix",
    "nt",
    "subprocess",
    "sys",
    "socket",
    "shutil",
    "runpy",
    "importlib",
    "pickle",
    "_pickle",
    "cPickle",
    "marshal",
    "dill",
    "cloudpickle",
    "webbrowser",
    "pty",
    "commands",
    "ctypes",
    "code",
    "codeop",
    "pdb",
    "bdb",
    "timeit",
    "multiprocessing",
    "asyncio",
    "http",
    "urllib",
    "urllib2",
    "requests",
    "httplib",
    "ftplib",
    "smtplib",
    "telnetlib",
    "platform",
    "signal",
    "tempfile",
    "glob",
    "pathlib",
    "io",
    "_io",
    "zipimport",
    "pkgutil",
    "site",
    "trace",
    "threading",
    "_thread",
    "thread",
    "ssl",
    "select",
    "selectors",
    "posixpath",
    "ntpath",
    "fcntl",
    "resource",
    "imp",
    "__main__",
];

/// Built-in functions that evaluate code, reach attributes or touch files.
const DANGEROUS_BUILTINS: &[&str] = &[
    "eval",
    "exec",
    "execfile",
    "compile",
    "getattr",
    "setattr",
    "delattr",
    "__import__",
    "open",
    "file",
    "input",
    "raw_input",
    "breakpoint",
    "globals",
    "locals",
    "vars",
    "apply",
    "reload",
    "help",
    "exit",
    "quit",
    "memoryview",
    "classmethod",
    "staticmethod",
    "property",
    "type",
    "super",
];

/// Built-in types that only hold data.
const SAFE_BUILTINS: &[&str] = &[
    "set",
    "frozenset",
    "slice",
    "range",
    "complex",
    "bytearray",
    "bytes",
    "object",
    "dict",
    "list",
    "tuple",
    "int",
    "float",
    "str",
    "bool",
    "NoneType",
    "Ellipsis",
    "NotImplemented",
];

/// Other callables known to be dangerous wherever they appear.
const DANGEROUS_GLOBALS: &[(&str, &str)] = &[
    ("operator", "attrgetter"),
    ("operator", "methodcaller"),
    ("_operator", "attrgetter"),
    ("_operator", "methodcaller"),
    ("numpy", "load"),
    ("numpy", "loadtxt"),
    ("numpy", "fromfile"),
    ("numpy.testing._private.utils", "runstring"),
    ("torch", "load"),
    ("torch.serialization", "load"),
    ("torch.storage", "_load_from_bytes"),
    ("torch._inductor.codecache", "compile_file"),
    ("joblib", "load"),
    ("joblib.numpy_pickle", "load"),
    ("pandas.io.pickle", "read_pickle"),
    ("pandas", "read_pickle"),
    ("codecs", "open"),
    ("functools", "partial"),
    ("_functools", "partial"),
];

/// Exactly these globals are needed to rebuild common models and are harmless.
const SAFE_GLOBALS: &[(&str, &str)] = &[
    ("collections", "OrderedDict"),
    ("collections", "defaultdict"),
    ("collections", "deque"),
    ("collections", "Counter"),
    ("copyreg", "_reconstructor"),
    ("copy_reg", "_reconstructor"),
    ("copyreg", "__newobj__"),
    ("_codecs", "encode"),
    ("datetime", "datetime"),
    ("datetime", "date"),
    ("datetime", "timedelta"),
    ("decimal", "Decimal"),
    ("uuid", "UUID"),
    ("fractions", "Fraction"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy", "bool_"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy.ma.core", "_mareconstruct"),
    ("numpy.random._pickle", "__randomstate_ctor"),
    ("numpy.random._pickle", "__bit_generator_ctor"),
    ("numpy.random._pickle", "__generator_ctor"),
    ("numpy.random.mtrand", "RandomState"),
    ("joblib.numpy_pickle", "NumpyArrayWrapper"),
    ("sklearn.externals.joblib.numpy_pickle", "NumpyArrayWrapper"),
    ("torch._utils", "_rebuild_tensor"),
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_tensor_v3"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch._utils", "_rebuild_parameter_with_state"),
    ("torch._utils", "_rebuild_qtensor"),
    ("torch._utils", "_rebuild_sparse_tensor"),
    ("torch._tensor", "_rebuild_from_type_v2"),
    ("torch", "Size"),
    ("torch", "device"),
    ("torch", "Tensor"),
    ("torch.nn.parameter", "Parameter"),
];

/// Packages whose classes (CamelCase names) may be rebuilt: estimators, sparse matrices,
/// tensors' storages, dtypes.
const SAFE_CLASS_PACKAGES: &[&str] = &["sklearn", "scipy", "torch", "numpy", "xgboost", "lightgbm"];

/// A classified import.
pub struct Verdict {
    pub severity: Severity,
    pub reason: String,
}

fn verdict(severity: Severity, reason: impl Into<String>) -> Verdict {
    Verdict {
        severity,
        reason: reason.into(),
    }
}

fn top_package(module: &str) -> &str {
    module.split('.').next().unwrap_or(module)
}

/// Classifies `module.name` as SAFE, UNKNOWN or DANGEROUS.
pub fn classify(module: &str, name: &str) -> Verdict {
    let top = top_package(module);
    if DANGEROUS_MODULES.contains(&top) {
        return verdict(
            Severity::Dangerous,
            format!("`{top}` can run commands, load code or reach the system"),
        );
    }
    if DANGEROUS_GLOBALS.contains(&(module, name)) {
        return verdict(
            Severity::Dangerous,
            "loads or calls arbitrary objects when the model is loaded",
        );
    }
    // A dotted name walks attributes (`pickle` resolves `a.b.c`): it can reach a module a
    // package merely imports, e.g. `sklearn.base` → `os.system`.
    if name.contains('.') {
        let reaches_danger = name
            .split('.')
            .any(|part| DANGEROUS_MODULES.contains(&part) || DANGEROUS_BUILTINS.contains(&part));
        return if reaches_danger {
            verdict(
                Severity::Dangerous,
                format!("reaches `{name}` through attribute lookup"),
            )
        } else {
            verdict(
                Severity::Unknown,
                format!("nested attribute `{name}` is not on the allowlist"),
            )
        };
    }
    if DANGEROUS_MODULES.contains(&name) {
        return verdict(
            Severity::Dangerous,
            format!("imports the `{name}` module through `{module}`"),
        );
    }
    if matches!(module, "builtins" | "__builtin__" | "__builtins__") {
        if DANGEROUS_BUILTINS.contains(&name) {
            return verdict(
                Severity::Dangerous,
                format!("the built-in `{name}` can run code or reach any object"),
            );
        }
        if SAFE_BUILTINS.contains(&name) {
            return verdict(Severity::Safe, "a built-in data type");
        }
        return verdict(Severity::Unknown, "a built-in that is not on the allowlist");
    }
    if SAFE_GLOBALS.contains(&(module, name)) {
        return verdict(Severity::Safe, "on the allowlist of model building blocks");
    }
    let class_like = name.starts_with(|c: char| c.is_ascii_uppercase())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if SAFE_CLASS_PACKAGES.contains(&top) && class_like {
        return verdict(Severity::Safe, format!("a `{top}` class"));
    }
    if top == "torch" && name.ends_with("Storage") {
        return verdict(Severity::Safe, "a tensor storage type");
    }
    verdict(Severity::Unknown, "not on the allowlist")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_known_imports() {
        assert_eq!(classify("os", "system").severity, Severity::Dangerous);
        assert_eq!(classify("posix", "system").severity, Severity::Dangerous);
        assert_eq!(classify("builtins", "eval").severity, Severity::Dangerous);
        assert_eq!(
            classify("__builtin__", "getattr").severity,
            Severity::Dangerous
        );
        assert_eq!(
            classify("sklearn.base", "os.system").severity,
            Severity::Dangerous
        );
        assert_eq!(
            classify("sklearn.utils", "os").severity,
            Severity::Dangerous
        );
        assert_eq!(
            classify("numpy.testing._private.utils", "runstring").severity,
            Severity::Dangerous
        );
        assert_eq!(
            classify("sklearn.ensemble._forest", "RandomForestClassifier").severity,
            Severity::Safe
        );
        assert_eq!(
            classify("numpy.core.multiarray", "_reconstruct").severity,
            Severity::Safe
        );
        assert_eq!(
            classify("torch._utils", "_rebuild_tensor_v2").severity,
            Severity::Safe
        );
        assert_eq!(classify("torch", "FloatStorage").severity, Severity::Safe);
        assert_eq!(classify("builtins", "set").severity, Severity::Safe);
        assert_eq!(classify("mypackage", "thing").severity, Severity::Unknown);
        assert_eq!(
            classify("sklearn.utils", "helper_function").severity,
            Severity::Unknown
        );
    }
}
