//! The default UUID of writer.py's `default_uuid`: the first 16 bytes of SHA-256 over
//! "redoxfs-uuid-v1\0" + the canonical JSON of {"ctime", "entries", "size"} (keys sorted,
//! no spaces, ASCII-only escapes as Python's json module writes them), version-4/variant bits set.

use sha2::{Digest, Sha256};

use crate::manifest::Manifest;

/// A JSON string as Python's `json.dumps` (ensure_ascii) writes it.
fn json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{:04x}", u));
                }
            }
        }
    }
    out.push('"');
}

fn json_opt(out: &mut String, s: &Option<String>) {
    match s {
        Some(s) => json_str(out, s),
        None => out.push_str("null"),
    }
}

pub fn default_uuid(m: &Manifest, size: u64, ctime: Option<u64>) -> [u8; 16] {
    let mut h = Sha256::new();
    h.update(b"redoxfs-uuid-v1\0");
    let mut doc = String::with_capacity(256);
    doc.push_str("{\"ctime\":");
    match ctime {
        Some(t) => doc.push_str(&t.to_string()),
        None => doc.push_str("null"),
    }
    doc.push_str(",\"entries\":[");
    for (i, e) in m.entries.iter().enumerate() {
        if i > 0 {
            doc.push(',');
        }
        doc.push('[');
        json_str(&mut doc, &e.path);
        doc.push(',');
        json_str(&mut doc, e.kind.as_str());
        doc.push_str(&format!(",{},{},{},{},{},", e.mode, e.uid, e.gid, e.mtime, e.size));
        json_opt(&mut doc, &e.sha256);
        doc.push(',');
        json_opt(&mut doc, &e.target);
        doc.push(']');
        if doc.len() > 1 << 16 {
            h.update(doc.as_bytes());
            doc.clear();
        }
    }
    doc.push_str(&format!("],\"size\":{size}}}"));
    h.update(doc.as_bytes());
    let d = h.finalize();
    let mut u = [0u8; 16];
    u.copy_from_slice(&d[..16]);
    u[6] = (u[6] & 0x0F) | 0x40;
    u[8] = (u[8] & 0x3F) | 0x80;
    u
}
