//! The user-image path: bytes in any format -> RGB -> centre crop -> resize -> f32 CHW in
//! [0, 1]. Every input gives a tensor of the right shape with values in [0, 1], or a typed
//! `BadImage` / `ImageTooLarge` error; never a panic, never an allocation beyond the limits.
#![no_main]

use indm::IndmError;
use indm::data::image::{DecodeLimits, image_to_tensor, probe};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = DecodeLimits::small();
    match image_to_tensor(data, "<fuzz>", 8, &limits) {
        Ok(t) => {
            assert_eq!((t.channels, t.height, t.width), (3, 8, 8));
            assert_eq!(t.data.len(), 3 * 8 * 8);
            assert!(t.data.iter().all(|v| (0.0..=1.0).contains(v)));
        }
        Err(IndmError::BadImage { .. } | IndmError::ImageTooLarge { .. }) => {}
        Err(e) => panic!("unexpected error kind: {e:?}"),
    }
    let _ = probe(data, "<fuzz>");
});
