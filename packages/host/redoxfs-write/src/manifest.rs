//! Root manifests (the JSON form of `redox_tools.manifest`): load, check and normalise them the
//! way `Manifest.load` does, with the same error texts where the Python loader has one.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Map, Number, Value};

use crate::Error;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::Dir => "dir",
            Kind::Symlink => "symlink",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Entry {
    pub path: String,
    pub kind: Kind,
    pub mode: u64,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub source: Option<String>,
    pub sha256: Option<String>,
    pub size: u64,
    pub target: Option<String>,
    pub origin: String,
}

/// A loaded manifest: entries sorted by path (code point order, as Python sorts `str`), and the
/// directory relative sources are read from (the manifest file's own directory).
pub struct Manifest {
    pub entries: Vec<Entry>,
    pub base_dir: String,
}

const KEYS: [&str; 11] =
    ["path", "kind", "mode", "uid", "gid", "mtime", "source", "sha256", "size", "target", "origin"];

/// Python's `repr` of a string (quotes and escapes as `repr(str)` prints them).
pub fn py_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') { '"' } else { '\'' };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

fn value_repr(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => py_repr(s),
        Value::Array(_) => "[...]".into(),
        Value::Object(_) => "{...}".into(),
    }
}

/// `normalize_path` of redox_tools.manifest.
pub fn normalize_path(path: &str) -> Result<String, Error> {
    if path.contains('\0') {
        return Err(Error::new(format!("path {} contains a NUL byte", py_repr(path))));
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => continue,
            ".." => {
                return Err(Error::new(format!(
                    "path {} contains '..': image paths may not escape the root",
                    py_repr(path)
                )))
            }
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Err(Error::new(format!("path {} names the root directory itself", py_repr(path))));
    }
    Ok(parts.join("/"))
}

fn uint_field(path: &str, name: &str, v: Option<&Value>) -> Result<u64, Error> {
    match v {
        None => Ok(0),
        Some(Value::Number(n)) => match number_u64(n) {
            Some(u) => Ok(u),
            None => Err(Error::new(format!("{path}: {name} {n} is not a non-negative integer below 2^64"))),
        },
        Some(other) => Err(Error::new(format!("{path}: {name} {} is not a non-negative integer", value_repr(other)))),
    }
}

fn number_u64(n: &Number) -> Option<u64> {
    n.as_u64()
}

fn str_field(path: &str, name: &str, v: Option<&Value>) -> Result<Option<String>, Error> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(Error::new(format!("{path}: {name} {} is not a string", value_repr(other)))),
    }
}

fn entry_of(obj: &Map<String, Value>, manifest_path: &str) -> Result<Entry, Error> {
    for k in obj.keys() {
        if !KEYS.contains(&k.as_str()) {
            return Err(Error::new(format!(
                "malformed manifest entry in {manifest_path}: unexpected key {}",
                py_repr(k)
            )));
        }
    }
    for k in ["path", "kind", "mode"] {
        if !obj.contains_key(k) {
            return Err(Error::new(format!("malformed manifest entry: missing {}", py_repr(k))));
        }
    }
    let path = match &obj["path"] {
        Value::String(s) => s.clone(),
        other => return Err(Error::new(format!("entry path {} is not a string", value_repr(other)))),
    };
    let p = path.as_str();
    let mode = match &obj["mode"] {
        Value::Number(n) => {
            number_u64(n).ok_or_else(|| Error::new(format!("{p}: mode {n} is not a non-negative integer")))?
        }
        other => return Err(Error::new(format!("{p}: mode {} is not a non-negative integer", value_repr(other)))),
    };
    let uid = uint_field(p, "uid", obj.get("uid"))?;
    let gid = uint_field(p, "gid", obj.get("gid"))?;
    let mtime = uint_field(p, "mtime", obj.get("mtime"))?;
    let size = uint_field(p, "size", obj.get("size"))?;
    let source = str_field(p, "source", obj.get("source"))?;
    let sha256 = str_field(p, "sha256", obj.get("sha256"))?;
    let target = str_field(p, "target", obj.get("target"))?;
    let origin = str_field(p, "origin", obj.get("origin"))?.unwrap_or_default();
    let kind = match &obj["kind"] {
        Value::String(s) if s == "file" => Kind::File,
        Value::String(s) if s == "dir" => Kind::Dir,
        Value::String(s) if s == "symlink" => Kind::Symlink,
        other => {
            return Err(Error::new(format!(
                "{p}: unknown entry kind {} (expected one of ('file', 'dir', 'symlink'))",
                value_repr(other)
            )))
        }
    };
    if mode > 0o7777 {
        return Err(Error::new(format!("{p}: mode {mode:#o} is not a permission mode (0..0o7777)")));
    }
    if kind == Kind::File && (source.is_none() || sha256.is_none()) {
        return Err(Error::new(format!("{p}: file entry needs a source and a sha256")));
    }
    if kind == Kind::Symlink && target.as_deref().unwrap_or("").is_empty() {
        return Err(Error::new(format!("{p}: symlink entry needs a target")));
    }
    Ok(Entry { path, kind, mode, uid, gid, mtime, source, sha256, size, target, origin })
}

fn same_content(a: &Entry, b: &Entry) -> bool {
    (a.kind, a.mode, a.uid, a.gid, a.mtime, &a.sha256, a.size, &a.target)
        == (b.kind, b.mode, b.uid, b.gid, b.mtime, &b.sha256, b.size, &b.target)
}

fn describe(e: &Entry) -> String {
    match e.kind {
        Kind::File => {
            let sha = e.sha256.as_deref().unwrap_or("None");
            format!("sha256 {}, mode {:o}", sha.chars().take(12).collect::<String>(), e.mode)
        }
        Kind::Symlink => format!("-> {}", e.target.as_deref().unwrap_or("None")),
        Kind::Dir => format!("mode {:o}", e.mode),
    }
}

fn origin_or_q(e: &Entry) -> &str {
    if e.origin.is_empty() {
        "?"
    } else {
        &e.origin
    }
}

impl Manifest {
    pub fn load(path: &str) -> Result<Manifest, Error> {
        let text = std::fs::read(path)
            .map_err(|e| Error::new(format!("cannot read manifest {path}: {}", crate::strerror(&e))))?;
        let data: Value =
            serde_json::from_slice(&text).map_err(|e| Error::new(format!("cannot read manifest {path}: {e}")))?;
        drop(text);
        let abs = std::path::absolute(path).map_err(|e| Error::new(format!("cannot read manifest {path}: {e}")))?;
        let base_dir = abs.parent().map(|p| p.to_string_lossy().into_owned()).unwrap_or_else(|| "/".into());
        Self::from_json(data, path, base_dir)
    }

    fn from_json(data: Value, manifest_path: &str, base_dir: String) -> Result<Manifest, Error> {
        let mut data = match data {
            Value::Object(m) if m.get("version") == Some(&Value::Number(1.into())) => m,
            _ => return Err(Error::new("not a version-1 manifest")),
        };
        let raw = match data.remove("entries") {
            Some(Value::Array(a)) => a,
            Some(_) => return Err(Error::new("malformed manifest entry: 'entries' is not a list")),
            None => return Err(Error::new("malformed manifest entry: 'entries'")),
        };
        let mut by_path: BTreeMap<String, Entry> = BTreeMap::new();
        for v in raw {
            let obj = match v {
                Value::Object(o) => o,
                other => {
                    return Err(Error::new(format!("malformed manifest entry: {} is not an entry", value_repr(&other))))
                }
            };
            let mut e = entry_of(&obj, manifest_path)?;
            let norm = normalize_path(&e.path)?;
            e.path = norm;
            if let Some(prev) = by_path.get(&e.path) {
                if !same_content(prev, &e) {
                    return Err(Error::new(format!(
                        "conflict at /{}: {} installs a {} ({}) and {} installs a {} ({})",
                        prev.path,
                        origin_or_q(prev),
                        prev.kind.as_str(),
                        describe(prev),
                        origin_or_q(&e),
                        e.kind.as_str(),
                        describe(&e)
                    )));
                }
            }
            by_path.insert(e.path.clone(), e);
        }
        // BTreeMap<String> orders by bytes; UTF-8 byte order is code point order.
        Ok(Manifest { entries: by_path.into_values().collect(), base_dir })
    }
}
