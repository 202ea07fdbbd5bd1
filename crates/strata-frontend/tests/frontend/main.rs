//! Integration tests of strata-frontend; modules mirror `src/`.

mod load;
mod stapel;
