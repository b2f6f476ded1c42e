//! What a backend (an [`Operations`] implementation) and a DAMOS engine may
//! use of the core, in one place: the trait and the view of the context it
//! gets, the region helpers the kernel's `vaddr.c`/`paddr.c` and DAMOS call
//! (`damon_set_regions`, `damon_split_region_at`,
//! `damon_update_region_access_rate`, `ALIGN_DOWN`), the prioritization
//! scores of `ops-common.c`, and the registry ids of the backends this
//! project ships.
//!
//! ```
//! use damon_core::backend::{set_regions, AddrRange};
//! let mut t = damon_core::Target::new(0);
//! set_regions(&mut t, &[AddrRange::new(0, 1 << 20)], 4096).unwrap();
//! assert_eq!(t.regions.len(), 1);
//! ```

pub use crate::access::update_region_access_rate;
pub use crate::adapt::{region_sz_limit, set_regions, split_region_at};
pub use crate::engine::{DamosEngine, DamosEnv};
pub use crate::ops::{ApplyOutcome, Operations, OpsCtx};
pub use crate::region::{align_down, align_up, AddrRange, Region};
pub use crate::registry::ids;
pub use crate::score::{cold_score, hot_score, vaddr_scheme_score};
