//! [`AsyncByteSource`] over a `Blob` (a dropped `File`): every read is one
//! `blob.slice(a, b).arrayBuffer()`, so only the requested bytes are ever in
//! memory. Offsets are f64 in JS, exact up to 2⁵³: files over 4 GB work.

use rankscope_core::AsyncByteSource;
use std::io;
use wasm_bindgen_futures::JsFuture;

#[derive(Clone)]
pub struct BlobSource {
    blob: web_sys::Blob,
}

impl BlobSource {
    pub fn new(blob: web_sys::Blob) -> Self {
        Self { blob }
    }
}

fn js_err(what: &str, e: wasm_bindgen::JsValue) -> io::Error {
    io::Error::other(format!(
        "{what}: {}",
        e.as_string().unwrap_or_else(|| format!("{e:?}"))
    ))
}

impl AsyncByteSource for BlobSource {
    fn size(&self) -> u64 {
        self.blob.size() as u64
    }

    async fn fetch(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let end = offset
            .checked_add(len as u64)
            .filter(|&e| e <= self.size())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("read of {len} bytes at {offset} is past the end"),
                )
            })?;
        let slice = self
            .blob
            .slice_with_f64_and_f64(offset as f64, end as f64)
            .map_err(|e| js_err("Blob.slice failed", e))?;
        let buffer = JsFuture::from(slice.array_buffer())
            .await
            .map_err(|e| js_err("reading the file failed", e))?;
        let bytes = js_sys::Uint8Array::new(&buffer).to_vec();
        if bytes.len() != len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file changed while it was read",
            ));
        }
        Ok(bytes)
    }
}
