//! damon-ops-vaddr (in progress).
