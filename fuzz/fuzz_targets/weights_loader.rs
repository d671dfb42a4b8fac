//! The weights loader: safetensors bytes -> verified `TensorFile` -> architecture + parameters.
//! Any input must give `Ok` or a typed error, never a panic, and whatever is accepted must
//! write back to bytes that read back to the same bytes.
#![no_main]

use indm::weights::{TensorFile, model_from_file};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(file) = TensorFile::from_bytes(data, "<fuzz>") else {
        return;
    };
    if let Ok((arch, params)) = model_from_file(&file, "<fuzz>") {
        // A loaded model is consistent with its own architecture.
        params
            .check_against(&arch)
            .expect("a loaded model matches its architecture");
    }
    // Round trip (compared as bytes: NaN != NaN as f32).
    let bytes = file.to_bytes().expect("a parsed file serialises");
    let again = TensorFile::from_bytes(&bytes, "<round trip>").expect("own output reads back");
    assert_eq!(again.to_bytes().expect("serialises"), bytes);
});
