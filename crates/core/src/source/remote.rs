//! Files served over HTTP, read by byte range: everything about them that is
//! not the browser's.
//!
//! - [`src_list`] / [`src_fragment`]: the page link `#src=<url>[,<url>…]`
//!   (each URL percent-encoded) and [`url_list`] for the page's text box.
//! - [`RemoteUrl`]: a URL checked (http and https only) with the path it gets
//!   in the inventory, so `…/runA/step_100.safetensors` and
//!   `…/runA/config.json` link to one run as a dropped folder would.
//! - [`read_probe`]: what the answer to the first request (`Range: bytes=0-0`)
//!   says: the size and whether the server serves ranges.
//! - [`check_range_reply`]: every later answer must be the bytes asked for.
//! - [`RangeReader`]: an [`AsyncByteSource`] over any [`RangeFetch`], with a
//!   few read-ahead blocks so that the many small reads of a header cost a
//!   few requests, not hundreds.
//!
//! The page's fetch calls (`src/web/url_source.rs`) are the only web part.

use super::AsyncByteSource;
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::rc::Rc;

/// The fragment key of a list of URLs: `#src=…`.
pub const SRC_KEY: &str = "src=";
/// Most URLs one link or text box may open.
pub const MAX_URLS: usize = 2_000;
/// A server without Range support may still give a small file that is not a
/// checkpoint (a log, a config, a token batch in JSON or `.npy`) whole:
/// at most this many bytes.
pub const WHOLE_READ_CAP: u64 = 16 << 20;
/// Reads shorter than this are served from aligned blocks of this size
/// (fetched once, kept among the last [`CACHED_BLOCKS`]); longer ones (tensors)
/// are one request each, never cached.
pub const BLOCK: u64 = 64 << 10;
/// Blocks kept per file (1 MiB): a safetensors header and a few small tensors.
pub const CACHED_BLOCKS: usize = 16;

/// Why a URL cannot be opened or read. Every message names the URL and, where
/// the server is at fault, what to change on it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RemoteError {
    #[error("{text}: not a URL ({why})")]
    NotAUrl { text: String, why: String },
    #[error("{url}: `{scheme}:` URLs are refused; only http:// and https:// files can be opened")]
    BadScheme { url: String, scheme: String },
    #[error("{url}: URLs with a user name or password are refused (the browser would not send them); give the server's plain URL")]
    Credentials { url: String },
    #[error("{url}: the URL names no file (its path ends in `/`)")]
    NoFile { url: String },
    #[error("{url}: this page is served over https and the browser does not let it read http:// URLs (mixed content); serve the files over https")]
    MixedContent { url: String },
    #[error("{url}: the server does not support Range requests (it answered HTTP {status} with the whole file to a request for one byte). Checkpoints are read by byte range, never downloaded whole: serve the files with a server that answers Range requests with 206 (nginx, Caddy, `npx http-server --cors`)")]
    NoRanges { url: String, status: u16 },
    #[error("{url}: the browser blocked the answer: the server does not allow this page ({origin}) to read its files (no CORS headers). Serve them with `Access-Control-Allow-Origin: *` (or this page's origin) and `Access-Control-Expose-Headers: Content-Range, Content-Length`")]
    NoCors { url: String, origin: String },
    #[error("{url}: the server could not be reached ({detail})")]
    Unreachable { url: String, detail: String },
    #[error("{url}: the server answered HTTP {status}{}", status_hint(.status))]
    Status { url: String, status: u16 },
    #[error("{url}: the server's Content-Range header `{header}` is not readable")]
    BadContentRange { url: String, header: String },
    #[error("{url}: the server answers Range requests but hides the file's size from this page; add `Access-Control-Expose-Headers: Content-Range` to its CORS headers")]
    SizeHidden { url: String },
    #[error("{url}: asked for bytes {start}-{end} and got {got}")]
    WrongRange {
        url: String,
        start: u64,
        end: u64,
        got: String,
    },
    #[error(
        "{url}: the file changed on the server while it was read (it was {was} bytes, now {now})"
    )]
    Changed { url: String, was: u64, now: u64 },
    #[error("{count} URLs given; at most {MAX_URLS} are opened at once")]
    TooMany { count: usize },
}

fn status_hint(status: &u16) -> &'static str {
    match *status {
        404 => " (not found: check the URL)",
        401 | 403 => " (the server refuses this page: it needs a login or a signed URL)",
        _ => "",
    }
}

impl From<RemoteError> for io::Error {
    fn from(e: RemoteError) -> Self {
        io::Error::other(e)
    }
}

/// The URLs of `src=` in a URL fragment (with or without the leading `#`),
/// percent-decoded; `None` when the fragment has no
/// `src=` key. Other `&`-separated keys (`figure=`, view state) are left alone.
pub fn src_list(fragment: &str) -> Option<Vec<String>> {
    // Only a leading `#` is dropped: a `#` later is part of the fragment (a hand-written link
    // may hold one in a key's value), and a whole page URL is [`url_list`]'s to take apart.
    let fragment = fragment.strip_prefix('#').unwrap_or(fragment);
    let value = fragment
        .split('&')
        .find_map(|kv| kv.strip_prefix(SRC_KEY))?;
    Some(
        value
            .split(',')
            .filter(|u| !u.trim().is_empty())
            .map(|u| {
                percent_decode_str(u.trim())
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .collect(),
    )
}

/// What is percent-encoded in a `src=` value: what ends a URL in the list or
/// the fragment key (`,` `&` `#`), `%` itself, and what browsers escape in a
/// fragment anyway.
const SRC_ESCAPE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'&')
    .add(b',')
    .add(b'<')
    .add(b'>')
    .add(b'`');

/// The fragment (without `#`) that opens `urls`: `src=<url>,<url>…`.
pub fn src_fragment<S: AsRef<str>>(urls: &[S]) -> String {
    format!("{SRC_KEY}{}", src_value(urls))
}

/// The value of `src=` that names `urls`: each percent-encoded, joined by `,`.
pub fn src_value<S: AsRef<str>>(urls: &[S]) -> String {
    let list: Vec<String> = urls
        .iter()
        .map(|u| utf8_percent_encode(u.as_ref(), SRC_ESCAPE).to_string())
        .collect();
    list.join(",")
}

/// The URLs typed or pasted in the page's text box: separated by white space;
/// a pasted page link (`…#src=a,b`) gives its list.
pub fn url_list(text: &str) -> Vec<String> {
    text.split_whitespace()
        .flat_map(|word| {
            let fragment = match word.split_once('#') {
                Some((_, f)) => Some(f),
                None => word.starts_with(SRC_KEY).then_some(word),
            };
            fragment
                .and_then(src_list)
                .unwrap_or_else(|| vec![word.to_string()])
        })
        .collect()
}

/// An http(s) URL to open, with the path its file has in the inventory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteUrl {
    /// As the browser will request it (normalised by the WHATWG URL parser).
    pub url: String,
    /// The URL's path, percent-decoded, without the leading `/`:
    /// `runs/A1/ckpt_tokens_0.safetensors`. Shown as text, never as markup.
    pub path: String,
}

impl RemoteUrl {
    /// Checks an absolute URL (the page first resolves relative ones against
    /// itself with the browser's own URL parser). Only http and https are
    /// accepted (`javascript:`, `data:`, `file:`, `blob:` … are refused); an
    /// https `page` cannot read http URLs except from this machine.
    ///
    /// Checked by hand rather than with the `url` crate: the page already has
    /// the browser's WHATWG parser, and the crate's IDNA tables would add
    /// to the page's download for a check this small (scheme, user info,
    /// host, path).
    pub fn parse(text: &str, page: Option<&str>) -> Result<Self, RemoteError> {
        let text = text.trim();
        let not_a_url = |why: &str| RemoteError::NotAUrl {
            text: text.chars().take(200).collect(),
            why: why.to_string(),
        };
        // The scheme first: `data:…` with spaces is refused as a `data:` URL, which says more.
        let scheme_of = text.split_once(':').map(|(s, _)| s.to_ascii_lowercase());
        if let Some(scheme) = scheme_of.filter(|s| {
            !s.is_empty()
                && s != "http"
                && s != "https"
                && s.chars().all(|c| c.is_ascii_alphabetic())
        }) {
            return Err(RemoteError::BadScheme {
                url: text.chars().take(80).collect(),
                scheme,
            });
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(not_a_url("it contains spaces or control characters"));
        }
        let (scheme, rest) = text
            .split_once(':')
            .filter(|(s, _)| {
                s.starts_with(|c: char| c.is_ascii_alphabetic())
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
            })
            .ok_or_else(|| not_a_url("it has no scheme such as https://"))?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(RemoteError::BadScheme {
                url: text.chars().take(80).collect(),
                scheme,
            });
        }
        let rest = rest
            .strip_prefix("//")
            .ok_or_else(|| not_a_url("no `//` after the scheme"))?;
        let rest = rest.split('#').next().unwrap_or_default();
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, after) = rest.split_at(authority_end);
        if let Some((_, host)) = authority.rsplit_once('@') {
            return Err(RemoteError::Credentials {
                // Never echo a password back into the page.
                url: format!("{scheme}://{host}{after}"),
            });
        }
        // The host without its port (`[::1]:8000`, `lab.example:8443`).
        let host = match authority.strip_prefix('[') {
            Some(v6) => v6
                .split_once(']')
                .map(|(h, _)| h)
                .ok_or_else(|| not_a_url("an unclosed `[` in its host"))?,
            None => authority.split(':').next().unwrap_or_default(),
        };
        if host.is_empty() {
            return Err(not_a_url("it names no server"));
        }
        let url = format!("{scheme}://{authority}{after}");
        let local = matches!(
            host.to_ascii_lowercase().as_str(),
            "localhost" | "127.0.0.1" | "::1"
        );
        let page_https = page.is_some_and(|p| p.to_ascii_lowercase().starts_with("https:"));
        if scheme == "http" && page_https && !local {
            return Err(RemoteError::MixedContent { url });
        }
        let path = after.split('?').next().unwrap_or_default();
        let segments: Vec<String> = path
            .split('/')
            .map(|seg| percent_decode_str(seg).decode_utf8_lossy().into_owned())
            .collect();
        if segments.last().is_none_or(|s| s.is_empty()) {
            return Err(RemoteError::NoFile { url });
        }
        Ok(Self {
            url,
            path: segments
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join("/"),
        })
    }
}

/// Weight files by name: never read whole, whatever their size.
fn is_weights_name(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    [
        ".safetensors",
        ".pt",
        ".pth",
        ".bin",
        ".ckpt",
        ".gguf",
        ".h5",
        ".msgpack",
    ]
    .iter()
    .any(|ext| lower.ends_with(ext))
}

/// An HTTP answer's status and the headers the readers need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply<'a> {
    pub status: u16,
    /// `Content-Range`, when the browser lets the page read it (CORS exposes it).
    pub content_range: Option<&'a str>,
    /// `Content-Length` (always readable).
    pub content_length: Option<u64>,
}

/// What the first answer (to `Range: bytes=0-0`) says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// 206: ranges work and the file has `size` bytes.
    Ranges { size: u64 },
    /// 206 without a readable size: ask `HEAD` for `Content-Length`.
    SizeHidden,
    /// 200 to a range request, for a small file that is no checkpoint: read
    /// it whole (`size` as the server announced it).
    Whole { size: u64 },
}

/// A `Content-Range`: the inclusive byte range (`None` for `*`, as on a 416)
/// and the file's total size (`None` for `*`).
type ContentRange = (Option<(u64, u64)>, Option<u64>);

/// `Content-Range: bytes a-b/total` (or `bytes */total` on a 416).
fn parse_content_range(header: &str) -> Option<ContentRange> {
    let rest = header.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    let range = match range.trim() {
        "*" => None,
        r => {
            let (a, b) = r.split_once('-')?;
            let (a, b): (u64, u64) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
            if b < a {
                return None;
            }
            Some((a, b))
        }
    };
    Some((range, total))
}

/// Reads the answer to the first request for `url` (`Range: bytes=0-0`).
pub fn read_probe(url: &RemoteUrl, reply: &Reply) -> Result<Probe, RemoteError> {
    let bad = |header: &str| RemoteError::BadContentRange {
        url: url.url.clone(),
        header: header.to_string(),
    };
    match reply.status {
        206 => match reply.content_range {
            None => Ok(Probe::SizeHidden),
            Some(header) => match parse_content_range(header).ok_or_else(|| bad(header))? {
                (Some((0, _)), Some(size)) => Ok(Probe::Ranges { size }),
                (Some((0, _)), None) => Ok(Probe::SizeHidden),
                _ => Err(bad(header)),
            },
        },
        // An empty file cannot satisfy a range: `bytes */0`.
        416 => match reply.content_range.and_then(parse_content_range) {
            Some((None, Some(0))) => Ok(Probe::Ranges { size: 0 }),
            _ => Err(RemoteError::Status {
                url: url.url.clone(),
                status: 416,
            }),
        },
        200 => match reply.content_length {
            Some(size) if size <= WHOLE_READ_CAP && !is_weights_name(&url.path) => {
                Ok(Probe::Whole { size })
            }
            _ => Err(RemoteError::NoRanges {
                url: url.url.clone(),
                status: 200,
            }),
        },
        status => Err(RemoteError::Status {
            url: url.url.clone(),
            status,
        }),
    }
}

/// Checks the status and headers of the answer to a request for bytes
/// `start .. start + len` of a file of `size` bytes, before its body is read
/// (a 200 would be the whole file: its body must not be read).
pub fn check_range_reply(
    url: &str,
    start: u64,
    len: u64,
    size: u64,
    reply: &Reply,
) -> Result<(), RemoteError> {
    let end = start + len.max(1) - 1;
    let wrong = |got: String| RemoteError::WrongRange {
        url: url.to_string(),
        start,
        end,
        got,
    };
    match reply.status {
        206 => {}
        200 => {
            return Err(RemoteError::NoRanges {
                url: url.to_string(),
                status: 200,
            })
        }
        status => {
            return Err(RemoteError::Status {
                url: url.to_string(),
                status,
            })
        }
    }
    if let Some(header) = reply.content_range {
        match parse_content_range(header) {
            Some((_, Some(total))) if total != size => {
                return Err(RemoteError::Changed {
                    url: url.to_string(),
                    was: size,
                    now: total,
                })
            }
            Some((Some((a, b)), _)) if (a, b) == (start, end) => {}
            _ => return Err(wrong(format!("Content-Range `{header}`"))),
        }
    }
    match reply.content_length {
        Some(n) if n != len => Err(wrong(format!("{n} bytes"))),
        _ => Ok(()),
    }
}

/// Checks a body's length against the range asked for.
pub fn check_body(url: &str, start: u64, len: u64, got: usize) -> Result<(), RemoteError> {
    if got as u64 == len {
        return Ok(());
    }
    Err(RemoteError::WrongRange {
        url: url.to_string(),
        start,
        end: start + len.max(1) - 1,
        got: format!("{got} bytes"),
    })
}

/// Bytes of a remote file by range: the page implements it with `fetch` and a
/// `Range` header (checked with [`check_range_reply`] and [`check_body`]).
pub trait RangeFetch {
    /// Exactly bytes `start .. start + len` (`len` > 0), or an error.
    fn fetch_range(&self, start: u64, len: u64) -> impl Future<Output = io::Result<Vec<u8>>>;
}

enum Body {
    /// The last blocks read, newest first: (block index, bytes).
    Ranges(RefCell<VecDeque<(u64, Rc<Vec<u8>>)>>),
    /// A small file read whole (its server has no ranges).
    Whole(Vec<u8>),
}

/// A remote file as an [`AsyncByteSource`]: reads of [`BLOCK`] bytes or more
/// are one range request each; shorter ones come from aligned blocks, kept
/// for the next small read (a header is read in many small pieces).
pub struct RangeReader<F> {
    fetcher: F,
    size: u64,
    body: Body,
}

impl<F: RangeFetch> RangeReader<F> {
    /// A file of `size` bytes read by range through `fetcher`.
    pub fn new(fetcher: F, size: u64) -> Self {
        Self {
            fetcher,
            size,
            body: Body::Ranges(RefCell::new(VecDeque::new())),
        }
    }

    /// A small file already read whole (`fetcher` is not used again).
    pub fn whole(fetcher: F, bytes: Vec<u8>) -> Self {
        Self {
            fetcher,
            size: bytes.len() as u64,
            body: Body::Whole(bytes),
        }
    }

    fn cached(&self, block: u64) -> Option<Rc<Vec<u8>>> {
        let Body::Ranges(cache) = &self.body else {
            return None;
        };
        cache
            .borrow()
            .iter()
            .find(|(b, _)| *b == block)
            .map(|(_, bytes)| bytes.clone())
    }

    fn keep(&self, block: u64, bytes: Rc<Vec<u8>>) {
        if let Body::Ranges(cache) = &self.body {
            let mut cache = cache.borrow_mut();
            cache.retain(|(b, _)| *b != block);
            cache.push_front((block, bytes));
            cache.truncate(CACHED_BLOCKS);
        }
    }

    /// Blocks `first..=last`, fetching the missing ones in one request.
    async fn blocks(&self, first: u64, last: u64) -> io::Result<Vec<Rc<Vec<u8>>>> {
        let missing: Vec<u64> = (first..=last)
            .filter(|&b| self.cached(b).is_none())
            .collect();
        if let (Some(&lo), Some(&hi)) = (missing.first(), missing.last()) {
            let start = lo * BLOCK;
            let end = ((hi + 1) * BLOCK).min(self.size);
            let bytes = self.fetcher.fetch_range(start, end - start).await?;
            for (i, chunk) in bytes.chunks(BLOCK as usize).enumerate() {
                self.keep(lo + i as u64, Rc::new(chunk.to_vec()));
            }
        }
        (first..=last)
            .map(|b| {
                self.cached(b).ok_or_else(|| {
                    io::Error::other("a block read a moment ago is gone (too many reads at once)")
                })
            })
            .collect()
    }
}

impl<F: RangeFetch> AsyncByteSource for RangeReader<F> {
    fn size(&self) -> u64 {
        self.size
    }

    async fn fetch(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let end = offset
            .checked_add(len as u64)
            .filter(|&e| e <= self.size)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "read of {len} bytes at offset {offset} is past the end ({} bytes)",
                        self.size
                    ),
                )
            })?;
        if len == 0 {
            return Ok(Vec::new());
        }
        if let Body::Whole(bytes) = &self.body {
            return Ok(bytes[offset as usize..end as usize].to_vec());
        }
        if len as u64 >= BLOCK {
            return self.fetcher.fetch_range(offset, len as u64).await;
        }
        let (first, last) = (offset / BLOCK, (end - 1) / BLOCK);
        let blocks = self.blocks(first, last).await?;
        let mut out = Vec::with_capacity(len);
        for (i, block) in blocks.iter().enumerate() {
            let block_start = (first + i as u64) * BLOCK;
            let from = offset.max(block_start) - block_start;
            let to = end.min(block_start + block.len() as u64) - block_start;
            out.extend_from_slice(&block[from as usize..to as usize]);
        }
        if out.len() != len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server sent fewer bytes than the file has",
            ));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::block_on;
    use std::cell::Cell;

    #[test]
    fn src_list_reads_only_its_key() {
        assert_eq!(src_list("figure=v1.abc"), None);
        assert_eq!(
            src_list(
                "#figure=v1.abc&src=http%3A%2F%2Fh%2Fa%2Cb.json,https://h/c%26d.safetensors&view=x"
            ),
            Some(vec![
                "http://h/a,b.json".to_string(),
                "https://h/c&d.safetensors".to_string()
            ])
        );
        assert_eq!(
            url_list("https://page.example/rankscope/#src=http://h/x.json"),
            vec!["http://h/x.json".to_string()]
        );
        assert_eq!(src_list("src="), Some(vec![]));
        // A `#` inside the fragment does not cut it (found by the `fragment` fuzz target: a view
        // link written from such a fragment lost its `src=`).
        assert_eq!(
            src_list("src=http://h/a.json&view=v1.x#y"),
            Some(vec!["http://h/a.json".to_string()])
        );
        assert_eq!(
            src_list("#figure=http://a#b&src=http://h/a.json"),
            Some(vec!["http://h/a.json".to_string()])
        );
    }

    #[test]
    fn src_fragment_round_trips() {
        let urls = [
            "https://h.example/runs/A 1/ckpt,1.safetensors?sig=a&b=%2F#x",
            "http://127.0.0.1:8000/runs/A1/metrics.jsonl",
        ];
        let fragment = src_fragment(&urls);
        assert_eq!(fragment.matches(',').count(), 1, "{fragment}");
        assert!(!fragment[SRC_KEY.len()..].contains('&'));
        assert_eq!(
            src_list(&format!("figure=v1.x&{fragment}")),
            Some(urls.iter().map(|u| u.to_string()).collect())
        );
        assert_eq!(
            url_list(&format!("  https://a/x.json\nhttps://page/#{fragment} ")),
            vec![
                "https://a/x.json".to_string(),
                urls[0].to_string(),
                urls[1].to_string()
            ]
        );
    }

    #[test]
    fn urls_are_checked_and_give_inventory_paths() {
        let u = RemoteUrl::parse(
            "http://127.0.0.1:9/data/runs/A%201/ckpt_tokens_0.safetensors?x=1#f",
            None,
        )
        .unwrap();
        assert_eq!(u.path, "data/runs/A 1/ckpt_tokens_0.safetensors");
        assert_eq!(
            u.url,
            "http://127.0.0.1:9/data/runs/A%201/ckpt_tokens_0.safetensors?x=1"
        );
        let v6 = RemoteUrl::parse("HTTPS://[::1]:8443/runA/config.json", None).unwrap();
        assert_eq!(v6.url, "https://[::1]:8443/runA/config.json");
        assert_eq!(v6.path, "runA/config.json");
        // The page resolves relative URLs first; here they are not URLs.
        assert!(matches!(
            RemoteUrl::parse("files/runA/config.json", None),
            Err(RemoteError::NotAUrl { .. })
        ));
        for bad in [
            "javascript:alert(1)",
            "data:text/html,<b>x</b>",
            "file:///etc/passwd",
            "blob:https://a/b",
            "ftp://h/x",
        ] {
            assert!(
                matches!(
                    RemoteUrl::parse(bad, Some("https://lab.example/")),
                    Err(RemoteError::BadScheme { .. })
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            RemoteUrl::parse("https://u:secret@h/x.json", None),
            Err(RemoteError::Credentials { url }) if !url.contains("secret")
        ));
        assert!(matches!(
            RemoteUrl::parse("https://h/runs/", None),
            Err(RemoteError::NoFile { .. })
        ));
        assert!(matches!(
            RemoteUrl::parse("http://[::1", None),
            Err(RemoteError::NotAUrl { .. })
        ));
        assert!(matches!(
            RemoteUrl::parse("no url", None),
            Err(RemoteError::NotAUrl { .. })
        ));
        assert!(matches!(
            RemoteUrl::parse("http://lab.example/x.json", Some("https://page.example/")),
            Err(RemoteError::MixedContent { .. })
        ));
        assert!(RemoteUrl::parse(
            "http://localhost:8000/x.json",
            Some("https://page.example/")
        )
        .is_ok());
        let msg = RemoteError::BadScheme {
            url: "javascript:alert(1)".into(),
            scheme: "javascript".into(),
        }
        .to_string();
        assert!(msg.contains("refused"), "{msg}");
    }

    fn reply(status: u16, content_range: Option<&str>, content_length: Option<u64>) -> Reply<'_> {
        Reply {
            status,
            content_range,
            content_length,
        }
    }

    #[test]
    fn the_probe_tells_ranges_size_and_refusals() {
        let ckpt = RemoteUrl::parse("http://h/runs/A1/ckpt.safetensors", None).unwrap();
        let log = RemoteUrl::parse("http://h/runs/A1/metrics.jsonl", None).unwrap();
        assert_eq!(
            read_probe(&ckpt, &reply(206, Some("bytes 0-0/793032"), Some(1))),
            Ok(Probe::Ranges { size: 793032 })
        );
        assert_eq!(
            read_probe(&ckpt, &reply(206, None, Some(1))),
            Ok(Probe::SizeHidden)
        );
        assert_eq!(
            read_probe(&ckpt, &reply(206, Some("bytes 0-0/*"), Some(1))),
            Ok(Probe::SizeHidden)
        );
        assert!(matches!(
            read_probe(&ckpt, &reply(206, Some("bytes 5-9/10"), None)),
            Err(RemoteError::BadContentRange { .. })
        ));
        assert!(matches!(
            read_probe(&ckpt, &reply(206, Some("items 0-0/10"), None)),
            Err(RemoteError::BadContentRange { .. })
        ));
        assert_eq!(
            read_probe(&ckpt, &reply(416, Some("bytes */0"), None)),
            Ok(Probe::Ranges { size: 0 })
        );
        // No Range support: a checkpoint never, a small log whole.
        let err = read_probe(&ckpt, &reply(200, None, Some(793032))).unwrap_err();
        assert!(matches!(err, RemoteError::NoRanges { .. }));
        let msg = err.to_string();
        assert!(
            msg.starts_with(
                "http://h/runs/A1/ckpt.safetensors: the server does not support Range requests"
            ),
            "{msg}"
        );
        assert_eq!(
            read_probe(&log, &reply(200, None, Some(72506))),
            Ok(Probe::Whole { size: 72506 })
        );
        assert!(matches!(
            read_probe(&log, &reply(200, None, Some(WHOLE_READ_CAP + 1))),
            Err(RemoteError::NoRanges { .. })
        ));
        assert!(matches!(
            read_probe(&log, &reply(200, None, None)),
            Err(RemoteError::NoRanges { .. })
        ));
        let missing = read_probe(&log, &reply(404, None, None))
            .unwrap_err()
            .to_string();
        assert!(missing.contains("HTTP 404 (not found"), "{missing}");
    }

    #[test]
    fn range_replies_must_be_the_bytes_asked_for() {
        let ok = reply(206, Some("bytes 10-19/100"), Some(10));
        assert_eq!(check_range_reply("u", 10, 10, 100, &ok), Ok(()));
        assert_eq!(
            check_range_reply("u", 10, 10, 100, &reply(206, None, None)),
            Ok(())
        );
        assert!(matches!(
            check_range_reply("u", 10, 10, 100, &reply(200, None, Some(100))),
            Err(RemoteError::NoRanges { .. })
        ));
        assert!(matches!(
            check_range_reply("u", 10, 10, 100, &reply(206, Some("bytes 0-9/100"), None)),
            Err(RemoteError::WrongRange { .. })
        ));
        assert!(matches!(
            check_range_reply("u", 10, 10, 100, &reply(206, Some("bytes 10-19/120"), None)),
            Err(RemoteError::Changed {
                was: 100,
                now: 120,
                ..
            })
        ));
        assert!(matches!(
            check_range_reply("u", 10, 10, 100, &reply(206, None, Some(5))),
            Err(RemoteError::WrongRange { .. })
        ));
        assert!(matches!(
            check_range_reply("u", 10, 10, 100, &reply(500, None, None)),
            Err(RemoteError::Status { status: 500, .. })
        ));
        assert!(check_body("u", 0, 4, 3).is_err());
        assert!(check_body("u", 0, 4, 4).is_ok());
    }

    /// A server in memory that counts the requests it answers.
    struct Server {
        bytes: Vec<u8>,
        requests: Cell<usize>,
        served: Cell<u64>,
    }

    impl RangeFetch for &Server {
        async fn fetch_range(&self, start: u64, len: u64) -> io::Result<Vec<u8>> {
            assert!(
                len > 0 && start + len <= self.bytes.len() as u64,
                "asked {start}+{len}"
            );
            self.requests.set(self.requests.get() + 1);
            self.served.set(self.served.get() + len);
            Ok(self.bytes[start as usize..(start + len) as usize].to_vec())
        }
    }

    #[test]
    fn the_reader_gives_every_range_and_reuses_small_blocks() {
        let size = 3 * BLOCK as usize + 1234;
        let server = Server {
            bytes: (0..size).map(|i| (i * 7 % 251) as u8).collect(),
            requests: Cell::new(0),
            served: Cell::new(0),
        };
        let reader = RangeReader::new(&server, size as u64);
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..500 {
            let offset = rng.u64(0..size as u64);
            let len = rng.usize(0..=(size - offset as usize).min(2 * BLOCK as usize));
            let got = block_on(reader.fetch(offset, len)).unwrap();
            assert_eq!(
                got,
                server.bytes[offset as usize..offset as usize + len],
                "{offset}+{len}"
            );
        }
        // A header read in small pieces: one request.
        let fresh = Server {
            bytes: server.bytes.clone(),
            requests: Cell::new(0),
            served: Cell::new(0),
        };
        let reader = RangeReader::new(&fresh, size as u64);
        for i in 0..100u64 {
            block_on(reader.fetch(i * 100, 100)).unwrap();
        }
        assert_eq!(fresh.requests.get(), 1);
        // A read across two missing blocks is one request; a big read is one, uncached.
        block_on(reader.fetch(2 * BLOCK - 10, 20)).unwrap();
        assert_eq!(fresh.requests.get(), 2);
        assert_eq!(fresh.served.get(), 3 * BLOCK);
        block_on(reader.fetch(5, BLOCK as usize)).unwrap();
        block_on(reader.fetch(5, BLOCK as usize)).unwrap();
        assert_eq!(fresh.requests.get(), 4);
        // The last, short block.
        let tail = block_on(reader.fetch(size as u64 - 3, 3)).unwrap();
        assert_eq!(tail, fresh.bytes[size - 3..]);
        let past = block_on(reader.fetch(size as u64 - 3, 4)).unwrap_err();
        assert_eq!(past.kind(), io::ErrorKind::UnexpectedEof);
        assert!(block_on(reader.fetch(u64::MAX, 1)).is_err());
    }

    #[test]
    fn a_whole_file_is_read_from_memory() {
        let server = Server {
            bytes: vec![],
            requests: Cell::new(0),
            served: Cell::new(0),
        };
        let reader = RangeReader::whole(&server, b"{\"step\": 1}\n".to_vec());
        assert_eq!(reader.size(), 12);
        assert_eq!(block_on(reader.fetch(1, 6)).unwrap(), b"\"step\"");
        assert!(block_on(reader.fetch(10, 5)).is_err());
        assert_eq!(server.requests.get(), 0);
    }

    #[test]
    fn errors_pass_through_io_with_their_message() {
        let e: io::Error = RemoteError::NoCors {
            url: "http://h/x".into(),
            origin: "http://page".into(),
        }
        .into();
        assert!(e.to_string().contains("Access-Control-Allow-Origin"), "{e}");
    }
}
