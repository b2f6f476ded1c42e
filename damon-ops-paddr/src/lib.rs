//! damon-ops-paddr (in progress).
