//! RedoxFS version 8 constants and small codecs (docs/formats/redoxfs.md §2-§10; the same
//! values as redox_tools/redoxfs/format.py).

use crate::Error;

pub const BLOCK_SIZE: u64 = 4096;
pub const BS: usize = 4096;
pub const SIGNATURE: &[u8; 8] = b"RedoxFS\0";
pub const VERSION: u64 = 8;
pub const HEADER_RING: u64 = 256;
pub const RECORD_LEVEL: u32 = 5; // files: 4096 << 5 = 128 KiB records
pub const DIR_ENTRY_MAX_LENGTH: usize = 252;
pub const INLINE_OFFSET: usize = 128;
pub const INLINE_MAX: u64 = (BS - INLINE_OFFSET - 1) as u64; // 3967
pub const TREE_ENTRIES: usize = 254;
pub const BLOCKLIST_ENTRIES: usize = 256;
pub const HTREE_ENTRIES: usize = 204;
pub const ALLOC_ENTRIES: usize = 255;
pub const DIRLIST_BYTES: usize = 4092;
pub const FLAG_INLINE: u32 = 1;
pub const MODE_FILE: u32 = 0x8000;
pub const MODE_DIR: u32 = 0x4000;
pub const MODE_SYMLINK: u32 = 0xA000;
pub const MAX_U32: u64 = 0xFFFF_FFFF;
/// Free blocks a written image keeps at its end (writer.py's MIN_FREE_BLOCKS).
pub const MIN_FREE_BLOCKS: u64 = 64;

/// Node level data: (byte offset in the node block, pointer count, BlockList depth).
pub const LEVEL_TABLE: [(usize, u64, u32); 5] =
    [(128, 128, 0), (2176, 64, 1), (3200, 32, 2), (3712, 16, 3), (3968, 8, 4)];

pub fn make_addr(index: u64, level: u32) -> u64 {
    (index << 8) | level as u64
}

pub fn seahash(data: &[u8]) -> u64 {
    seahash::hash(data)
}

/// HTree key of a directory entry name (§9.4).
pub fn name_hash(name: &[u8]) -> u32 {
    let h = (seahash(name) & 0xFFFF_FFFF) as u32;
    if h == 0xFFFF_FFFF {
        0xFFFF_FFFE
    } else {
        h
    }
}

/// The valid node id after `i` (ids with a byte of 254/255 are skipped, §6.2).
pub fn next_node_id(i: u32) -> Result<u32, Error> {
    let mut i = i as u64 + 1;
    loop {
        if (i & 0xFF) >= TREE_ENTRIES as u64 {
            i = (i | 0xFF) + 1;
            continue;
        }
        if ((i >> 8) & 0xFF) >= TREE_ENTRIES as u64 {
            i = (i | 0xFFFF) + 1;
            continue;
        }
        if ((i >> 16) & 0xFF) >= TREE_ENTRIES as u64 {
            i = (i | 0xFF_FFFF) + 1;
            continue;
        }
        if (i >> 24) >= TREE_ENTRIES as u64 {
            return Err(Error::new("too many nodes for a RedoxFS node tree"));
        }
        return Ok(i as u32);
    }
}

/// Smallest block level whose block holds `length` bytes (§8.1).
pub fn record_level_for(length: u64) -> u32 {
    let blocks = length.div_ceil(BLOCK_SIZE).max(1);
    64 - (blocks - 1).leading_zeros()
}

pub fn put_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}
pub fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
pub fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}
pub fn put_ptr(b: &mut [u8], at: usize, addr: u64, hash: u64) {
    put_u64(b, at, addr);
    put_u64(b, at + 8, hash);
}
