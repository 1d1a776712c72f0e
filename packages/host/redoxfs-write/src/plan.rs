//! The layout of `redox_tools.redoxfs.writer` (docs/formats/redoxfs.md §13), step for step:
//! the tree from the manifest (implied parents, the writer's checks), node ids in depth-first
//! pre-order with children in byte order of their names, then blocks from the header ring
//! upward with buddy alignment (file records, BlockLists post-order, DirLists + HTree blocks
//! right after their directory's node), the node-tree lists and the allocation log.

use std::collections::HashMap;

use crate::format::*;
use crate::manifest::{Entry, Kind, Manifest};
use crate::Error;

pub enum Content {
    None,
    /// The host file of the node's manifest entry (its `source`, checked against its `sha256`).
    File,
    /// Bytes held in memory (a symlink's target).
    Data(Vec<u8>),
}

/// `Node::entry` of the root and of implied directories (they have no manifest entry).
pub const NO_ENTRY: u32 = u32::MAX;

/// One BlockList of a file: (block, depth, first record, child list indexes).
pub struct List {
    pub block: u64,
    pub depth: u32,
    pub first: u64,
    pub children: Vec<usize>,
}

pub struct Node {
    /// Index of the node's manifest entry (path, source, sha256 for messages and reads), or NO_ENTRY.
    pub entry: u32,
    pub name: Vec<u8>,
    pub kind: Kind,
    pub mode: u16,
    pub uid: u32,
    pub gid: u32,
    pub mtime: u64,
    pub ctime: u64,
    pub children: Vec<u32>,
    pub id: u32,
    pub block: u64,
    pub size: u64,
    pub content: Content,
    pub rl: u32,
    pub nrec: u64,
    pub last_level: u32,
    pub rec_base: u64,
    pub lists: Vec<List>,
    pub tops: Vec<Vec<usize>>,
    pub blocks: u64,
    pub dirlists: Vec<usize>,
    pub dl_keys: Vec<u32>,
    pub htree: Vec<Vec<(usize, usize)>>,
}

impl Node {
    #[allow(clippy::too_many_arguments)] // the node's fields, in the order of its on-disk record
    fn new(entry: u32, name: Vec<u8>, kind: Kind, mode: u16, uid: u32, gid: u32, mtime: u64, ctime: u64) -> Node {
        Node {
            entry,
            name,
            kind,
            mode,
            uid,
            gid,
            mtime,
            ctime,
            children: Vec::new(),
            id: 0,
            block: 0,
            size: 0,
            content: Content::None,
            rl: 0,
            nrec: 0,
            last_level: 0,
            rec_base: 0,
            lists: Vec::new(),
            tops: Vec::new(),
            blocks: 1,
            dirlists: Vec::new(),
            dl_keys: Vec::new(),
            htree: Vec::new(),
        }
    }

    pub fn inline(&self) -> bool {
        self.kind != Kind::Dir && self.size <= INLINE_MAX
    }

    pub fn rec_addr(&self, r: u64) -> u64 {
        let level = if r == self.nrec - 1 { self.last_level } else { self.rl };
        make_addr(self.rec_base + (r << self.rl), level)
    }
}

pub struct Plan {
    /// Every node, in id order (nodes[0] is the root).
    pub nodes: Vec<Node>,
    pub gaps: Vec<(u64, u64)>,
    /// Node-tree lists: (depth, prefix) -> block, in allocation order (depth 3..0, prefix ascending).
    pub tree_lists: Vec<((u32, u64), u64)>,
    pub alloc_base: u64,
    pub alloc_count: u64,
    pub end: u64,
}

impl Plan {
    pub fn needed_blocks(&self) -> u64 {
        self.end + MIN_FREE_BLOCKS
    }
}

struct Cursor {
    cur: u64,
    gaps: Vec<(u64, u64)>,
}

impl Cursor {
    fn take(&mut self, level: u32, count: u64) -> u64 {
        let n = 1u64 << level;
        let a = (self.cur + n - 1) & !(n - 1);
        if a > self.cur {
            self.gaps.push((self.cur, a - self.cur));
        }
        self.cur = a + n * count;
        a
    }
}

/// The host path of a file entry's content, as messages name it: `source` if absolute, else
/// joined to the manifest's base directory.
pub fn source_path(m: &Manifest, e: &Entry) -> String {
    let src = e.source.as_deref().unwrap_or("");
    if src.starts_with('/') {
        src.to_string()
    } else if m.base_dir.ends_with('/') || m.base_dir.is_empty() {
        format!("{}{src}", m.base_dir)
    } else {
        format!("{}/{src}", m.base_dir)
    }
}

fn parent_of(path: &str) -> &str {
    match path.rfind('/') {
        Some(i) => &path[..i],
        None => "",
    }
}

fn build_tree(m: &Manifest, ctime: Option<u64>) -> Result<Vec<Node>, Error> {
    let root_time = ctime.unwrap_or_else(|| m.entries.iter().map(|e| e.mtime).max().unwrap_or(0));
    let dir_mode = (MODE_DIR | 0o755) as u16;
    let mut arena: Vec<Node> = Vec::with_capacity(m.entries.len() + 1);
    arena.push(Node::new(NO_ENTRY, Vec::new(), Kind::Dir, dir_mode, 0, 0, root_time, root_time));
    // path -> node (implied directories' paths are prefixes of their first child's path)
    let mut by_path: HashMap<&str, usize> = HashMap::with_capacity(m.entries.len() + 1);
    by_path.insert("", 0);
    let mut too_long: Vec<String> = Vec::new();
    let mut problems: Vec<String> = Vec::new();
    let mut link_error: Option<String> = None;
    // entries are sorted by path: parents come before their children
    for (ei, e) in m.entries.iter().enumerate() {
        let path = e.path.as_str();
        let name = path.rsplit('/').next().unwrap_or(path);
        if name.len() > DIR_ENTRY_MAX_LENGTH {
            too_long.push(format!("/{path} ({} bytes)", name.len()));
        }
        if e.uid > MAX_U32 || e.gid > MAX_U32 {
            problems.push(format!("/{path}: uid/gid must be 0..{MAX_U32}"));
        }
        let t_c = ctime.unwrap_or(e.mtime);
        let perm = (e.mode & 0o7777) as u32;
        let kind = e.kind;
        let type_bits = match kind {
            Kind::File => MODE_FILE,
            Kind::Dir => MODE_DIR,
            Kind::Symlink => MODE_SYMLINK,
        };
        let mode = (type_bits | perm) as u16;
        let mut n =
            Node::new(ei as u32, name.as_bytes().to_vec(), kind, mode, e.uid as u32, e.gid as u32, e.mtime, t_c);
        match kind {
            Kind::File => {
                n.size = e.size;
                n.rl = RECORD_LEVEL;
                n.content = Content::File;
            }
            Kind::Symlink => {
                let data = e.target.clone().unwrap_or_default().into_bytes();
                n.size = data.len() as u64;
                n.content = Content::Data(data);
            }
            Kind::Dir => {}
        }
        let idx = arena.len();
        arena.push(n);
        by_path.insert(path, idx);
        if link_error.is_some() {
            continue;
        }
        let mut parent_path = parent_of(path);
        if let Some(&p) = by_path.get(parent_path) {
            if arena[p].kind == Kind::Dir {
                arena[p].children.push(idx as u32);
                continue;
            }
        }
        // link through implied parent directories (mode 0755, owner 0, the root's time)
        let mut chain: Vec<(usize, &str)> = vec![(idx, path)];
        while !by_path.contains_key(parent_path) {
            let pname = parent_path.rsplit('/').next().unwrap_or(parent_path);
            if pname.len() > DIR_ENTRY_MAX_LENGTH {
                link_error =
                    Some(format!("name longer than {DIR_ENTRY_MAX_LENGTH} bytes (RedoxFS limit): /{parent_path}"));
                break;
            }
            let iidx = arena.len();
            arena.push(Node::new(NO_ENTRY, pname.as_bytes().to_vec(), Kind::Dir, dir_mode, 0, 0, root_time, root_time));
            by_path.insert(parent_path, iidx);
            chain.push((iidx, parent_path));
            parent_path = parent_of(parent_path);
        }
        if link_error.is_some() {
            continue;
        }
        for &(c, cp) in &chain {
            let pp = parent_of(cp);
            let parent = by_path[pp];
            if arena[parent].kind != Kind::Dir {
                link_error =
                    Some(format!("/{cp} is below /{pp}, which is a {}, not a directory", arena[parent].kind.as_str()));
                break;
            }
            arena[parent].children.push(c as u32);
        }
    }
    if !too_long.is_empty() {
        let mut shown = too_long.iter().take(10).cloned().collect::<Vec<_>>().join(", ");
        if too_long.len() > 10 {
            shown.push_str(&format!(" and {} more", too_long.len() - 10));
        }
        return Err(Error::new(format!("name longer than {DIR_ENTRY_MAX_LENGTH} bytes (RedoxFS limit): {shown}")));
    }
    if !problems.is_empty() {
        return Err(Error::new(problems.iter().take(10).cloned().collect::<Vec<_>>().join("; ")));
    }
    if let Some(msg) = link_error {
        return Err(Error::new(msg));
    }
    Ok(arena)
}

/// The writer's checks of a file entry's source before anything is written.
fn check_source(m: &Manifest, e: &Entry) -> Result<(), Error> {
    let shown = source_path(m, e);
    let md = std::fs::metadata(&shown)
        .map_err(|err| Error::new(format!("/{}: cannot read its source {shown}: {}", e.path, crate::strerror(&err))))?;
    if !md.is_file() {
        return Err(Error::new(format!("/{}: source {shown} is not a regular file", e.path)));
    }
    if md.len() != e.size {
        return Err(Error::new(format!(
            "/{}: source {shown} is {} bytes, the manifest says {}; rebuild the manifest",
            e.path,
            md.len(),
            e.size
        )));
    }
    Ok(())
}

fn plan_file(n: &mut Node, cur: &mut Cursor, m: &Manifest) -> Result<(), Error> {
    let rsize = BLOCK_SIZE << n.rl;
    n.nrec = n.size.div_ceil(rsize);
    let last_len = n.size - (n.nrec - 1) * rsize;
    n.last_level = record_level_for(last_len);
    let capacity: u64 = LEVEL_TABLE.iter().map(|&(_, cnt, depth)| cnt * (BLOCKLIST_ENTRIES as u64).pow(depth)).sum();
    if n.nrec > capacity {
        let path = m.entries.get(n.entry as usize).map_or("", |e| e.path.as_str());
        return Err(Error::new(format!("/{path}: {} bytes is more than a RedoxFS file can address", n.size)));
    }
    let first_level = if n.nrec > 1 { n.rl } else { n.last_level };
    n.rec_base = cur.take(first_level, 1);
    cur.cur = n.rec_base + ((n.nrec - 1) << n.rl) + (1u64 << n.last_level);
    n.blocks = 1 + ((n.nrec - 1) << n.rl) + (1u64 << n.last_level);
    let mut start: u64 = 0;
    let mut tops_all: Vec<Vec<usize>> = Vec::new();
    for &(_, cnt, depth) in LEVEL_TABLE.iter() {
        let span_top = (BLOCKLIST_ENTRIES as u64).pow(depth);
        if depth > 0 {
            let mut tops = Vec::new();
            for j in 0..cnt {
                let first = start + j * span_top;
                if first >= n.nrec {
                    break;
                }
                tops.push(plan_list(n, cur, depth, first));
            }
            tops_all.push(tops);
        }
        start += cnt * span_top;
        if start >= n.nrec {
            break;
        }
    }
    n.tops = tops_all;
    n.blocks += n.lists.len() as u64;
    Ok(())
}

fn plan_list(n: &mut Node, cur: &mut Cursor, depth: u32, first: u64) -> usize {
    let mut children = Vec::new();
    if depth > 1 {
        let span = (BLOCKLIST_ENTRIES as u64).pow(depth - 1);
        for c in 0..BLOCKLIST_ENTRIES as u64 {
            let f = first + c * span;
            if f >= n.nrec {
                break;
            }
            children.push(plan_list(n, cur, depth - 1, f));
        }
    }
    let block = cur.take(0, 1);
    n.lists.push(List { block, depth, first, children });
    n.lists.len() - 1
}

fn plan_dir(nodes: &mut [Node], i: usize, cur: &mut Cursor) {
    if nodes[i].children.is_empty() {
        nodes[i].blocks = 1;
        return;
    }
    let kids = std::mem::take(&mut nodes[i].children);
    let mut keyed: Vec<(u32, u32)> = kids.iter().map(|&c| (name_hash(&nodes[c as usize].name), c)).collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| nodes[a.1 as usize].name.cmp(&nodes[b.1 as usize].name)));
    let mut ends = Vec::new();
    let mut keys = Vec::new();
    let mut used = 0usize;
    let mut last_hash = 0u32;
    for (k, &(h, c)) in keyed.iter().enumerate() {
        let es = 5 + nodes[c as usize].name.len();
        if used + es > DIRLIST_BYTES {
            keys.push(last_hash);
            ends.push(k);
            used = 0;
        }
        used += es;
        last_hash = h;
    }
    keys.push(last_hash);
    ends.push(keyed.len());
    let mut levels: Vec<Vec<(usize, usize)>> = Vec::new();
    let mut count = ends.len();
    while count > 1 {
        let groups: Vec<(usize, usize)> =
            (0..count).step_by(HTREE_ENTRIES).map(|s| (s, (s + HTREE_ENTRIES).min(count))).collect();
        count = groups.len();
        levels.push(groups);
    }
    let nblk = (ends.len() + levels.iter().map(|l| l.len()).sum::<usize>()) as u64;
    cur.take(0, nblk);
    let n = &mut nodes[i];
    n.children = keyed.into_iter().map(|(_, c)| c).collect();
    n.dirlists = ends;
    n.dl_keys = keys;
    n.htree = levels;
    n.size = BLOCK_SIZE * nblk;
    n.blocks = 1 + nblk;
}

/// Every file entry's source checked (`check_source`) on `threads` threads; the error is the
/// first failing entry's in path order, the one a serial walk would meet first.
fn check_sources(m: &Manifest, threads: usize) -> Result<(), Error> {
    let files: Vec<usize> = (0..m.entries.len()).filter(|&i| m.entries[i].kind == Kind::File).collect();
    let per = files.len().div_ceil(threads.max(1)).max(1);
    let first_error = std::thread::scope(|s| {
        let jobs: Vec<_> = files
            .chunks(per)
            .map(|part| {
                s.spawn(move || part.iter().find_map(|&i| check_source(m, &m.entries[i]).err().map(|e| (i, e))))
            })
            .collect();
        jobs.into_iter().filter_map(|j| j.join().expect("a stat thread panicked")).min_by_key(|(i, _)| *i)
    });
    match first_error {
        Some((_, e)) => Err(e),
        None => Ok(()),
    }
}

pub fn plan(m: &Manifest, ctime: Option<u64>, threads: usize) -> Result<Plan, Error> {
    check_sources(m, threads)?;
    let mut arena = build_tree(m, ctime)?;
    let root = 0usize;
    // ids: depth-first pre-order, children in ascending byte order of names
    let mut order: Vec<usize> = Vec::with_capacity(arena.len());
    let mut stack = vec![root];
    let mut nid: u32 = 0;
    while let Some(i) = stack.pop() {
        nid = next_node_id(nid)?;
        arena[i].id = nid;
        order.push(i);
        if !arena[i].children.is_empty() {
            let mut kids = std::mem::take(&mut arena[i].children);
            kids.sort_by(|&a, &b| arena[a as usize].name.cmp(&arena[b as usize].name));
            stack.extend(kids.iter().rev().map(|&c| c as usize));
            arena[i].children = kids;
        }
    }
    // renumber: nodes in id order, children as positions in that order
    let mut pos = vec![0usize; arena.len()];
    for (p, &i) in order.iter().enumerate() {
        pos[i] = p;
    }
    let mut slots: Vec<Option<Node>> = arena.into_iter().map(Some).collect();
    let mut nodes: Vec<Node> = Vec::with_capacity(order.len());
    for &i in &order {
        let mut n = slots[i].take().expect("each node once");
        for c in n.children.iter_mut() {
            *c = pos[*c as usize] as u32;
        }
        nodes.push(n);
    }
    let mut cur = Cursor { cur: HEADER_RING, gaps: Vec::new() };
    for i in 0..nodes.len() {
        nodes[i].block = cur.take(0, 1);
        if nodes[i].kind == Kind::Dir {
            plan_dir(&mut nodes, i, &mut cur);
        } else if !nodes[i].inline() {
            plan_file(&mut nodes[i], &mut cur, m)?;
        }
    }
    // node-tree lists: depth 3 (the leaves) .. 0 (the root), prefixes ascending
    let mut tree_lists = Vec::new();
    for depth in [3u32, 2, 1, 0] {
        let shift = 8 * (4 - depth);
        let mut prefixes: Vec<u64> = nodes.iter().map(|n| (n.id as u64) >> shift).collect();
        prefixes.sort_unstable();
        prefixes.dedup();
        for p in prefixes {
            tree_lists.push(((depth, p), cur.take(0, 1)));
        }
    }
    let k_alloc = ((cur.gaps.len() as u64) + 1).div_ceil(ALLOC_ENTRIES as u64);
    let alloc_base = cur.take(0, k_alloc);
    Ok(Plan { nodes, gaps: cur.gaps, tree_lists, alloc_base, alloc_count: k_alloc, end: cur.cur })
}
