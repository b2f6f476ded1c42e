//! damo names memory cgroups by path (`memcg_path`, relative to the memory
//! hierarchy's mount, as the kernel's sysfs takes it); this library by id
//! (the cgroup directory's inode number, what the kernel resolves the path
//! to). Both directions look at this machine's cgroup file system.

use crate::error::DamoError;
use damon_schemes::memcg::{memcg_id_at, memcg_path_of};

/// The id of the memory cgroup at damo path `p` (`/` is the root), or an
/// error at JSON path `json_path` when no such cgroup exists here.
pub(super) fn id_of_path(p: &str, json_path: &str) -> Result<u64, DamoError> {
    match memcg_id_at(p) {
        Ok(Some(id)) => Ok(id),
        Err(e) => Err(DamoError::Invalid {
            path: json_path.into(),
            message: format!("{p:?}: {e}"),
        }),
        Ok(None) => Err(DamoError::Invalid {
            path: json_path.into(),
            message: format!(
                "no memory cgroup {p:?} on this machine (paths are relative to the memory cgroup mount, as in damo)"
            ),
        }),
    }
}

/// The damo path of memory cgroup `id`, or an error at `json_path` when it
/// no longer exists.
pub(super) fn path_of_id(id: u64, json_path: &str) -> Result<String, DamoError> {
    memcg_path_of(id).ok_or_else(|| {
        DamoError::Unsupported(format!(
            "{json_path}: memory cgroup {id} does not exist (any more), so damo's memcg_path cannot name it"
        ))
    })
}
