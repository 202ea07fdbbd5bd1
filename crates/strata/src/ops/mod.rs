//! One function per user operation.

pub mod build;
pub mod check;
pub mod cleanup;
pub mod dap;
pub mod debug;
pub mod explain;
pub mod export;
pub mod failures;
pub mod gc;
pub mod history;
pub mod images;
pub mod import;
pub mod inspect;
pub mod load;
pub mod output;
pub mod plan;
pub mod pull;
pub mod push;
pub mod run;
pub mod step;
