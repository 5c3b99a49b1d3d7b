//! The zip container of `torch.save` (PyTorch ≥ 1.6), read by byte range:
//! the end-of-central-directory record (and its zip64 forms) from the end of
//! the file, then the central directory, then each entry's 30-byte local
//! header to find where its data starts. Entry data is never read here: the
//! caller reads what it needs where it lies, so a 10 GB checkpoint costs a
//! few small reads.
//!
//! Written by hand: the `zip` crate reads through `Read + Seek`, which the
//! page's asynchronous Blob reads cannot provide, and `rc-zip` (sans-I/O, so
//! it would fit) brings chrono, encoding detection and a parser-combinator
//! library for three fixed-layout records, and still leaves the data offsets
//! (its entry reader streams and decompresses) and the overlap check to us.
//!
//! Only what `torch.save` writes is accepted: stored (uncompressed),
//! unencrypted entries on one disk. A compressed entry, entries that overlap
//! each other or the directory, and sizes past the end of the file are
//! errors that say so.

use crate::source::AsyncByteSource;

/// Largest central directory read (a million entries' worth).
pub const MAX_DIRECTORY: u64 = 128 << 20;
/// Most entries accepted.
pub const MAX_ENTRIES: u64 = 1_000_000;

const EOCD_SIG: u32 = 0x0605_4b50;
const EOCD_LEN: u64 = 22;
const EOCD64_LOCATOR_SIG: u32 = 0x0706_4b50;
const EOCD64_LOCATOR_LEN: u64 = 20;
const EOCD64_SIG: u32 = 0x0606_4b50;
const EOCD64_LEN: u64 = 56;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const CENTRAL_LEN: usize = 46;
const LOCAL_SIG: u32 = 0x0403_4b50;
const LOCAL_LEN: u64 = 30;
const MAX_COMMENT: u64 = 0xFFFF;

/// One entry of the archive, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZipEntry {
    pub name: String,
    /// Compression method (0 = stored).
    pub method: u16,
    /// Offset of the local header.
    pub header_offset: u64,
    /// Absolute offset of the first data byte.
    pub data_start: u64,
    /// Stored size in bytes (= the data's size, for a stored entry).
    pub size: u64,
}

impl ZipEntry {
    /// The absolute byte range of the entry's data.
    pub fn data_range(&self) -> std::ops::Range<u64> {
        self.data_start..self.data_start.saturating_add(self.size)
    }

    /// The data's range, or an error when the entry is compressed.
    pub fn stored(&self) -> Result<std::ops::Range<u64>, ZipError> {
        if self.method != 0 {
            return Err(ZipError::Compressed {
                name: self.name.clone(),
                method: self.method,
            });
        }
        Ok(self.data_range())
    }
}

/// Everything that can be wrong with the zip container.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZipError {
    #[error("no end-of-central-directory record in the last {searched} bytes: not a zip file, or truncated")]
    NoEndRecord { searched: u64 },
    #[error("the zip spans several disks, which a checkpoint never does")]
    MultiDisk,
    #[error("the zip64 end-of-central-directory record is missing or damaged")]
    BadZip64,
    #[error("the central directory ({offset}+{size} bytes) lies outside the {file_len}-byte file: truncated")]
    DirectoryOutside {
        offset: u64,
        size: u64,
        file_len: u64,
    },
    #[error("the central directory is {size} bytes, more than the {MAX_DIRECTORY} allowed")]
    DirectoryTooLarge { size: u64 },
    #[error("the zip says it has {count} entries, more than the {MAX_ENTRIES} allowed")]
    TooManyEntries { count: u64 },
    #[error("central directory entry {index} is damaged: {why}")]
    BadEntry { index: u64, why: String },
    #[error("zip entry `{name}` is encrypted")]
    Encrypted { name: String },
    #[error("zip entry `{name}` is compressed (method {method}); torch.save stores entries uncompressed so that tensors can be read in place — this file was re-packed by another tool; unzip it and zip it again with `zip -0`, or load and save it again with torch.save")]
    Compressed { name: String, method: u16 },
    #[error("zip entry `{name}` says {compressed} bytes stored for {uncompressed} bytes of data, which a stored entry cannot")]
    SizeMismatch {
        name: String,
        compressed: u64,
        uncompressed: u64,
    },
    #[error("zip entry `{name}`'s local header at offset {offset} is damaged or missing")]
    BadLocalHeader { name: String, offset: u64 },
    #[error("zip entry `{name}` (bytes {start}..{end}) runs past the end of the {file_len}-byte file: truncated")]
    EntryPastEnd {
        name: String,
        start: u64,
        end: u64,
        file_len: u64,
    },
    #[error("zip entries `{first}` (bytes {first_start}..{first_end}) and `{second}` (bytes {second_start}..{second_end}) overlap")]
    Overlap {
        first: String,
        first_start: u64,
        first_end: u64,
        second: String,
        second_start: u64,
        second_end: u64,
    },
    #[error(
        "zip entry `{name}` (bytes {start}..{end}) overlaps the central directory at {directory}"
    )]
    OverlapsDirectory {
        name: String,
        start: u64,
        end: u64,
        directory: u64,
    },
    #[error("zip entry `{name}` appears twice")]
    Duplicate { name: String },
    #[error("could not read {len} bytes at offset {offset}: {message}")]
    Io {
        offset: u64,
        len: u64,
        message: String,
    },
}

fn u16_at(b: &[u8], i: usize) -> u16 {
    b.get(i..i + 2)
        .map_or(0, |s| u16::from_le_bytes([s[0], s[1]]))
}
fn u32_at(b: &[u8], i: usize) -> u32 {
    b.get(i..i + 4)
        .map_or(0, |s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}
fn u64_at(b: &[u8], i: usize) -> u64 {
    b.get(i..i + 8).map_or(0, |s| {
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        u64::from_le_bytes(a)
    })
}

async fn fetch(src: &impl AsyncByteSource, offset: u64, len: u64) -> Result<Vec<u8>, ZipError> {
    let io = |message: String| ZipError::Io {
        offset,
        len,
        message,
    };
    let n = usize::try_from(len).map_err(|_| io("too large for this platform".into()))?;
    src.fetch(offset, n).await.map_err(|e| io(e.to_string()))
}

/// Whether the file starts like a zip (a local header).
pub fn looks_like_zip(head: &[u8]) -> bool {
    head.len() >= 4 && u32_at(head, 0) == LOCAL_SIG
}

/// Where the central directory is and how many entries it holds.
struct Directory {
    offset: u64,
    size: u64,
    count: u64,
}

/// Finds the end-of-central-directory record (searching back over a
/// possible comment) and, for zip64 files, the zip64 record it points to.
async fn find_directory(src: &impl AsyncByteSource) -> Result<Directory, ZipError> {
    let file_len = src.size();
    let tail_len = file_len.min(EOCD_LEN + MAX_COMMENT);
    let tail_start = file_len - tail_len;
    let tail = fetch(src, tail_start, tail_len).await?;
    // The last signature whose comment length reaches exactly to the end
    // (a signature inside the comment would not), else the last signature.
    let candidates: Vec<usize> = (0..tail.len().saturating_sub(EOCD_LEN as usize - 1))
        .rev()
        .filter(|&i| u32_at(&tail, i) == EOCD_SIG)
        .collect();
    let exact = candidates
        .iter()
        .copied()
        .find(|&i| i + EOCD_LEN as usize + usize::from(u16_at(&tail, i + 20)) == tail.len());
    let Some(at) = exact.or(candidates.first().copied()) else {
        return Err(ZipError::NoEndRecord { searched: tail_len });
    };
    let rec = &tail[at..];
    let (disk, cd_disk) = (u16_at(rec, 4), u16_at(rec, 6));
    let (on_disk, count) = (u16_at(rec, 8), u16_at(rec, 10));
    let (size, offset) = (u32_at(rec, 12), u32_at(rec, 16));
    let eocd_offset = tail_start + at as u64;
    let zip64 =
        count == 0xFFFF || on_disk == 0xFFFF || size == 0xFFFF_FFFF || offset == 0xFFFF_FFFF;
    if !zip64 {
        if disk != 0 || cd_disk != 0 || on_disk != count {
            return Err(ZipError::MultiDisk);
        }
        return Ok(Directory {
            offset: u64::from(offset),
            size: u64::from(size),
            count: u64::from(count),
        });
    }
    // zip64: a 20-byte locator right before the record points to the zip64 record.
    let locator_at = eocd_offset
        .checked_sub(EOCD64_LOCATOR_LEN)
        .ok_or(ZipError::BadZip64)?;
    let locator = fetch(src, locator_at, EOCD64_LOCATOR_LEN).await?;
    if u32_at(&locator, 0) != EOCD64_LOCATOR_SIG {
        return Err(ZipError::BadZip64);
    }
    let record_at = u64_at(&locator, 8);
    if record_at
        .checked_add(EOCD64_LEN)
        .is_none_or(|end| end > locator_at)
    {
        return Err(ZipError::BadZip64);
    }
    let record = fetch(src, record_at, EOCD64_LEN).await?;
    if u32_at(&record, 0) != EOCD64_SIG {
        return Err(ZipError::BadZip64);
    }
    let (disk, cd_disk) = (u32_at(&record, 16), u32_at(&record, 20));
    let (on_disk, count) = (u64_at(&record, 24), u64_at(&record, 32));
    if disk != 0 || cd_disk != 0 || on_disk != count {
        return Err(ZipError::MultiDisk);
    }
    Ok(Directory {
        offset: u64_at(&record, 48),
        size: u64_at(&record, 40),
        count,
    })
}

/// One central-directory record, before its local header is read.
struct Central {
    name: String,
    flags: u16,
    method: u16,
    compressed: u64,
    uncompressed: u64,
    header_offset: u64,
}

fn parse_central(cd: &[u8], count: u64) -> Result<Vec<Central>, ZipError> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    for index in 0..count {
        let bad = |why: &str| ZipError::BadEntry {
            index,
            why: why.to_string(),
        };
        let rec = cd
            .get(pos..pos + CENTRAL_LEN)
            .ok_or_else(|| bad("the central directory ends early"))?;
        if u32_at(rec, 0) != CENTRAL_SIG {
            return Err(bad("no central-directory signature"));
        }
        let flags = u16_at(rec, 8);
        let method = u16_at(rec, 10);
        let mut compressed = u64::from(u32_at(rec, 20));
        let mut uncompressed = u64::from(u32_at(rec, 24));
        let name_len = usize::from(u16_at(rec, 28));
        let extra_len = usize::from(u16_at(rec, 30));
        let comment_len = usize::from(u16_at(rec, 32));
        let disk = u16_at(rec, 34);
        let mut header_offset = u64::from(u32_at(rec, 42));
        let name_start = pos + CENTRAL_LEN;
        let extra_start = name_start + name_len;
        let end = extra_start + extra_len + comment_len;
        let name_bytes = cd
            .get(name_start..extra_start)
            .ok_or_else(|| bad("its name runs past the directory"))?;
        let extra = cd
            .get(extra_start..extra_start + extra_len)
            .ok_or_else(|| bad("its extra field runs past the directory"))?;
        if end > cd.len() {
            return Err(bad("its comment runs past the directory"));
        }
        let name = String::from_utf8_lossy(name_bytes).into_owned();
        // zip64 extended information: the 64-bit values of the fields that are all ones.
        let mut e = 0usize;
        while e + 4 <= extra.len() {
            let (id, len) = (u16_at(extra, e), usize::from(u16_at(extra, e + 2)));
            let body = extra
                .get(e + 4..e + 4 + len)
                .ok_or_else(|| bad("an extra field runs past its end"))?;
            if id == 0x0001 {
                let mut f = 0usize;
                let mut next = |field: &mut u64| -> Result<(), ZipError> {
                    if *field == 0xFFFF_FFFF {
                        *field = body
                            .get(f..f + 8)
                            .map(|_| u64_at(body, f))
                            .ok_or_else(|| bad("its zip64 field is too short"))?;
                        f += 8;
                    }
                    Ok(())
                };
                next(&mut uncompressed)?;
                next(&mut compressed)?;
                next(&mut header_offset)?;
            }
            e += 4 + len;
        }
        if disk != 0 && disk != 0xFFFF {
            return Err(ZipError::MultiDisk);
        }
        out.push(Central {
            name,
            flags,
            method,
            compressed,
            uncompressed,
            header_offset,
        });
        pos = end;
    }
    Ok(out)
}

/// Reads the directory and every entry's local header; checks that entries
/// lie inside the file and overlap neither each other nor the directory.
pub async fn read_entries(src: &impl AsyncByteSource) -> Result<Vec<ZipEntry>, ZipError> {
    let file_len = src.size();
    let dir = find_directory(src).await?;
    if dir.count > MAX_ENTRIES {
        return Err(ZipError::TooManyEntries { count: dir.count });
    }
    if dir.size > MAX_DIRECTORY {
        return Err(ZipError::DirectoryTooLarge { size: dir.size });
    }
    if dir
        .offset
        .checked_add(dir.size)
        .is_none_or(|end| end > file_len)
    {
        return Err(ZipError::DirectoryOutside {
            offset: dir.offset,
            size: dir.size,
            file_len,
        });
    }
    let cd = fetch(src, dir.offset, dir.size).await?;
    let centrals = parse_central(&cd, dir.count)?;

    let mut entries = Vec::with_capacity(centrals.len());
    let mut names = std::collections::HashSet::new();
    for c in centrals {
        if !names.insert(c.name.clone()) {
            return Err(ZipError::Duplicate { name: c.name });
        }
        if c.flags & 1 != 0 {
            return Err(ZipError::Encrypted { name: c.name });
        }
        if c.method == 0 && c.compressed != c.uncompressed {
            return Err(ZipError::SizeMismatch {
                name: c.name,
                compressed: c.compressed,
                uncompressed: c.uncompressed,
            });
        }
        let bad_local = || ZipError::BadLocalHeader {
            name: c.name.clone(),
            offset: c.header_offset,
        };
        if c.header_offset
            .checked_add(LOCAL_LEN)
            .is_none_or(|end| end > file_len)
        {
            return Err(bad_local());
        }
        let local = fetch(src, c.header_offset, LOCAL_LEN).await?;
        if u32_at(&local, 0) != LOCAL_SIG {
            return Err(bad_local());
        }
        let skip = LOCAL_LEN + u64::from(u16_at(&local, 26)) + u64::from(u16_at(&local, 28));
        let data_start = c.header_offset + skip; // ≤ file_len + 2·65535: no overflow
        let end = data_start.checked_add(c.compressed).ok_or_else(bad_local)?;
        if end > file_len {
            return Err(ZipError::EntryPastEnd {
                name: c.name,
                start: data_start,
                end,
                file_len,
            });
        }
        entries.push(ZipEntry {
            name: c.name,
            method: c.method,
            header_offset: c.header_offset,
            data_start,
            size: c.compressed,
        });
    }
    check_layout(&entries, dir.offset)?;
    Ok(entries)
}

/// Entries (local header through data) must not overlap one another or run
/// into the central directory: overlapping entries are how a zip makes one
/// byte mean two things.
fn check_layout(entries: &[ZipEntry], directory: u64) -> Result<(), ZipError> {
    let mut order: Vec<&ZipEntry> = entries.iter().collect();
    order.sort_by_key(|e| (e.header_offset, e.data_start));
    for pair in order.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        let a_end = a.data_start + a.size;
        if b.header_offset < a_end {
            return Err(ZipError::Overlap {
                first: a.name.clone(),
                first_start: a.header_offset,
                first_end: a_end,
                second: b.name.clone(),
                second_start: b.header_offset,
                second_end: b.data_start + b.size,
            });
        }
    }
    for e in entries {
        let end = e.data_start + e.size;
        if e.header_offset < directory && end > directory {
            return Err(ZipError::OverlapsDirectory {
                name: e.name.clone(),
                start: e.header_offset,
                end,
                directory,
            });
        }
    }
    Ok(())
}
