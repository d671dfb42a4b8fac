//! Data sets: 2D toy distributions with known entropies, and 8-bit images (folders, CIFAR-10
//! binary batches, IDX files) with dequantization, per-SDE scaling, flips and bits/dim.

pub mod cifar;
pub mod dequant;
pub mod folder;
pub mod idx;
pub mod image;
pub mod images;
pub mod toy2d;

pub use toy2d::Toy2d;
