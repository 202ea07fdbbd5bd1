//! Layer tars: written below.
