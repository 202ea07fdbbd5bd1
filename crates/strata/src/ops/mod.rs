//! One function per user operation.

pub mod build;
pub mod debug;
pub mod export;
pub mod images;
pub mod import;
pub mod inspect;
pub mod load;
pub mod output;
pub mod push;
pub mod run;
