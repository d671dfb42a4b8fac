//! The share-link state parser of the browser demo (`web/src/state.rs`, plain Rust, included
//! by path so that the fuzz build needs neither wasm nor wgpu). Any query gives a valid state
//! and never panics; the canonical query of that state parses back to it with no notice.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../web/src/state.rs"]
mod state;

fuzz_target!(|data: &[u8]| {
    let query = String::from_utf8_lossy(data);
    let (s, _notices) = state::parse(&query);
    let canonical = state::to_query(&s);
    let (again, notices) = state::parse(&canonical);
    assert_eq!(again, s, "query {canonical:?}");
    assert!(notices.is_empty(), "{canonical:?}: {notices:?}");
});
