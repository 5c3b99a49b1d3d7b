//! Random access to the bytes of one input file, so that tensors are read by
//! byte range and no file is ever held in memory twice (or at all).
//!
//! Native code uses [`FileSource`] (seeks); tests use `Vec<u8>`/`&[u8]`; the page
//! implements the trait over `Blob.slice` + `FileReaderSync` in a worker, or
//! reads ranges asynchronously and calls the pure parsing functions directly.
//! Files served over HTTP are read by `Range` requests ([`remote`]).

use std::io;

pub mod remote;

/// A file whose bytes can be read at any offset. Offsets are `u64`: files over
/// 4 GB must work, also on 32-bit wasm where `usize` is 32 bits.
pub trait ByteSource {
    /// Total length in bytes.
    fn len(&self) -> u64;

    /// Whether the source has no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads exactly `len` bytes starting at `offset`. Reading past the end is
    /// an `UnexpectedEof` error, never a short read.
    fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>>;
}

fn check_range(total: u64, offset: u64, len: usize) -> io::Result<()> {
    let end = offset.checked_add(len as u64);
    match end {
        Some(end) if end <= total => Ok(()),
        _ => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("read of {len} bytes at offset {offset} is past the end ({total} bytes)"),
        )),
    }
}

impl ByteSource for [u8] {
    fn len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }
    fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        check_range(ByteSource::len(self), offset, len)?;
        let start = offset as usize;
        Ok(self[start..start + len].to_vec())
    }
}

impl ByteSource for Vec<u8> {
    fn len(&self) -> u64 {
        self.as_slice().len() as u64
    }
    fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        self.as_slice().read_at(offset, len)
    }
}

impl<T: ByteSource + ?Sized> ByteSource for &T {
    fn len(&self) -> u64 {
        (**self).len()
    }
    fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        (**self).read_at(offset, len)
    }
}

#[cfg(not(target_arch = "wasm32"))]
pub use native::FileSource;

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use super::{check_range, ByteSource};
    use std::fs::File;
    use std::io;
    use std::path::Path;

    /// A file on disk, read with positioned reads (no shared cursor, no mmap).
    pub struct FileSource {
        file: File,
        len: u64,
    }

    impl FileSource {
        pub fn open(path: impl AsRef<Path>) -> io::Result<Self> {
            let file = File::open(path)?;
            let len = file.metadata()?.len();
            Ok(Self { file, len })
        }
    }

    impl ByteSource for FileSource {
        fn len(&self) -> u64 {
            self.len
        }
        fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
            check_range(self.len, offset, len)?;
            let mut buf = vec![0u8; len];
            #[cfg(unix)]
            {
                use std::os::unix::fs::FileExt;
                self.file.read_exact_at(&mut buf, offset)?;
            }
            #[cfg(not(unix))]
            {
                use std::io::{Read, Seek, SeekFrom};
                let mut f = &self.file;
                f.seek(SeekFrom::Start(offset))?;
                f.read_exact(&mut buf)?;
            }
            Ok(buf)
        }
    }
}

/// The same access, awaited: the page reads `Blob.slice(..).arrayBuffer()`,
/// which is a promise. Every [`ByteSource`] is one too (its futures are ready
/// at once), so the inventory driver is written once, as `async`, and runs
/// natively through [`block_on`].
///
/// Method names differ from [`ByteSource`]'s so that both traits can be in
/// scope without ambiguity.
pub trait AsyncByteSource {
    /// Total length in bytes.
    fn size(&self) -> u64;
    /// Reads exactly `len` bytes at `offset` (an error, never a short read).
    fn fetch(
        &self,
        offset: u64,
        len: usize,
    ) -> impl std::future::Future<Output = io::Result<Vec<u8>>>;
    /// The longest read worth making when a long range is decoded piece by piece: by
    /// default the whole range at once (a request or a promise per read costs time).
    fn piece_len(&self) -> usize {
        usize::MAX
    }
}

impl<T: ByteSource + ?Sized> AsyncByteSource for T {
    fn size(&self) -> u64 {
        self.len()
    }
    fn fetch(
        &self,
        offset: u64,
        len: usize,
    ) -> impl std::future::Future<Output = io::Result<Vec<u8>>> {
        std::future::ready(self.read_at(offset, len))
    }
    /// A positioned read or a copy costs nothing per call: small pieces stay in the cache,
    /// where one whole-tensor buffer would fault in fresh pages for every tensor (the
    /// full-size benchmark's load: 220 → 146 ms at 128 KiB; 2 MiB 172 ms, 64 KiB 150 ms).
    fn piece_len(&self) -> usize {
        SYNC_PIECE_LEN
    }
}

/// [`AsyncByteSource::piece_len`] of every [`ByteSource`].
pub const SYNC_PIECE_LEN: usize = 128 << 10;

/// Drives a future whose I/O is synchronous underneath (a [`ByteSource`] seen
/// as an [`AsyncByteSource`]) to completion. Such futures never return
/// `Pending` except where they yield voluntarily, so polling in a loop with a
/// no-op waker is correct; it must not be used with real asynchronous I/O.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    use std::task::{Context, Poll, Waker};
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::yield_now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_reads_and_refuses_past_end() {
        let bytes = vec![1u8, 2, 3, 4];
        assert_eq!(bytes.read_at(1, 2).unwrap(), vec![2, 3]);
        assert_eq!(bytes.read_at(4, 0).unwrap(), Vec::<u8>::new());
        assert_eq!(
            bytes.read_at(3, 2).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
        assert_eq!(
            bytes.read_at(u64::MAX, 1).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
    }
}
