//! Compatibility with damo, the kernel DAMON's user-space tool: its record
//! format, its reports and its kdamonds configuration (feature `damo`).
