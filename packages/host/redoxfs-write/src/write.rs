//! Writing a planned RedoxFS: every node is an independent job (its content records, BlockLists,
//! DirLists, HTree blocks and node block depend only on the node itself and its children's ids),
//! so worker threads take claims (runs of consecutive nodes, whose blocks are contiguous),
//! biggest first, stage each claim's blocks and write them with a few positional writes; the
//! node tree, the allocation log and the header (which need every node's hash) are written last,
//! the header at the very end. The bytes are those of writer.py's batches.

use std::fs::File;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use crate::format::*;
use crate::manifest::Kind;
use crate::manifest::Manifest;
use crate::plan::{source_path, Content, Node, Plan};
use crate::Error;

/// Records read at a time from a file too big for a stage (a multiple of the 128 KiB record).
const CHUNK_BYTES: usize = 4 << 20;
/// The blocks a worker stages at most: a claim is a run of consecutive nodes whose blocks (in
/// plan order they are contiguous) fit in it, written with a few large writes; a node bigger
/// than this is a claim of its own, its records written as they are read.
const STAGE_BLOCKS: u64 = 1024;

pub struct Sink {
    pub file: File,
    pub name: String,
    pub offset: u64,
    pub size: u64,
    pub fresh: bool,
}

fn os_err(e: std::io::Error) -> String {
    crate::strerror(&e)
}

impl Sink {
    pub fn new(file: File, name: &str, offset: u64, size: u64) -> Sink {
        Sink { file, name: name.to_string(), offset, size, fresh: false }
    }

    /// Find out whether the region reads as holes (then zero pages need not be written);
    /// otherwise punch a hole over it; failing that, clear stale headers in the ring.
    pub fn prepare(&mut self) -> Result<(), Error> {
        let md = self.file.metadata().map_err(|e| self.io_error(e))?;
        if md.is_file() && md.len() < self.offset + self.size {
            self.file.set_len(self.offset + self.size).map_err(|e| self.io_error(e))?;
        }
        self.fresh = self.region_is_hole();
        if !self.fresh && md.is_file() && self.punch_hole() {
            self.fresh = self.region_is_hole();
        }
        if !self.fresh {
            let mut ring = vec![0u8; (HEADER_RING as usize - 1) * BS];
            let mut got = 0;
            while got < ring.len() {
                match self.file.read_at(&mut ring[got..], self.offset + BLOCK_SIZE + got as u64) {
                    Ok(0) => break,
                    Ok(k) => got += k,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(self.io_error(e)),
                }
            }
            let zero = [0u8; BS];
            for i in 0..HEADER_RING as usize - 1 {
                if ring[i * BS..(i + 1) * BS].iter().any(|&b| b != 0) {
                    self.write(i as u64 + 1, &zero)?;
                }
            }
        }
        Ok(())
    }

    fn region_is_hole(&self) -> bool {
        let fd = self.file.as_raw_fd();
        let pos = unsafe { libc::lseek(fd, self.offset as libc::off_t, libc::SEEK_DATA) };
        if pos < 0 {
            return std::io::Error::last_os_error().raw_os_error() == Some(libc::ENXIO);
        }
        pos as u64 >= self.offset + self.size
    }

    fn punch_hole(&self) -> bool {
        let fd = self.file.as_raw_fd();
        let mode = libc::FALLOC_FL_KEEP_SIZE | libc::FALLOC_FL_PUNCH_HOLE;
        unsafe { libc::fallocate(fd, mode, self.offset as libc::off_t, self.size as libc::off_t) == 0 }
    }

    fn io_error(&self, e: std::io::Error) -> Error {
        Error::new(format!("cannot write the image {}: {}", self.name, os_err(e)))
    }

    /// Write `data` at block `blk` of the file system.
    pub fn write(&self, blk: u64, data: &[u8]) -> Result<(), Error> {
        self.file.write_all_at(data, self.offset + blk * BLOCK_SIZE).map_err(|e| self.io_error(e))
    }
}

/// A worker's image of one claim's blocks [start, end): everything the claim writes lands here
/// first (zeroed, so padding and gaps are zeros) and leaves in a few large writes of the runs
/// that hold something (zero data pages stay holes on a fresh image).
struct Stage {
    start: u64,
    end: u64,
    buf: Vec<u8>,
    runs: Vec<(u64, u64)>,
}

impl Stage {
    fn reset(&mut self, start: u64, end: u64) {
        self.start = start;
        self.end = end;
        let n = ((end - start) as usize) * BS;
        if self.buf.len() < n {
            self.buf.resize(n, 0);
        }
        self.buf[..n].fill(0);
        self.runs.clear();
    }

    fn holds(&self, blk: u64, count: u64) -> bool {
        blk >= self.start && blk + count <= self.end
    }

    fn slice(&mut self, blk: u64, count: u64) -> &mut [u8] {
        let at = ((blk - self.start) as usize) * BS;
        &mut self.buf[at..at + count as usize * BS]
    }

    fn mark(&mut self, blk: u64, count: u64) {
        if count > 0 {
            self.runs.push((blk, blk + count));
        }
    }

    /// Write the marked runs (adjacent ones merged) and forget them.
    fn flush(&mut self, sink: &Sink) -> Result<(), Error> {
        self.runs.sort_unstable();
        let mut i = 0;
        while i < self.runs.len() {
            let (a, mut b) = self.runs[i];
            i += 1;
            while i < self.runs.len() && self.runs[i].0 <= b {
                b = b.max(self.runs[i].1);
                i += 1;
            }
            let from = ((a - self.start) as usize) * BS;
            sink.write(a, &self.buf[from..from + ((b - a) as usize) * BS])?;
        }
        self.runs.clear();
        Ok(())
    }
}

/// The runs [first, end) of non-zero pages among the first `pages` pages of `buf`: what a fresh
/// (all-hole) image needs written; zero pages stay holes.
fn nonzero_runs(buf: &[u8], pages: usize) -> Vec<(usize, usize)> {
    let zero = |q: usize| page_is_zero(&buf[q * BS..(q + 1) * BS]);
    let mut runs = Vec::new();
    let mut p = 0;
    while p < pages {
        if zero(p) {
            p += 1;
            continue;
        }
        let q0 = p;
        while p < pages && !zero(p) {
            p += 1;
        }
        runs.push((q0, p));
    }
    runs
}

fn node_header(b: &mut [u8], n: &Node, flags: u32) {
    put_u16(b, 0, n.mode);
    put_u32(b, 2, n.uid);
    put_u32(b, 6, n.gid);
    put_u32(b, 10, 1);
    put_u64(b, 14, n.size);
    put_u64(b, 22, n.blocks);
    put_u64(b, 30, n.ctime);
    put_u32(b, 38, 0);
    put_u64(b, 42, n.mtime);
    put_u32(b, 50, 0);
    put_u64(b, 54, n.mtime);
    put_u32(b, 62, 0);
    put_u32(b, 66, n.rl);
    put_u32(b, 70, flags);
}

/// A file's content: an open host file or bytes in memory.
enum Reader<'a> {
    Fd(File),
    Mem(&'a [u8]),
}

struct Shared<'a> {
    plan: &'a Plan,
    manifest: &'a Manifest,
    sink: &'a Sink,
    node_hash: Vec<AtomicU64>,
    /// Claims: (first node, end node) of consecutive nodes, biggest first.
    claims: Vec<(usize, usize)>,
    next: AtomicUsize,
    /// The lowest node index that failed so far (usize::MAX: none); nodes after it are skipped.
    err_at: AtomicUsize,
    err: Mutex<Option<(usize, Error)>>,
}

impl Shared<'_> {
    fn fail(&self, i: usize, e: Error) {
        let mut g = self.err.lock().unwrap();
        if g.as_ref().is_none_or(|(j, _)| i < *j) {
            *g = Some((i, e));
            self.err_at.fetch_min(i, Ordering::SeqCst);
        }
    }
}

struct Worker<'a, 's> {
    sh: &'s Shared<'a>,
    buf: Vec<u8>,
    stage: Stage,
}

/// A node's content on its way in: where it comes from and what messages call it.
struct Src<'a> {
    path: &'a str,
    shown: String,
    size: u64,
    sha256: Option<&'a str>,
    reader: Reader<'a>,
}

impl<'a> Src<'a> {
    /// The node's content; `open`: open its host file now (an empty file is never opened).
    fn new(m: &'a Manifest, n: &'a Node, open: bool) -> Result<Src<'a>, Error> {
        let e = m.entries.get(n.entry as usize);
        let path = e.map_or("", |e| e.path.as_str());
        let mut src = Src { path, shown: String::new(), size: n.size, sha256: None, reader: Reader::Mem(&[]) };
        match (&n.content, e) {
            (Content::File, Some(e)) => {
                src.shown = source_path(m, e);
                src.sha256 = e.sha256.as_deref();
                if !open {
                    return Ok(src);
                }
                let f = std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_CLOEXEC | libc::O_NOCTTY)
                    .open(&src.shown)
                    .map_err(|err| src.error(&format!("cannot read its source {}: {}", src.shown, os_err(err))))?;
                src.reader = Reader::Fd(f);
            }
            (Content::Data(d), _) => src.reader = Reader::Mem(d),
            _ => {}
        }
        Ok(src)
    }

    fn error(&self, what: &str) -> Error {
        Error::new(format!("/{}: {what}", self.path))
    }

    fn short(&self) -> Error {
        self.error(&format!(
            "source {} is shorter than the {} bytes it had when the image was planned (changed while writing?)",
            self.shown, self.size
        ))
    }

    fn changed(&self) -> Error {
        self.error(&format!("source {} changed size while the image was written", self.shown))
    }

    /// Fill `dest` from byte `pos`; with `last` (dest ends at the planned size) also check that
    /// the content ends there: the read asks for one byte more, which must not come.
    fn read_into(&self, dest: &mut [u8], pos: u64, last: bool) -> Result<(), Error> {
        match &self.reader {
            Reader::Mem(d) => {
                let p = pos as usize;
                if p + dest.len() > d.len() {
                    return Err(self.short());
                }
                dest.copy_from_slice(&d[p..p + dest.len()]);
                if last && d.len() > p + dest.len() {
                    return Err(self.changed());
                }
                Ok(())
            }
            Reader::Fd(f) => {
                let fd = f.as_raw_fd();
                let mut probe = [0u8; 1];
                let mut got = 0usize;
                loop {
                    let rest = &mut dest[got..];
                    let want = rest.len();
                    let iov = [
                        libc::iovec { iov_base: rest.as_mut_ptr() as *mut libc::c_void, iov_len: want },
                        libc::iovec { iov_base: probe.as_mut_ptr() as *mut libc::c_void, iov_len: 1 },
                    ];
                    let cnt = if last { 2 } else { 1 };
                    let k = unsafe { libc::preadv(fd, iov.as_ptr(), cnt, (pos + got as u64) as libc::off_t) };
                    if k < 0 {
                        let err = std::io::Error::last_os_error();
                        if err.kind() == std::io::ErrorKind::Interrupted {
                            continue;
                        }
                        return Err(self.error(&format!("cannot read its source {}: {}", self.shown, os_err(err))));
                    }
                    let k = k as usize;
                    if k > want {
                        return Err(self.changed());
                    }
                    if k == want {
                        return Ok(());
                    }
                    if k == 0 {
                        return Err(self.short());
                    }
                    got += k;
                }
            }
        }
    }

    /// The content's digest must be the manifest's (files; symlink targets have none).
    fn check_sha(&self, got: Sha256) -> Result<(), Error> {
        if let Some(want) = self.sha256 {
            let hex = hex(&got.finalize());
            if hex != want {
                return Err(self.error(&format!(
                    "source {} no longer matches the manifest (sha256 {hex}, the manifest says {want}); rebuild the manifest",
                    self.shown
                )));
            }
        }
        Ok(())
    }
}

pub fn hex(b: &[u8]) -> String {
    const D: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for &x in b {
        s.push(D[(x >> 4) as usize] as char);
        s.push(D[(x & 15) as usize] as char);
    }
    s
}

fn page_is_zero(p: &[u8]) -> bool {
    if u64::from_ne_bytes(p[..8].try_into().unwrap()) != 0 {
        return false;
    }
    p.chunks_exact(64).all(|c| c.iter().fold(0u8, |a, &b| a | b) == 0)
}

impl Worker<'_, '_> {
    fn run(&mut self) {
        let sh = self.sh;
        let nodes = &sh.plan.nodes;
        loop {
            let c = sh.next.fetch_add(1, Ordering::Relaxed);
            let Some(&(first, end)) = sh.claims.get(c) else { break };
            if first > sh.err_at.load(Ordering::Relaxed) {
                continue; // after a failed node: nothing to add (claims are not in id order)
            }
            let (start, stop) = (nodes[first].block, span_end(sh.plan, end - 1));
            if stop - start <= STAGE_BLOCKS {
                self.stage.reset(start, stop);
            } else {
                self.stage.reset(start, start); // one big node: nothing staged
            }
            let mut failed = false;
            for i in first..end {
                match self.node(i) {
                    Ok(h) => sh.node_hash[i].store(h, Ordering::Relaxed),
                    Err(e) => {
                        sh.fail(i, e);
                        failed = true;
                        break;
                    }
                }
            }
            if !failed {
                if let Err(e) = self.stage.flush(sh.sink) {
                    sh.fail(first, e);
                }
            }
        }
    }

    /// Write whole blocks at `blk`: into the stage when it holds them, else straight out.
    fn put(&mut self, blk: u64, data: &[u8]) -> Result<(), Error> {
        let count = (data.len() / BS) as u64;
        if self.stage.holds(blk, count) {
            self.stage.slice(blk, count).copy_from_slice(data);
            self.stage.mark(blk, count);
            Ok(())
        } else {
            self.sh.sink.write(blk, data)
        }
    }

    fn node(&mut self, i: usize) -> Result<u64, Error> {
        let n = &self.sh.plan.nodes[i];
        match n.kind {
            Kind::Dir => self.dir(n),
            _ if n.inline() => self.inline_file(n),
            _ => self.records_file(n),
        }
    }

    fn dir(&mut self, n: &Node) -> Result<u64, Error> {
        let nodes = &self.sh.plan.nodes;
        let nd = n.dirlists.len();
        let nblk = if nd == 0 { 0 } else { n.blocks as usize - 1 };
        let mut region = vec![0u8; (1 + nblk) * BS];
        if nd > 0 {
            let mut ptrs: Vec<(u64, u64, u32)> = Vec::with_capacity(nd);
            let mut start = 0usize;
            for (k, &end) in n.dirlists.iter().enumerate() {
                let base = (1 + k) * BS;
                let mut pos = base;
                for &c in &n.children[start..end] {
                    let cn = &nodes[c as usize];
                    put_u32(&mut region, pos, cn.id);
                    region[pos + 4] = cn.name.len() as u8;
                    region[pos + 5..pos + 5 + cn.name.len()].copy_from_slice(&cn.name);
                    pos += 5 + cn.name.len();
                }
                put_u16(&mut region, base + DIRLIST_BYTES, (end - start) as u16);
                put_u16(&mut region, base + DIRLIST_BYTES + 2, (pos - base) as u16);
                let h = seahash(&region[base..base + BS]);
                ptrs.push((make_addr(n.block + 1 + k as u64, 0), h, n.dl_keys[k]));
                start = end;
            }
            let mut next_blk = n.block + 1 + nd as u64;
            for level in &n.htree {
                let mut up = Vec::with_capacity(level.len());
                for &(a, b) in level {
                    let blk = next_blk;
                    next_blk += 1;
                    let off = (blk - n.block) as usize * BS;
                    for j in 0..HTREE_ENTRIES {
                        let at = off + 20 * j;
                        if a + j < b {
                            let (addr, h, key) = ptrs[a + j];
                            put_u32(&mut region, at, key);
                            put_u64(&mut region, at + 4, addr);
                            put_u64(&mut region, at + 12, h);
                        } else {
                            put_u32(&mut region, at, 0xFFFF_FFFF);
                        }
                    }
                    let h = seahash(&region[off..off + BS]);
                    up.push((make_addr(blk, 0), h, ptrs[b - 1].2));
                }
                ptrs = up;
            }
            let (addr, h, _) = ptrs[0];
            put_u64(&mut region, 128, 0xFFFF_FFFF_FFFF_FFF0 | n.htree.len() as u64);
            put_u64(&mut region, 136, u64::MAX);
            put_ptr(&mut region, 144, addr, h);
        }
        node_header(&mut region[..BS], n, 0);
        let h = seahash(&region[..BS]);
        self.put(n.block, &region)?;
        Ok(h)
    }

    fn inline_file(&mut self, n: &Node) -> Result<u64, Error> {
        let mut blk = [0u8; BS];
        let size = n.size as usize;
        let src = Src::new(self.sh.manifest, n, size > 0)?;
        if size > 0 {
            src.read_into(&mut blk[INLINE_OFFSET..INLINE_OFFSET + size], 0, true)?;
        }
        let mut sha = Sha256::new();
        sha.update(&blk[INLINE_OFFSET..INLINE_OFFSET + size]);
        src.check_sha(sha)?;
        node_header(&mut blk, n, FLAG_INLINE);
        let h = seahash(&blk);
        self.put(n.block, &blk)?;
        Ok(h)
    }

    fn records_file(&mut self, n: &Node) -> Result<u64, Error> {
        let mut rec_hash = vec![0u64; n.nrec as usize];
        let src = Src::new(self.sh.manifest, n, true)?;
        let span = ((n.nrec - 1) << n.rl) + (1u64 << n.last_level);
        let sha = if self.stage.holds(n.rec_base, span) {
            self.records_staged(n, &src, span, &mut rec_hash)?
        } else {
            self.records_direct(n, &src, &mut rec_hash)?
        };
        src.check_sha(sha)?;
        self.lists_and_node(n, &rec_hash)
    }

    /// A file whose records fit in the stage: read straight into their staged blocks.
    fn records_staged(&mut self, n: &Node, src: &Src, span: u64, rec_hash: &mut [u64]) -> Result<Sha256, Error> {
        let fresh = self.sh.sink.fresh;
        let rsize = BS << n.rl;
        let size = n.size as usize;
        let buf = self.stage.slice(n.rec_base, span);
        src.read_into(&mut buf[..size], 0, true)?;
        let mut sha = Sha256::new();
        sha.update(&buf[..size]);
        let last = (n.nrec - 1) as usize;
        for (k, h) in rec_hash.iter_mut().enumerate().take(last) {
            *h = seahash(&buf[k * rsize..(k + 1) * rsize]);
        }
        rec_hash[last] = seahash(&buf[last * rsize..]);
        if fresh {
            for (a, b) in nonzero_runs(buf, size.div_ceil(BS)) {
                self.stage.mark(n.rec_base + a as u64, (b - a) as u64);
            }
        } else {
            self.stage.mark(n.rec_base, span);
        }
        Ok(sha)
    }

    /// A file bigger than a stage: its records in chunks, each written as soon as it is hashed.
    fn records_direct(&mut self, n: &Node, src: &Src, rec_hash: &mut [u64]) -> Result<Sha256, Error> {
        let sink = self.sh.sink;
        let fresh = sink.fresh;
        let rsize = (BS) << n.rl;
        let per_chunk = (CHUNK_BYTES / rsize).max(1) as u64;
        let last_len = (n.size - (n.nrec - 1) * rsize as u64) as usize;
        let last_rsize = BS << n.last_level;
        let mut sha = Sha256::new();
        let mut r = 0u64;
        while r < n.nrec {
            let r1 = (r + per_chunk).min(n.nrec);
            let last = r1 == n.nrec;
            let full = (if last { r1 - 1 } else { r1 } - r) as usize;
            let data_len = full * rsize + if last { last_len } else { 0 };
            let buf_len = full * rsize + if last { last_rsize } else { 0 };
            if self.buf.len() < buf_len {
                self.buf.resize(buf_len, 0);
            }
            let buf = &mut self.buf[..buf_len];
            src.read_into(&mut buf[..data_len], r * rsize as u64, last)?;
            buf[data_len..].fill(0);
            sha.update(&buf[..data_len]);
            for k in 0..full {
                rec_hash[(r as usize) + k] = seahash(&buf[k * rsize..(k + 1) * rsize]);
            }
            if last {
                rec_hash[(n.nrec - 1) as usize] = seahash(&buf[full * rsize..]);
            }
            let blk0 = n.rec_base + (r << n.rl);
            if fresh {
                for (a, b) in nonzero_runs(buf, data_len.div_ceil(BS)) {
                    sink.write(blk0 + a as u64, &buf[a * BS..b * BS])?;
                }
            } else {
                sink.write(blk0, buf)?;
            }
            r = r1;
        }
        Ok(sha)
    }

    /// A records file's BlockLists and node block, from its record hashes.
    fn lists_and_node(&mut self, n: &Node, rec_hash: &[u64]) -> Result<u64, Error> {
        // BlockLists, post-order (a list's children come before it)
        let mut list_hash = vec![0u64; n.lists.len()];
        for (li, l) in n.lists.iter().enumerate() {
            let mut b = [0u8; BS];
            if l.depth == 1 {
                let end = (l.first + BLOCKLIST_ENTRIES as u64).min(n.nrec);
                for r in l.first..end {
                    put_ptr(&mut b, 16 * (r - l.first) as usize, n.rec_addr(r), rec_hash[r as usize]);
                }
            } else {
                for (j, &c) in l.children.iter().enumerate() {
                    put_ptr(&mut b, 16 * j, make_addr(n.lists[c].block, 0), list_hash[c]);
                }
            }
            list_hash[li] = seahash(&b);
            self.put(l.block, &b)?;
        }
        let mut blk = [0u8; BS];
        node_header(&mut blk, n, 0);
        let k = n.nrec.min(128);
        for r in 0..k {
            put_ptr(&mut blk, 128 + 16 * r as usize, n.rec_addr(r), rec_hash[r as usize]);
        }
        for (t, tops) in n.tops.iter().enumerate() {
            let off = LEVEL_TABLE[t + 1].0;
            for (j, &li) in tops.iter().enumerate() {
                put_ptr(&mut blk, off + 16 * j, make_addr(n.lists[li].block, 0), list_hash[li]);
            }
        }
        let h = seahash(&blk);
        self.put(n.block, &blk)?;
        Ok(h)
    }
}

/// A node-tree list being built: ((depth, id prefix), block, contents).
type TreeList = ((u32, u64), u64, Box<[u8; BS]>);

fn worker<'a, 's>(sh: &'s Shared<'a>) -> Worker<'a, 's> {
    Worker { sh, buf: Vec::new(), stage: Stage { start: 0, end: 0, buf: Vec::new(), runs: Vec::new() } }
}

/// The block after everything of node `i` (the next node's block; the node tree after the last).
fn span_end(plan: &Plan, i: usize) -> u64 {
    match plan.nodes.get(i + 1) {
        Some(next) => next.block,
        None => plan.tree_lists.first().map_or(plan.end, |t| t.1),
    }
}

/// Runs of consecutive nodes whose blocks fit in a stage; a bigger node alone.
fn claims(plan: &Plan) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut first = 0;
    for i in 0..plan.nodes.len() {
        if i > first && span_end(plan, i) - plan.nodes[first].block > STAGE_BLOCKS {
            out.push((first, i));
            first = i;
        }
    }
    if first < plan.nodes.len() {
        out.push((first, plan.nodes.len()));
    }
    out
}

/// Claims in order of decreasing size (stable): a big file taken last would leave the other
/// workers idle while one thread reads, hashes and writes it alone.
fn biggest_first(plan: &Plan, mut claims: Vec<(usize, usize)>) -> Vec<(usize, usize)> {
    claims.sort_by_key(|&(first, end)| std::cmp::Reverse(span_end(plan, end - 1) - plan.nodes[first].block));
    claims
}

/// Write every node with `threads` workers; returns the node hashes (in id order).
fn write_nodes(plan: &Plan, manifest: &Manifest, sink: &Sink, threads: usize) -> Result<Vec<u64>, Error> {
    let sh = Shared {
        plan,
        manifest,
        sink,
        node_hash: (0..plan.nodes.len()).map(|_| AtomicU64::new(0)).collect(),
        claims: biggest_first(plan, claims(plan)),
        next: AtomicUsize::new(0),
        err_at: AtomicUsize::new(usize::MAX),
        err: Mutex::new(None),
    };
    std::thread::scope(|s| {
        for _ in 1..threads.max(1) {
            s.spawn(|| worker(&sh).run());
        }
        worker(&sh).run();
    });
    if let Some((_, e)) = sh.err.into_inner().unwrap() {
        return Err(e);
    }
    Ok(sh.node_hash.into_iter().map(|a| a.into_inner()).collect())
}

/// Write the whole file system: nodes, node tree, allocation log, header (last).
pub fn write(
    plan: &Plan,
    manifest: &Manifest,
    sink: &Sink,
    uuid: &dyn Fn() -> [u8; 16],
    threads: usize,
) -> Result<(), Error> {
    let node_hash = write_nodes(plan, manifest, sink, threads)?;
    // the node tree's lists and the allocation log come last in the plan, one after the other
    let mut stage = Stage { start: 0, end: 0, buf: Vec::new(), runs: Vec::new() };
    stage.reset(span_end(plan, plan.nodes.len() - 1), plan.end);
    // node tree: leaves (depth 3) from the nodes, then each level from the one below
    let mut lists: Vec<TreeList> = plan.tree_lists.iter().map(|&(k, blk)| (k, blk, Box::new([0u8; BS]))).collect();
    let index: std::collections::HashMap<(u32, u64), usize> =
        lists.iter().enumerate().map(|(i, (k, _, _))| (*k, i)).collect();
    let flags_at = TREE_ENTRIES * 16;
    for (n, &h) in plan.nodes.iter().zip(&node_hash) {
        let id = n.id as u64;
        let li = index[&(3, id >> 8)];
        let idx = (id & 0xFF) as usize;
        let b = &mut lists[li].2;
        put_ptr(&mut b[..], 16 * idx, make_addr(n.block, 0), h);
        b[flags_at + idx / 8] |= 1 << (idx % 8);
    }
    if let Some(&li) = index.get(&(3, 0)) {
        lists[li].2[flags_at] |= 1; // reserved id 0
    }
    let mut hashes = vec![0u64; lists.len()];
    let mut full = vec![false; lists.len()];
    for depth in [3u32, 2, 1, 0] {
        if depth < 3 {
            for ci in 0..lists.len() {
                let ((cd, cp), cblk, _) = &lists[ci];
                if *cd != depth + 1 {
                    continue;
                }
                let (cp, cblk) = (*cp, *cblk);
                let pi = index[&(depth, cp >> 8)];
                let idx = (cp & 0xFF) as usize;
                let (h, f) = (hashes[ci], full[ci]);
                let b = &mut lists[pi].2;
                put_ptr(&mut b[..], 16 * idx, make_addr(cblk, 0), h);
                if f {
                    b[flags_at + idx / 8] |= 1 << (idx % 8);
                }
            }
        }
        for (i, (k, blk, b)) in lists.iter().enumerate() {
            if k.0 != depth {
                continue;
            }
            full[i] = b[flags_at..].iter().map(|x| x.count_ones()).sum::<u32>() as usize == TREE_ENTRIES;
            hashes[i] = seahash(&b[..]);
            stage.slice(*blk, 1).copy_from_slice(&b[..]);
            stage.mark(*blk, 1);
        }
    }
    let root = index[&(0, 0)];
    let tree_ptr = (make_addr(lists[root].1, 0), hashes[root]);
    // allocation log: the gaps, then the free space after everything
    let total = sink.size / BLOCK_SIZE;
    let mut extents = plan.gaps.clone();
    if total > plan.end {
        extents.push((plan.end, total - plan.end));
    }
    let mut prev = (0u64, 0u64);
    for j in 0..plan.alloc_count as usize {
        let mut b = [0u8; BS];
        put_ptr(&mut b, 0, prev.0, prev.1);
        let chunk = extents.iter().skip(j * ALLOC_ENTRIES).take(ALLOC_ENTRIES);
        for (e, &(start, count)) in chunk.enumerate() {
            put_ptr(&mut b, 16 + 16 * e, start, count);
        }
        let index = plan.alloc_base + j as u64;
        prev = (make_addr(index, 0), seahash(&b));
        stage.slice(index, 1).copy_from_slice(&b);
        stage.mark(index, 1);
    }
    stage.flush(sink)?;
    // header last
    let mut h = [0u8; BS];
    h[0..8].copy_from_slice(SIGNATURE);
    put_u64(&mut h, 8, VERSION);
    h[16..32].copy_from_slice(&uuid());
    put_u64(&mut h, 32, sink.size);
    put_u64(&mut h, 40, 0);
    put_ptr(&mut h, 48, tree_ptr.0, tree_ptr.1);
    put_ptr(&mut h, 64, prev.0, prev.1);
    let digest = seahash(&h[..4072]);
    put_u64(&mut h, 4072, digest);
    put_u64(&mut h, 4088, digest);
    sink.write(0, &h)
}
