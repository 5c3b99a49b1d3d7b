//! Files served over HTTP, read with `fetch` and a `Range: bytes=a-b` header:
//! the browser's half of `rankscope_core::source::remote` (which checks the
//! URLs, reads the answers and keeps the read-ahead blocks). Works on the
//! main thread and in a worker (both have `fetch`); nothing is downloaded
//! whole except a small non-checkpoint file from a server without ranges.

use rankscope_core::source::remote::{
    check_body, check_range_reply, read_probe, Probe, RangeFetch, RangeReader, RemoteError,
    RemoteUrl, Reply, WHOLE_READ_CAP,
};
use rankscope_core::AsyncByteSource;
use std::io;
use std::rc::Rc;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortController, Headers, RequestInit, RequestMode, Response};

/// What a worker needs to read a URL file again without asking the server
/// first: sent in place of a Blob (see `web::sources::FileHandle`).
#[derive(Clone, Debug, PartialEq)]
pub struct UrlFile {
    pub url: String,
    pub size: u64,
    /// The server ignores ranges and the file is small: read it whole.
    pub whole: bool,
}

/// The page's (or worker's) origin, for messages.
fn origin() -> String {
    js_sys::Reflect::get(&js_sys::global(), &"origin".into())
        .ok()
        .and_then(|o| o.as_string())
        .unwrap_or_else(|| "this page".into())
}

/// `fetch(url, init)` on a window or a worker.
async fn send(url: &str, init: &RequestInit) -> Result<Response, JsValue> {
    let global = js_sys::global();
    let promise = match global.dyn_ref::<web_sys::Window>() {
        Some(window) => window.fetch_with_str_and_init(url, init),
        None => global
            .unchecked_ref::<web_sys::WorkerGlobalScope>()
            .fetch_with_str_and_init(url, init),
    };
    JsFuture::from(promise).await?.dyn_into()
}

/// Why a fetch was rejected (a TypeError says no more): a `no-cors` HEAD
/// reaches the server when only CORS stood in the way.
async fn rejected(url: &str, error: JsValue) -> RemoteError {
    let init = RequestInit::new();
    init.set_method("HEAD");
    init.set_mode(RequestMode::NoCors);
    if send(url, &init).await.is_ok() {
        return RemoteError::NoCors {
            url: url.to_string(),
            origin: origin(),
        };
    }
    let detail = error
        .dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .unwrap_or_else(|| format!("{error:?}"));
    RemoteError::Unreachable {
        url: url.to_string(),
        detail,
    }
}

/// A GET of `url`, with `Range: bytes=a-b` when `range` is given; the
/// controller aborts a body the caller will not read.
async fn get(
    url: &str,
    range: Option<(u64, u64)>,
) -> Result<(Response, Option<AbortController>), RemoteError> {
    let init = RequestInit::new();
    init.set_method("GET");
    if let Some((start, end)) = range {
        let headers = Headers::new().map_err(|e| rejected_now(url, e))?;
        headers
            .set("Range", &format!("bytes={start}-{end}"))
            .map_err(|e| rejected_now(url, e))?;
        init.set_headers(&headers);
    }
    let controller = AbortController::new().ok();
    if let Some(c) = &controller {
        init.set_signal(Some(&c.signal()));
    }
    match send(url, &init).await {
        Ok(response) => Ok((response, controller)),
        Err(e) => Err(rejected(url, e).await),
    }
}

fn rejected_now(url: &str, e: JsValue) -> RemoteError {
    RemoteError::Unreachable {
        url: url.to_string(),
        detail: format!("{e:?}"),
    }
}

fn header(response: &Response, name: &str) -> Option<String> {
    response.headers().get(name).ok().flatten()
}

async fn body(url: &str, response: &Response) -> Result<Vec<u8>, RemoteError> {
    let promise = response.array_buffer().map_err(|e| rejected_now(url, e))?;
    let buffer = JsFuture::from(promise)
        .await
        .map_err(|e| rejected_now(url, e))?;
    Ok(js_sys::Uint8Array::new(&buffer).to_vec())
}

/// Range requests for one URL, each checked.
pub struct HttpRanges {
    url: String,
    size: u64,
}

impl RangeFetch for HttpRanges {
    async fn fetch_range(&self, start: u64, len: u64) -> io::Result<Vec<u8>> {
        let end = start + len - 1;
        let (response, controller) = get(&self.url, Some((start, end))).await?;
        let range = header(&response, "content-range");
        let length = header(&response, "content-length").and_then(|l| l.parse().ok());
        let reply = Reply {
            status: response.status(),
            content_range: range.as_deref(),
            content_length: length,
        };
        if let Err(e) = check_range_reply(&self.url, start, len, self.size, &reply) {
            if let Some(c) = controller {
                c.abort(); // a 200 would be the whole file
            }
            return Err(e.into());
        }
        let bytes = body(&self.url, &response).await?;
        check_body(&self.url, start, len, bytes.len())?;
        Ok(bytes)
    }
}

/// A URL file as an [`AsyncByteSource`] (cheap to clone).
#[derive(Clone)]
pub struct UrlSource {
    reader: Rc<RangeReader<HttpRanges>>,
}

impl AsyncByteSource for UrlSource {
    fn size(&self) -> u64 {
        self.reader.size()
    }
    async fn fetch(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        self.reader.fetch(offset, len).await
    }
}

/// Reads a whole small file (a server without ranges), refusing more than the cap.
async fn read_whole(url: &str, response: &Response) -> Result<Vec<u8>, RemoteError> {
    let bytes = body(url, response).await?;
    if bytes.len() as u64 > WHOLE_READ_CAP {
        return Err(RemoteError::NoRanges {
            url: url.to_string(),
            status: response.status(),
        });
    }
    Ok(bytes)
}

impl UrlSource {
    /// Asks the server for the first byte: the file's size, and whether it
    /// serves ranges (or, for a small file that is no checkpoint, gives it whole).
    pub async fn open(remote: &RemoteUrl) -> Result<(UrlFile, UrlSource), RemoteError> {
        let url = remote.url.clone();
        let (response, controller) = get(&url, Some((0, 0))).await?;
        let range = header(&response, "content-range");
        let length = header(&response, "content-length").and_then(|l| l.parse().ok());
        let reply = Reply {
            status: response.status(),
            content_range: range.as_deref(),
            content_length: length,
        };
        let probe = read_probe(remote, &reply);
        let abort = || {
            if let Some(c) = &controller {
                c.abort();
            }
        };
        let fetcher = |size| HttpRanges {
            url: url.clone(),
            size,
        };
        match probe {
            Ok(Probe::Ranges { size }) => Ok(Self::ranges(
                UrlFile {
                    url: url.clone(),
                    size,
                    whole: false,
                },
                fetcher(size),
            )),
            Ok(Probe::SizeHidden) => {
                let init = RequestInit::new();
                init.set_method("HEAD");
                let head = send(&url, &init).await.ok();
                let size = head
                    .as_ref()
                    .filter(|r| r.ok())
                    .and_then(|r| header(r, "content-length"))
                    .and_then(|l| l.parse().ok())
                    .ok_or_else(|| RemoteError::SizeHidden { url: url.clone() })?;
                Ok(Self::ranges(
                    UrlFile {
                        url: url.clone(),
                        size,
                        whole: false,
                    },
                    fetcher(size),
                ))
            }
            Ok(Probe::Whole { .. }) => {
                let bytes = read_whole(&url, &response).await?;
                let file = UrlFile {
                    url: url.clone(),
                    size: bytes.len() as u64,
                    whole: true,
                };
                let reader = RangeReader::whole(fetcher(file.size), bytes);
                Ok((
                    file,
                    UrlSource {
                        reader: Rc::new(reader),
                    },
                ))
            }
            Err(e) => {
                abort();
                Err(e)
            }
        }
    }

    fn ranges(file: UrlFile, fetcher: HttpRanges) -> (UrlFile, UrlSource) {
        let reader = RangeReader::new(fetcher, file.size);
        (
            file,
            UrlSource {
                reader: Rc::new(reader),
            },
        )
    }

    /// A file opened before (in a worker: its handle came with the job),
    /// without asking the server for its size again.
    pub async fn reopen(file: &UrlFile) -> Result<UrlSource, RemoteError> {
        let fetcher = HttpRanges {
            url: file.url.clone(),
            size: file.size,
        };
        if !file.whole {
            return Ok(Self::ranges(file.clone(), fetcher).1);
        }
        let (response, _) = get(&file.url, None).await?;
        if !response.ok() {
            return Err(RemoteError::Status {
                url: file.url.clone(),
                status: response.status(),
            });
        }
        let bytes = read_whole(&file.url, &response).await?;
        if bytes.len() as u64 != file.size {
            return Err(RemoteError::Changed {
                url: file.url.clone(),
                was: file.size,
                now: bytes.len() as u64,
            });
        }
        Ok(UrlSource {
            reader: Rc::new(RangeReader::whole(fetcher, bytes)),
        })
    }
}
