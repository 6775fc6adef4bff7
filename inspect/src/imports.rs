//! Classifying the Python globals a pickle imports. An exact allowlist of the classes and
//! functions models are rebuilt from (named one by one, see `allowlist.txt`), a denylist of
//! what runs code or reaches the system (whole modules, and named callables inside otherwise
//! allowlisted packages), and everything else unknown. A deployment may extend the allowlist
//! with its own packages ([`Rules`]); the denylist always wins.

use std::{collections::HashSet, sync::OnceLock};

use crate::Severity;

/// Bumped whenever the built-in rules change a verdict: stored reports made under another
/// version (see [`Rules::fingerprint`]) are inspected again.
pub const RULES_VERSION: u32 = 2;

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
    "pickletools",
    "shelve",
    "marshal",
    "dill",
    "cloudpickle",
    "webbrowser",
    "pty",
    "commands",
    "ctypes",
    "_ctypes",
    "code",
    "codeop",
    "pdb",
    "bdb",
    "timeit",
    "profile",
    "cProfile",
    "multiprocessing",
    "concurrent",
    "asyncio",
    "http",
    "urllib",
    "urllib2",
    "urllib3",
    "requests",
    "httpx",
    "aiohttp",
    "httplib",
    "ftplib",
    "smtplib",
    "telnetlib",
    "xmlrpc",
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
    "types",
    "inspect",
    "gc",
    "weakref",
    "pip",
    "setuptools",
    "distutils",
    "venv",
    "ensurepip",
    "__main__",
    "IPython",
    "_posixsubprocess",
    "_winapi",
    "winreg",
];

/// Parts of allowlisted packages that compile, execute or fetch code (reducers that exec
/// generated source, code generators, hub and network loaders, nested unpicklers).
const DANGEROUS_SUBMODULES: &[&str] = &[
    "torch.fx",
    "torch.hub",
    "torch.jit",
    "torch.package",
    "torch.utils.cpp_extension",
    "torch._inductor",
    "torch._dynamo",
    "torch._export",
    "torch.export",
    "torch.distributed",
    "torch.multiprocessing",
    "torch.serialization",
    "torch._ops",
    "numpy.testing",
    "numpy.distutils",
    "numpy.f2py",
    "numpy.lib.npyio",
    "numpy.ctypeslib",
    "scipy.weave",
    "sklearn.utils._testing",
    "keras.utils",
    "keras.src.utils",
    "pandas.io",
    "joblib.numpy_pickle_utils",
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
    "__build_class__",
    "__loader__",
    "__spec__",
];

/// Callables known to be dangerous wherever they appear.
const DANGEROUS_GLOBALS: &[(&str, &str)] = &[
    ("operator", "attrgetter"),
    ("operator", "methodcaller"),
    ("_operator", "attrgetter"),
    ("_operator", "methodcaller"),
    ("functools", "partial"),
    ("_functools", "partial"),
    ("functools", "reduce"),
    ("_functools", "reduce"),
    ("numpy", "load"),
    ("numpy", "loads"),
    ("numpy", "loadtxt"),
    ("numpy", "genfromtxt"),
    ("numpy", "fromfile"),
    ("numpy", "memmap"),
    ("numpy.core.memmap", "memmap"),
    ("numpy._core.memmap", "memmap"),
    ("torch", "load"),
    ("torch", "compile"),
    ("torch.storage", "_load_from_bytes"),
    ("joblib", "load"),
    ("joblib.numpy_pickle", "load"),
    ("pandas", "read_pickle"),
    ("pandas", "eval"),
    ("codecs", "open"),
    ("codecs", "decode"),
    ("_codecs", "decode"),
    ("keras.models", "load_model"),
    ("keras.saving", "load_model"),
    ("scipy.io", "loadmat"),
];

/// Built-in types that only hold data.
const SAFE_BUILTINS: &[&str] = &[
    "set",
    "frozenset",
    "slice",
    "range",
    "xrange",
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

/// The named classes and functions models are rebuilt from, one `module:name` per line.
const ALLOWLIST: &str = include_str!("allowlist.txt");

fn allowlist() -> &'static HashSet<(&'static str, &'static str)> {
    static SET: OnceLock<HashSet<(&'static str, &'static str)>> = OnceLock::new();
    SET.get_or_init(|| {
        ALLOWLIST
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(|l| l.split_once(':'))
            .collect()
    })
}

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

fn within(module: &str, package: &str) -> bool {
    module == package
        || module
            .strip_prefix(package)
            .is_some_and(|rest| rest.starts_with('.'))
}

/// One entry of a deployment's own allowlist: `package.module.Name` (exactly that global) or
/// `package.module.*` (every global of that module and the modules below it).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    Exact(String, String),
    Below(String),
}

/// The rules an inspection classifies imports by: the built-in lists plus a deployment's own
/// allowed globals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    extra: Vec<Pattern>,
    source: Vec<String>,
}

fn is_dotted_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|part| {
            part.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

impl Rules {
    /// The built-in rules extended by `patterns` (`pkg.mod.Name` or `pkg.mod.*`). A pattern
    /// that is not of that form, or that would allow a denied module, is refused.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self, String> {
        let mut rules = Self::default();
        for raw in patterns {
            let raw = raw.as_ref().trim();
            if raw.is_empty() {
                continue;
            }
            let pattern = if let Some(module) = raw.strip_suffix(".*") {
                if !is_dotted_identifier(module) {
                    return Err(format!("`{raw}` is not `package.module.*`"));
                }
                Pattern::Below(module.to_owned())
            } else {
                let (module, name) = raw
                    .rsplit_once('.')
                    .filter(|(m, n)| is_dotted_identifier(m) && is_dotted_identifier(n))
                    .ok_or_else(|| format!("`{raw}` is not `package.module.Name`"))?;
                Pattern::Exact(module.to_owned(), name.to_owned())
            };
            let module = match &pattern {
                Pattern::Exact(m, _) | Pattern::Below(m) => m,
            };
            if denied_module(module).is_some() {
                return Err(format!("`{raw}` would allow a module that runs code"));
            }
            rules.extra.push(pattern);
            rules.source.push(raw.to_owned());
        }
        Ok(rules)
    }

    /// Identifies the rules a report was made under: the built-in version and the extra
    /// patterns. Reports made under another fingerprint are out of date.
    pub fn fingerprint(&self) -> String {
        let mut source = self.source.clone();
        source.sort();
        source.dedup();
        format!("v{RULES_VERSION}:{}", source.join(","))
    }

    fn allows(&self, module: &str, name: &str) -> bool {
        self.extra.iter().any(|p| match p {
            Pattern::Exact(m, n) => m == module && n == name,
            Pattern::Below(m) => within(module, m),
        })
    }

    /// Classifies `module.name` as SAFE, UNKNOWN or DANGEROUS.
    pub fn classify(&self, module: &str, name: &str) -> Verdict {
        if let Some(why) = denied_module(module) {
            return verdict(Severity::Dangerous, why);
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
            let reaches_danger = name.split('.').any(|part| {
                DANGEROUS_MODULES.contains(&part)
                    || DANGEROUS_BUILTINS.contains(&part)
                    || part.starts_with("__")
            });
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
        if DANGEROUS_MODULES.contains(&name) || DANGEROUS_BUILTINS.contains(&name) {
            return verdict(
                Severity::Dangerous,
                format!("reaches `{name}` through `{module}`"),
            );
        }
        if matches!(module, "builtins" | "__builtin__" | "__builtins__") {
            if SAFE_BUILTINS.contains(&name) {
                return verdict(Severity::Safe, "a built-in data type");
            }
            return verdict(Severity::Unknown, "a built-in that is not on the allowlist");
        }
        if allowlist().contains(&(module, name)) {
            return verdict(Severity::Safe, "on the allowlist of model building blocks");
        }
        if self.allows(module, name) {
            return verdict(Severity::Safe, "allowed by this deployment");
        }
        verdict(Severity::Unknown, "not on the allowlist")
    }
}

/// Why `module` is denied outright, if it is.
fn denied_module(module: &str) -> Option<String> {
    let top = module.split('.').next().unwrap_or(module);
    if DANGEROUS_MODULES.contains(&top) {
        return Some(format!(
            "`{top}` can run commands, load code or reach the system"
        ));
    }
    DANGEROUS_SUBMODULES
        .iter()
        .find(|p| within(module, p))
        .map(|p| format!("`{p}` compiles, runs or fetches code"))
}

/// Whether `module`, named by a Keras config, is one of Keras' own (and not a denied part of it).
pub fn is_keras_builtin(module: &str) -> bool {
    within(module, "keras") && denied_module(module).is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn severity(module: &str, name: &str) -> Severity {
        Rules::default().classify(module, name).severity
    }

    #[test]
    fn classifies_known_imports() {
        for (module, name) in [
            ("os", "system"),
            ("posix", "system"),
            ("builtins", "eval"),
            ("builtins", "exec"),
            ("__builtin__", "getattr"),
            ("sklearn.base", "os.system"),
            ("torch", "serialization.os.system"),
            ("collections", "__builtins__.eval"),
            ("sklearn.utils", "os"),
            ("numpy.testing._private.utils", "runstring"),
            ("torch.fx.graph_module", "reduce_graph_module"),
            ("torch.storage", "_load_from_bytes"),
            ("types", "FunctionType"),
            ("pip", "main"),
            ("functools", "partial"),
        ] {
            assert_eq!(
                severity(module, name),
                Severity::Dangerous,
                "{module}.{name}"
            );
        }
        for (module, name) in [
            ("sklearn.ensemble._forest", "RandomForestClassifier"),
            ("sklearn.tree._tree", "Tree"),
            ("numpy.core.multiarray", "_reconstruct"),
            ("torch._utils", "_rebuild_tensor_v2"),
            ("torch", "FloatStorage"),
            ("builtins", "set"),
            ("collections", "OrderedDict"),
        ] {
            assert_eq!(severity(module, name), Severity::Safe, "{module}.{name}");
        }
        for (module, name) in [
            ("mypackage", "thing"),
            ("sklearn.utils", "helper_function"),
            ("sklearn.utils._mocking", "CheckingClassifier"),
            ("numpy", "NotARealClass"),
            ("torch", "MadeUpStorage"),
            ("torch.nn.modules.linear", "Linear"),
            ("scipy.sparse._bogus", "Bogus"),
            ("builtins", "iter"),
        ] {
            assert_eq!(severity(module, name), Severity::Unknown, "{module}.{name}");
        }
    }

    #[test]
    fn a_deployment_extends_the_allowlist_but_never_past_the_denylist() {
        let rules = Rules::new(&["mycompany.models.*", "other.pkg.Net"]).unwrap();
        assert_eq!(
            rules.classify("mycompany.models.vision", "ResNet").severity,
            Severity::Safe
        );
        assert_eq!(rules.classify("other.pkg", "Net").severity, Severity::Safe);
        assert_eq!(
            rules.classify("other.pkg", "Other").severity,
            Severity::Unknown
        );
        assert_eq!(
            rules.classify("mycompany.modelsx", "A").severity,
            Severity::Unknown
        );
        assert_eq!(
            rules.classify("mycompany.models", "os.system").severity,
            Severity::Dangerous
        );
        assert!(Rules::new(&["os.*"]).is_err());
        assert!(Rules::new(&["torch.fx.*"]).is_err());
        assert!(Rules::new(&["*"]).is_err());
        assert!(Rules::new(&["my company.x"]).is_err());
        assert_ne!(rules.fingerprint(), Rules::default().fingerprint());
        assert_eq!(
            Rules::new(&["b.c.D", "a.*"]).unwrap().fingerprint(),
            Rules::new(&["a.*", "b.c.D"]).unwrap().fingerprint()
        );
    }
}
