//! redoxfs-write: redox-pants' native RedoxFS v8 writer. It lays out and writes exactly what
//! `redox_tools.redoxfs.writer` (the reference, docs/formats/redoxfs.md §13) writes for the same
//! manifest, size, offset, UUID and ctime, byte for byte, using every core.
//!
//!     redoxfs-write create --manifest M.json (-o IMG | --into FILE) --size SIZE [--offset BYTES]
//!                          [--uuid HEX] [--ctime N] [--base-dir DIR] [-q]
//!     redoxfs-write size --manifest M.json [--ctime N] [--base-dir DIR]
//!     redoxfs-write --help
//!
//! Relative `source`s are read from the manifest's directory, or from `--base-dir`.
//! `-o IMG` writes a new sparse file under a temporary name beside IMG and renames it at the
//! end (nothing is left behind on error); `--into FILE` writes bytes [offset, offset+size) of an
//! existing file (a disk image) and nothing else. `--size` takes bytes or K/M/G/T (e.g. 64M), or
//! `auto` (the smallest size the layout needs, rounded up to whole MiB). `REDOXFS_WRITE_THREADS`
//! sets the worker threads (default: the machine's cores); the bytes never depend on it.
//! Exit status: 0 written (or the usage asked for), 2 bad input or a failed write (one `error:` line on stderr).

mod format;
mod manifest;
mod plan;
mod uuid;
mod write;

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::process::ExitCode;

use crate::format::BLOCK_SIZE;
use crate::manifest::{py_repr, Manifest};

/// One clear line for the user (exit status 2).
#[derive(Debug)]
pub struct Error(String);

impl Error {
    pub fn new(msg: impl Into<String>) -> Error {
        Error(msg.into())
    }
}

/// The C library's text for an OS error (what Python's `strerror` shows).
pub fn strerror(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => unsafe { std::ffi::CStr::from_ptr(libc::strerror(code)) }.to_string_lossy().into_owned(),
        None => e.to_string(),
    }
}

const MIB: u64 = 1 << 20;

struct Args {
    cmd: String,
    manifest: Option<String>,
    base_dir: Option<String>,
    output: Option<String>,
    into: Option<String>,
    size: Option<String>,
    offset: u64,
    uuid: Option<String>,
    ctime: Option<u64>,
    quiet: bool,
}

const USAGE: &str = "usage: redoxfs-write create --manifest M.json (-o IMG | --into FILE) --size SIZE [--offset BYTES] [--uuid HEX] [--ctime N] [--base-dir DIR] [-q]\n       redoxfs-write size --manifest M.json [--ctime N] [--base-dir DIR]";

/// `--help`, `-h` or `help` (in place of the command, or among its arguments): the usage on
/// stdout, exit status 0.
fn wants_help(argv: &[String]) -> bool {
    matches!(argv.first().map(String::as_str), Some("help" | "-h" | "--help"))
        || argv.iter().skip(1).any(|a| a == "-h" || a == "--help")
}

fn parse_args(argv: &[String]) -> Result<Args, Error> {
    let mut it = argv.iter();
    let cmd = it.next().cloned().ok_or_else(|| Error::new(format!("no command\n{USAGE}")))?;
    if cmd != "create" && cmd != "size" {
        return Err(Error::new(format!("unknown command {}\n{USAGE}", py_repr(&cmd))));
    }
    let mut a = Args {
        cmd,
        manifest: None,
        base_dir: None,
        output: None,
        into: None,
        size: None,
        offset: 0,
        uuid: None,
        ctime: None,
        quiet: false,
    };
    while let Some(flag) = it.next() {
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (flag.clone(), None),
        };
        if name == "-q" || name == "--quiet" {
            a.quiet = true;
            continue;
        }
        let mut value = || -> Result<String, Error> {
            match &inline {
                Some(v) => Ok(v.clone()),
                None => it.next().cloned().ok_or_else(|| Error::new(format!("{name} needs a value"))),
            }
        };
        match name.as_str() {
            "--manifest" => a.manifest = Some(value()?),
            "--base-dir" => a.base_dir = Some(value()?),
            "-o" | "--output" => a.output = Some(value()?),
            "--into" => a.into = Some(value()?),
            "--size" => a.size = Some(value()?),
            "--offset" => {
                let v = value()?;
                a.offset =
                    v.parse().map_err(|_| Error::new(format!("--offset {} is not a byte count", py_repr(&v))))?;
            }
            "--uuid" => a.uuid = Some(value()?),
            "--ctime" => {
                let v = value()?;
                a.ctime = Some(v.parse().map_err(|_| Error::new(format!("ctime {v} is outside 0..2^64-1")))?);
            }
            _ => return Err(Error::new(format!("unknown argument {}\n{USAGE}", py_repr(flag)))),
        }
    }
    if a.manifest.is_none() {
        return Err(Error::new(format!("--manifest is required\n{USAGE}")));
    }
    if a.cmd == "create" {
        if a.output.is_some() == a.into.is_some() {
            return Err(Error::new(format!("create needs exactly one of -o IMG and --into FILE\n{USAGE}")));
        }
        if a.size.is_none() {
            return Err(Error::new(format!("--size is required\n{USAGE}")));
        }
    }
    Ok(a)
}

/// `parse_size` of redox_tools.redoxfs: bytes or a number with K/M/G/T (optionally iB/B).
fn parse_size(text: &str) -> Result<u64, Error> {
    let bad = || Error::new(format!("bad size {}: use bytes or a number with K/M/G/T (e.g. 64M)", py_repr(text)));
    let t = text.trim();
    let digits = t.chars().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 {
        return Err(bad());
    }
    let n: u64 = t[..digits].parse().map_err(|_| bad())?;
    let rest = t[digits..].trim_start().to_ascii_uppercase();
    let (unit, tail) = match rest.chars().next() {
        Some(c @ ('K' | 'M' | 'G' | 'T')) => (c, &rest[1..]),
        _ => (' ', rest.as_str()),
    };
    if !matches!(tail, "" | "B" | "IB") {
        return Err(bad());
    }
    let mult: u64 = match unit {
        'K' => 1 << 10,
        'M' => 1 << 20,
        'G' => 1 << 30,
        'T' => 1 << 40,
        _ => 1,
    };
    n.checked_mul(mult).ok_or_else(bad)
}

fn parse_uuid(text: &str) -> Result<[u8; 16], Error> {
    let hexs: String = text.chars().filter(|&c| c != '-').collect();
    if !hexs.len().is_multiple_of(2) || !hexs.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(Error::new(format!("--uuid {} is not hex", py_repr(text))));
    }
    let bytes: Vec<u8> = (0..hexs.len()).step_by(2).map(|i| u8::from_str_radix(&hexs[i..i + 2], 16).unwrap()).collect();
    if bytes.len() != 16 {
        return Err(Error::new(format!("--uuid must be 16 bytes (32 hex digits), got {}", bytes.len())));
    }
    let mut u = [0u8; 16];
    u.copy_from_slice(&bytes);
    Ok(u)
}

fn threads() -> usize {
    if let Ok(v) = std::env::var("REDOXFS_WRITE_THREADS") {
        if let Ok(n) = v.trim().parse::<usize>() {
            if n >= 1 {
                return n.min(64);
            }
        }
    }
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(8)
}

/// A new file beside `out`, created exclusively (never through a planted link).
fn temp_beside(out: &str) -> Result<(File, String), Error> {
    let path = std::path::Path::new(out);
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    let base = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let seed =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    for k in 0..100u32 {
        let name = dir.join(format!(".{base}.{:08x}{k:02}.tmp", seed ^ std::process::id()));
        match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .mode(0o600)
            .open(&name)
        {
            Ok(f) => return Ok((f, name.to_string_lossy().into_owned())),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::new(format!("cannot create {}: {}", name.display(), strerror(&e)))),
        }
    }
    Err(Error::new(format!("cannot create a temporary file beside {out}")))
}

fn create(a: &Args, m: &Manifest) -> Result<(), Error> {
    let uuid = match &a.uuid {
        Some(t) => Some(parse_uuid(t)?),
        None => None,
    };
    let plan = plan::plan(m, a.ctime, threads())?;
    let need = plan.needed_blocks() * BLOCK_SIZE;
    let size_arg = a.size.as_deref().unwrap_or("");
    let size = if size_arg == "auto" { need.div_ceil(MIB) * MIB } else { parse_size(size_arg)? };
    if size % BLOCK_SIZE != 0 {
        return Err(Error::new(format!("filesystem size {size} is not a multiple of {BLOCK_SIZE} bytes")));
    }
    if size < need {
        return Err(Error::new(format!(
            "image too small: this RedoxFS needs at least {need} bytes ({} MiB), got {size} bytes ({:.1} MiB)",
            need.div_ceil(MIB),
            size as f64 / MIB as f64
        )));
    }
    let uuid_fn = || uuid.unwrap_or_else(|| uuid::default_uuid(m, size, a.ctime));
    if let Some(into) = &a.into {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(into)
            .map_err(|e| Error::new(format!("cannot open {into}: {}", strerror(&e))))?;
        let mut sink = write::Sink::new(f, into, a.offset, size);
        sink.prepare()?;
        return write::write(&plan, m, &sink, &uuid_fn, threads());
    }
    let out = a.output.as_deref().unwrap_or("");
    let (f, tmp) = temp_beside(out)?;
    let result = (|| {
        f.set_len(a.offset + size)
            .map_err(|e| Error::new(format!("cannot write the image {out}: {}", strerror(&e))))?;
        let mut sink = write::Sink::new(f, out, a.offset, size);
        sink.prepare()?;
        write::write(&plan, m, &sink, &uuid_fn, threads())?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))
            .and_then(|_| std::fs::rename(&tmp, out))
            .map_err(|e| Error::new(format!("cannot write the image {out}: {}", strerror(&e))))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    } else if !a.quiet {
        eprintln!("wrote {out}: RedoxFS {} MiB, {} entries", size >> 20, m.entries.len());
    }
    result
}

fn run(argv: &[String]) -> Result<(), Error> {
    if wants_help(argv) {
        println!("{USAGE}");
        return Ok(());
    }
    let a = parse_args(argv)?;
    let mut m = Manifest::load(a.manifest.as_deref().unwrap_or(""))?;
    if let Some(dir) = &a.base_dir {
        m.base_dir = dir.clone();
    }
    if a.cmd == "size" {
        let need = plan::plan(&m, a.ctime, threads())?.needed_blocks() * BLOCK_SIZE;
        println!("{need} bytes ({} MiB)", need.div_ceil(MIB));
        return Ok(());
    }
    create(&a, &m)
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    match run(&argv) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Error(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(2)
        }
    }
}
