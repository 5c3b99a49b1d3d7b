//! The page's URL fragment on arbitrary text (bytes → lossy UTF-8): the view
//! (`view=`, `view_link`) and the files opened from URLs (`src=`, each URL
//! checked by `RemoteUrl::parse`, and named again by a view link). Whatever
//! view decodes must re-encode and decode to the same view; nothing may panic
//! or loop.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rankscope_core::source::remote::{src_fragment, src_list, RemoteUrl};
use rankscope_core::view_link::{
    decode_view, encode_view, fragment_with, fragment_with_src, view_from_fragment,
};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (view, _) = view_from_fragment(&text);
    let again = decode_view(&encode_view(&view)).expect("an encoded view decodes");
    assert_eq!(again, view, "a view changed on its way through a link");
    // Writing the view keeps every other key of the fragment.
    let written = fragment_with(&text, "view", Some(&encode_view(&view)));
    let _ = view_from_fragment(&written);
    if let Some(urls) = src_list(&text) {
        for url in urls.iter().take(64) {
            let _ = RemoteUrl::parse(url, Some("https://example.org/rankscope/"));
        }
        let _ = src_list(&src_fragment(&urls));
        // "Link to this view" names the URL-opened files: they come back as they went in.
        if !urls.is_empty() {
            let linked = fragment_with_src(&written, &urls);
            assert_eq!(
                src_list(&linked).as_ref(),
                Some(&urls),
                "a view link lost a URL"
            );
        }
    }
});
