//! redoxfs-list: open a RedoxFS image through the upstream `redoxfs` library (the release the
//! Redox bootloader reads images with) and print every node, one JSON object per line, sorted
//! by path:
//!
//!     {"path":"/usr/bin/ion","kind":"file","mode":493,"uid":0,"gid":0,"size":123,"sha256":"…","target":null}
//!
//! `path` is absolute ("/" is the root directory), `kind` is file, dir, symlink or other,
//! `mode` the permission bits (mode & 0o7777), `sha256` the content's digest for files
//! (null otherwise), `target` a symlink's target (null otherwise).
//!
//! Usage: redoxfs-list IMAGE [--offset BYTES] [--size BYTES]
//!
//! `--offset` is where the file system starts in IMAGE (a partition of a GPT disk image);
//! `--size` limits it (default: to the end of IMAGE). Without `--offset` the library scans the
//! first 65536 blocks for a header, as upstream's own tools do. The image is never written:
//! the library's writes while opening (it commits a transaction) go to an in-memory overlay.
//! Exit status: 0 listed, 1 upstream refused the image (one line on stderr saying why),
//! 2 bad usage.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::process::ExitCode;

use redoxfs::{Disk, FileSystem, Node, TreeData, TreePtr, BLOCK_SIZE};
use sha2::{Digest, Sha256};
use syscall::error::{Error, Result as SysResult, EIO};

/// A read-only view of `len` bytes of a file from `offset`, with a copy-on-write overlay.
struct ImageDisk {
    file: File,
    offset: u64,
    len: u64,
    overlay: HashMap<u64, Vec<u8>>,
}

impl ImageDisk {
    fn pread(&self, pos: u64, buf: &mut [u8]) -> SysResult<usize> {
        if pos >= self.len {
            return Ok(0);
        }
        let n = (buf.len() as u64).min(self.len - pos) as usize;
        let mut done = 0;
        while done < n {
            match self.file.read_at(&mut buf[done..n], self.offset + pos + done as u64) {
                Ok(0) => break,
                Ok(k) => done += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return Err(Error::new(EIO)),
            }
        }
        Ok(done)
    }
}

impl Disk for ImageDisk {
    unsafe fn read_at(&mut self, block: u64, buffer: &mut [u8]) -> SysResult<usize> {
        let pos = block.checked_mul(BLOCK_SIZE).ok_or(Error::new(EIO))?;
        let mut n = self.pread(pos, buffer)?;
        for (i, chunk) in buffer.chunks_mut(BLOCK_SIZE as usize).enumerate() {
            if let Some(data) = self.overlay.get(&(block + i as u64)) {
                chunk.copy_from_slice(&data[..chunk.len()]);
                n = n.max(i * BLOCK_SIZE as usize + chunk.len());
            }
        }
        Ok(n)
    }

    unsafe fn write_at(&mut self, block: u64, buffer: &[u8]) -> SysResult<usize> {
        for (i, chunk) in buffer.chunks(BLOCK_SIZE as usize).enumerate() {
            let b = block + i as u64;
            let mut data = match self.overlay.remove(&b) {
                Some(d) => d,
                None => {
                    let mut d = vec![0u8; BLOCK_SIZE as usize];
                    self.pread(b * BLOCK_SIZE, &mut d)?;
                    d
                }
            };
            data[..chunk.len()].copy_from_slice(chunk);
            self.overlay.insert(b, data);
        }
        Ok(buffer.len())
    }

    fn size(&mut self) -> SysResult<u64> {
        Ok(self.len)
    }
}

struct Listed {
    kind: &'static str,
    mode: u16,
    uid: u32,
    gid: u32,
    size: u64,
    sha256: Option<String>,
    target: Option<String>,
}

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn opt(s: &Option<String>) -> String {
    s.as_deref().map_or_else(|| "null".to_string(), json_str)
}

fn errno(what: &str, e: Error) -> String {
    format!("{what}: {e} (errno {})", e.errno)
}

type Tx<'a> = redoxfs::Transaction<'a, ImageDisk>;

fn content(tx: &mut Tx, node: &TreeData<Node>, path: &str) -> Result<Vec<u8>, String> {
    let size = node.data().size();
    let mut out = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    while (out.len() as u64) < size {
        let n = tx
            .read_node_inner(node, out.len() as u64, &mut buf)
            .map_err(|e| errno(&format!("reading {path}"), e))?;
        if n == 0 {
            return Err(format!("reading {path}: ended at {} of {size} bytes", out.len()));
        }
        out.extend_from_slice(&buf[..n]);
    }
    Ok(out)
}

fn describe(tx: &mut Tx, node: &TreeData<Node>, path: &str) -> Result<Listed, String> {
    let d = node.data();
    let mode = d.mode();
    let kind = match mode & Node::MODE_TYPE {
        Node::MODE_FILE => "file",
        Node::MODE_DIR => "dir",
        Node::MODE_SYMLINK => "symlink",
        _ => "other",
    };
    let (mut sha256, mut target) = (None, None);
    if kind == "file" {
        let data = content(tx, node, path)?;
        sha256 = Some(Sha256::digest(&data).iter().map(|b| format!("{b:02x}")).collect());
    } else if kind == "symlink" {
        let data = content(tx, node, path)?;
        target = Some(String::from_utf8(data).map_err(|_| format!("{path}: symlink target is not UTF-8"))?);
    }
    Ok(Listed { kind, mode: mode & 0o7777, uid: d.uid(), gid: d.gid(), size: d.size(), sha256, target })
}

fn walk(tx: &mut Tx, out: &mut BTreeMap<String, Listed>) -> Result<(), String> {
    let root = tx.read_tree(TreePtr::<Node>::root()).map_err(|e| errno("reading the root node", e))?;
    out.insert("/".to_string(), describe(tx, &root, "/")?);
    // Directories by node id: a directory reached twice is a loop (or a hard-linked directory).
    let mut seen: HashSet<u32> = HashSet::new();
    seen.insert(root.id());
    let mut stack: Vec<(TreePtr<Node>, String)> = vec![(root.ptr(), String::new())];
    while let Some((ptr, prefix)) = stack.pop() {
        let mut children = Vec::new();
        tx.child_nodes(ptr, &mut children)
            .map_err(|e| errno(&format!("listing {}/", prefix), e))?;
        for entry in children {
            let name = entry
                .name()
                .ok_or_else(|| format!("{prefix}/: an entry name is not UTF-8"))?
                .to_string();
            if name.is_empty() || name == "." || name == ".." || name.contains('/') {
                return Err(format!("{prefix}/: bad entry name {name:?}"));
            }
            let path = format!("{prefix}/{name}");
            let node = tx.read_tree(entry.node_ptr()).map_err(|e| errno(&format!("reading {path}"), e))?;
            let listed = describe(tx, &node, &path)?;
            if listed.kind == "dir" {
                if !seen.insert(node.id()) {
                    return Err(format!("{path}: directory node {} reached twice (a loop)", node.id()));
                }
                stack.push((node.ptr(), path.clone()));
            }
            if out.insert(path.clone(), listed).is_some() {
                return Err(format!("{path}: listed twice"));
            }
        }
    }
    Ok(())
}

fn parse_u64(flag: &str, v: Option<String>) -> Result<u64, String> {
    let v = v.ok_or_else(|| format!("{flag} needs a value"))?;
    v.parse::<u64>().map_err(|_| format!("{flag} {v:?} is not a byte count"))
}

fn run() -> Result<(), (u8, String)> {
    let mut image = None;
    let (mut offset, mut size) = (None, None);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--offset" => offset = Some(parse_u64("--offset", args.next()).map_err(|e| (2, e))?),
            "--size" => size = Some(parse_u64("--size", args.next()).map_err(|e| (2, e))?),
            "-h" | "--help" => {
                println!("usage: redoxfs-list IMAGE [--offset BYTES] [--size BYTES]");
                return Ok(());
            }
            _ if image.is_none() && !a.starts_with("--") => image = Some(a),
            _ => return Err((2, format!("unexpected argument {a:?}"))),
        }
    }
    let image = image.ok_or((2, "usage: redoxfs-list IMAGE [--offset BYTES] [--size BYTES]".to_string()))?;
    let file = File::open(&image).map_err(|e| (2, format!("cannot open {image}: {e}")))?;
    let total = file.metadata().map_err(|e| (2, format!("{image}: {e}")))?.len();
    let off = offset.unwrap_or(0);
    if off % BLOCK_SIZE != 0 || off > total {
        return Err((2, format!("--offset {off} must be a multiple of {BLOCK_SIZE} inside {image} ({total} bytes)")));
    }
    let len = size.map_or(total - off, |s| s.min(total - off));
    let disk = ImageDisk { file, offset: off, len, overlay: HashMap::new() };
    let block = offset.map(|_| 0);
    let mut fs = FileSystem::open(disk, None, block, false)
        .map_err(|e| (1, format!("{image}: upstream redoxfs refuses to open it: {} (errno {})", e, e.errno)))?;
    let mut listing = BTreeMap::new();
    fs.tx(|tx| {
        walk(tx, &mut listing).map_err(|msg| {
            eprintln!("{image}: {msg}");
            Error::new(EIO)
        })
    })
    .map_err(|_| (1, String::new()))?;
    let stdout = io::stdout();
    let mut w = io::BufWriter::new(stdout.lock());
    for (path, l) in &listing {
        writeln!(
            w,
            "{{\"path\":{},\"kind\":\"{}\",\"mode\":{},\"uid\":{},\"gid\":{},\"size\":{},\"sha256\":{},\"target\":{}}}",
            json_str(path), l.kind, l.mode, l.uid, l.gid, l.size, opt(&l.sha256), opt(&l.target)
        )
        .map_err(|e| (2, format!("writing the listing: {e}")))?;
    }
    w.flush().map_err(|e| (2, format!("writing the listing: {e}")))?;
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, msg)) => {
            if !msg.is_empty() {
                eprintln!("redoxfs-list: {msg}");
            }
            ExitCode::from(code)
        }
    }
}
