//! Data sets: 2D toy distributions with known entropies (images come with the images issue).

pub mod toy2d;

pub use toy2d::Toy2d;
