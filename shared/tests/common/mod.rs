//! What the GPU test files share: the device, or a skip when there is none.

use indm::IndmError;
use indm::gpu::GpuContext;

/// A device, or `None` (test skipped) when there is no adapter and none is required.
///
/// Without an adapter the caller's test prints `SKIPPED` and passes, unless
/// `INDM_REQUIRE_GPU=1` (set by `scripts/test.sh`), which makes a missing adapter fail.
pub fn context() -> Option<GpuContext> {
    match GpuContext::new_blocking() {
        Ok(ctx) => {
            eprintln!("adapter: {}", ctx.describe());
            Some(ctx)
        }
        Err(IndmError::NoAdapter(why)) if std::env::var_os("INDM_REQUIRE_GPU").is_none() => {
            eprintln!(
                "SKIPPED: no GPU adapter ({why}); run scripts/setup.sh to install Mesa \
                 lavapipe, or set INDM_REQUIRE_GPU=1 to make this a failure"
            );
            None
        }
        Err(e) => panic!("INDM_REQUIRE_GPU is set but there is no usable adapter: {e}"),
    }
}
