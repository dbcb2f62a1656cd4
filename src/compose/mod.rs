//! Loading a compose project the way Docker Compose does: file discovery,
//! interpolation, merging of several files, profiles, validation.

pub mod model;

pub use model::*;
