//! Session files: `session::read_session` over an in-memory file (head sniff,
//! size check, then the versioned load) and `load_session_bytes` on the raw
//! bytes (so inputs that do not start like a session still reach the loader).
//! Whatever loads must re-serialise and load back to the same session.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rankscope_core::session::{load_session, load_session_bytes, read_session};
use rankscope_core::source::block_on;

fuzz_target!(|data: &[u8]| {
    let file: Vec<u8> = data.to_vec();
    let _ = block_on(read_session(&file));
    if let Ok(session) = load_session_bytes(data) {
        let again = load_session(&session.to_json()).expect("a loaded session reloads");
        assert_eq!(again.files, session.files);
        assert_eq!(again.version, session.version);
    }
});
