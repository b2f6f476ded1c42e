//! damon-schemes (in progress).
