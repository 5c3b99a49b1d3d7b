//! Where a file's bytes are: a dropped or picked `File` (a Blob), or a URL
//! read by Range requests. One handle type travels from the drop zone or the
//! URL box through the state to the worker pool, so each job reads its files
//! the same way wherever they came from.

use super::blob_source::BlobSource;
use super::url_source::{UrlFile, UrlSource};
use js_sys::{Object, Reflect};
use rankscope_core::AsyncByteSource;
use std::io;
use wasm_bindgen::{JsCast, JsValue};

/// A file's handle (never its bytes).
#[derive(Clone)]
pub enum FileHandle {
    Blob(web_sys::Blob),
    Url(UrlFile),
}

impl FileHandle {
    pub fn size(&self) -> u64 {
        match self {
            FileHandle::Blob(b) => b.size() as u64,
            FileHandle::Url(u) => u.size,
        }
    }

    /// The URL it was opened from, if any (figure links and sessions name it).
    pub fn url(&self) -> Option<&str> {
        match self {
            FileHandle::Blob(_) => None,
            FileHandle::Url(u) => Some(&u.url),
        }
    }

    /// As a worker message carries it: the Blob itself, or `{url, size, whole}`.
    pub fn to_js(&self) -> JsValue {
        match self {
            FileHandle::Blob(b) => b.clone().into(),
            FileHandle::Url(u) => {
                let obj = Object::new();
                let _ = Reflect::set(&obj, &"url".into(), &u.url.as_str().into());
                let _ = Reflect::set(&obj, &"size".into(), &(u.size as f64).into());
                let _ = Reflect::set(&obj, &"whole".into(), &u.whole.into());
                obj.into()
            }
        }
    }

    /// Reads back what [`FileHandle::to_js`] wrote.
    pub fn from_js(value: JsValue) -> Option<Self> {
        if let Some(blob) = value.dyn_ref::<web_sys::Blob>() {
            return Some(FileHandle::Blob(blob.clone()));
        }
        let get = |k: &str| Reflect::get(&value, &k.into()).ok();
        Some(FileHandle::Url(UrlFile {
            url: get("url")?.as_string()?,
            size: get("size")?.as_f64()? as u64,
            whole: get("whole")?.as_bool()?,
        }))
    }

    /// A reader of its bytes (a whole-read URL file is fetched here).
    pub async fn open(&self) -> Result<Source, String> {
        match self {
            FileHandle::Blob(b) => Ok(Source::Blob(BlobSource::new(b.clone()))),
            FileHandle::Url(u) => UrlSource::reopen(u)
                .await
                .map(Source::Url)
                .map_err(|e| e.to_string()),
        }
    }
}

/// Opens every handle of a job, in order.
pub async fn open_all(handles: &[FileHandle]) -> Result<Vec<Source>, String> {
    let mut sources = Vec::with_capacity(handles.len());
    for h in handles {
        sources.push(h.open().await?);
    }
    Ok(sources)
}

/// A file's bytes by range, wherever they are.
#[derive(Clone)]
pub enum Source {
    Blob(BlobSource),
    Url(UrlSource),
}

impl AsyncByteSource for Source {
    fn size(&self) -> u64 {
        match self {
            Source::Blob(s) => s.size(),
            Source::Url(s) => s.size(),
        }
    }
    async fn fetch(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        match self {
            Source::Blob(s) => s.fetch(offset, len).await,
            Source::Url(s) => s.fetch(offset, len).await,
        }
    }
}
