//! Root manifests (the JSON form of `redox_tools.manifest`): load, check and normalise them the
//! way `Manifest.load` does, with the same error texts where the Python loader has one.

use std::cell::RefCell;
use std::fmt::Write as _;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

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
        Some(Value::Number(n)) => match n.as_u64() {
            Some(u) => Ok(u),
            None if n.is_i64() || n.is_f64() => {
                Err(Error::new(format!("{path}: {name} {n} is not a non-negative integer")))
            }
            None => Err(Error::new(format!("{path}: {name} {n} is not a non-negative integer below 2^64"))),
        },
        Some(other) => Err(Error::new(format!("{path}: {name} {} is not a non-negative integer", value_repr(other)))),
    }
}

/// One entry's JSON object as parsed: the value of each known key (the last one, as a dict
/// keeps it) and the first unknown key.
#[derive(Default)]
struct RawEntry {
    values: [Option<Value>; KEYS.len()],
    unknown: Option<String>,
}

impl RawEntry {
    fn slot(key: &str) -> usize {
        KEYS.iter().position(|k| *k == key).expect("a known key")
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.values[Self::slot(key)].as_ref()
    }

    fn take(&mut self, key: &str) -> Option<Value> {
        self.values[Self::slot(key)].take()
    }

    fn take_str(&mut self, path: &str, key: &str) -> Result<Option<String>, Error> {
        match self.take(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(Error::new(format!("{path}: {key} {} is not a string", value_repr(&other)))),
        }
    }
}

/// The checks and words of the Python loader, in its order.
fn entry_of(mut raw: RawEntry) -> Result<Entry, Error> {
    if let Some(k) = &raw.unknown {
        return Err(Error::new(format!("malformed manifest entry: unexpected key {}", py_repr(k))));
    }
    for k in ["path", "kind", "mode"] {
        if raw.get(k).is_none() {
            return Err(Error::new(format!("malformed manifest entry: missing {}", py_repr(k))));
        }
    }
    let path = match raw.take("path") {
        Some(Value::String(s)) => s,
        Some(other) => return Err(Error::new(format!("entry path {} is not a string", value_repr(&other)))),
        None => unreachable!("checked above"),
    };
    let p = path.as_str();
    let mode = match raw.get("mode") {
        Some(Value::Number(n)) => {
            n.as_u64().ok_or_else(|| Error::new(format!("{p}: mode {n} is not a non-negative integer")))?
        }
        Some(other) => {
            return Err(Error::new(format!("{p}: mode {} is not a non-negative integer", value_repr(other))))
        }
        None => unreachable!("checked above"),
    };
    let uid = uint_field(p, "uid", raw.get("uid"))?;
    let gid = uint_field(p, "gid", raw.get("gid"))?;
    let mtime = uint_field(p, "mtime", raw.get("mtime"))?;
    let size = uint_field(p, "size", raw.get("size"))?;
    let source = raw.take_str(p, "source")?;
    let sha256 = raw.take_str(p, "sha256")?;
    let target = raw.take_str(p, "target")?;
    let origin = raw.take_str(p, "origin")?.unwrap_or_default();
    let kind = match raw.get("kind") {
        Some(Value::String(s)) if s == "file" => Kind::File,
        Some(Value::String(s)) if s == "dir" => Kind::Dir,
        Some(Value::String(s)) if s == "symlink" => Kind::Symlink,
        other => {
            return Err(Error::new(format!(
                "{p}: unknown entry kind {} (expected one of ('file', 'dir', 'symlink'))",
                value_repr(other.unwrap_or(&Value::Null))
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

/// Top-level JSON of a manifest, read with its entries checked one by one as they are parsed
/// (never all entries' JSON at once: 100 000-entry manifests).
struct Doc {
    version: Option<Value>,
    entries: Option<Option<Vec<Entry>>>, // None: no "entries"; Some(None): not a list
}

/// The first bad entry, reported with the Python loader's words rather than serde's.
type Bad<'c> = &'c RefCell<Option<Error>>;

struct DocVisitor<'c> {
    bad: Bad<'c>,
}

struct EntriesSeed<'c> {
    bad: Bad<'c>,
}

macro_rules! not_this_shape {
    ($($name:ident: $t:ty),*) => {
        $(fn $name<E: de::Error>(self, _: $t) -> Result<Self::Value, E> { Ok(None) })*
    };
}

impl<'de> Visitor<'de> for DocVisitor<'_> {
    type Value = Option<Doc>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a manifest object")
    }

    not_this_shape!(visit_bool: bool, visit_i64: i64, visit_u64: u64, visit_f64: f64, visit_str: &str);

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut doc = Doc { version: None, entries: None };
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "version" => doc.version = Some(map.next_value::<Value>()?),
                "entries" => {
                    let seed = EntriesSeed { bad: self.bad };
                    doc.entries = Some(map.next_value_seed(seed)?);
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Some(doc))
    }
}

impl<'de> DeserializeSeed<'de> for EntriesSeed<'_> {
    type Value = Option<Vec<Entry>>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for EntriesSeed<'_> {
    type Value = Option<Vec<Entry>>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a list of entries")
    }

    not_this_shape!(visit_bool: bool, visit_i64: i64, visit_u64: u64, visit_f64: f64, visit_str: &str);

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(checked) = seq.next_element_seed(EntrySeed)? {
            match checked {
                Ok(e) => out.push(e),
                Err(e) => {
                    *self.bad.borrow_mut() = Some(e);
                    return Err(de::Error::custom("bad entry"));
                }
            }
        }
        Ok(Some(out))
    }
}

/// One element of `entries`, parsed straight into its fields (no map per entry: 100 000-entry
/// manifests), then checked; anything but an object is "not an entry".
struct EntrySeed;

impl<'de> DeserializeSeed<'de> for EntrySeed {
    type Value = Result<Entry, Error>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

fn not_an_entry(v: Value) -> Result<Entry, Error> {
    Err(Error::new(format!("malformed manifest entry: {} is not an entry", value_repr(&v))))
}

impl<'de> Visitor<'de> for EntrySeed {
    type Value = Result<Entry, Error>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a manifest entry")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(not_an_entry(Value::Bool(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(not_an_entry(Value::from(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(not_an_entry(Value::from(v)))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(not_an_entry(Value::from(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(not_an_entry(Value::String(v.to_string())))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(not_an_entry(Value::Null))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(not_an_entry(Value::Array(Vec::new())))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut raw = RawEntry::default();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            match key {
                Ok(i) => raw.values[i] = Some(map.next_value::<Value>()?),
                Err(unknown) => {
                    map.next_value::<IgnoredAny>()?;
                    raw.unknown.get_or_insert(unknown);
                }
            }
        }
        Ok(entry_of(raw))
    }
}

/// An entry's key: its index in KEYS, or the unknown key itself.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Result<usize, String>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_identifier(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Result<usize, String>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(KEYS.iter().position(|k| *k == v).ok_or_else(|| v.to_string()))
    }
}

impl Manifest {
    pub fn load(path: &str) -> Result<Manifest, Error> {
        let bytes = std::fs::read(path)
            .map_err(|e| Error::new(format!("cannot read manifest {path}: {}", crate::strerror(&e))))?;
        let bad = RefCell::new(None);
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        let parsed = de.deserialize_any(DocVisitor { bad: &bad }).and_then(|doc| de.end().map(|_| doc));
        if let Some(e) = bad.into_inner() {
            return Err(e);
        }
        let doc = parsed.map_err(|e| Error::new(format!("cannot read manifest {path}: {e}")))?;
        let abs = std::path::absolute(path).map_err(|e| Error::new(format!("cannot read manifest {path}: {e}")))?;
        let base_dir = abs.parent().map(|p| p.to_string_lossy().into_owned()).unwrap_or_else(|| "/".into());
        let doc = match doc {
            Some(d) if d.version == Some(Value::Number(1.into())) => d,
            _ => return Err(Error::new(format!("manifest {path}: not a version-1 manifest (no \"version\": 1)"))),
        };
        let entries = match doc.entries {
            Some(Some(a)) => a,
            Some(None) => return Err(Error::new("malformed manifest entry: 'entries' is not a list")),
            None => return Err(Error::new("malformed manifest entry: 'entries'")),
        };
        Self::from_entries(entries, base_dir)
    }

    /// Normalise paths, refuse conflicting duplicates (the same content twice is one entry, the
    /// later one's source wins) and sort by path (byte order = code point order).
    fn from_entries(mut entries: Vec<Entry>, base_dir: String) -> Result<Manifest, Error> {
        for e in entries.iter_mut() {
            let norm = normalize_path(&e.path)?;
            if norm != e.path {
                e.path = norm;
            }
        }
        // stable: entries for one path stay in manifest order
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        let mut out: Vec<Entry> = Vec::with_capacity(entries.len());
        for e in entries {
            if let Some(prev) = out.last_mut() {
                if prev.path == e.path {
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
                    *prev = e;
                    continue;
                }
            }
            out.push(e);
        }
        Ok(Manifest { entries: out, base_dir })
    }
}
