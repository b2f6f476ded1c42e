//! The operations registry: backends registered under ids, selected into a
//! context by id (`damon_register_ops` / `damon_select_ops`).

use crate::context::Context;
use crate::error::{OpsError, RegistryError, SelectError};
use crate::ops::Operations;
use parking_lot::RwLock;
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

/// Builds a fresh backend instance for one context.
pub type OpsFactory = Arc<dyn Fn() -> Result<Box<dyn Operations>, OpsError> + Send + Sync>;

/// Well-known ids, as in the kernel's `enum damon_ops_id`.
pub mod ids {
    /// Virtual address spaces of processes.
    pub const VADDR: &str = "vaddr";
    /// Fixed virtual address ranges of processes.
    pub const FVADDR: &str = "fvaddr";
    /// Physical address space.
    pub const PADDR: &str = "paddr";
    /// The deterministic simulated backend of this crate.
    pub const SIM: &str = "sim";
}

/// A set of backends by id. [`OpsRegistry::global`] is the process-wide one
/// the kernel-named functions use; tests can make their own.
#[derive(Default)]
pub struct OpsRegistry {
    map: RwLock<BTreeMap<String, OpsFactory>>,
}

impl std::fmt::Debug for OpsRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpsRegistry")
            .field("ids", &self.ids())
            .finish()
    }
}

impl OpsRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The process-wide registry.
    pub fn global() -> &'static OpsRegistry {
        static GLOBAL: OnceLock<OpsRegistry> = OnceLock::new();
        GLOBAL.get_or_init(OpsRegistry::new)
    }

    /// Registers `factory` under `id`; a second registration of the same id
    /// is refused, as in the kernel.
    ///
    /// ```
    /// use damon_core::{OpsRegistry, SimOps, SimPattern};
    /// let reg = OpsRegistry::new();
    /// reg.register("mine", || Ok(Box::new(SimOps::new(SimPattern::uniform(1 << 20, 0.0))) as _)).unwrap();
    /// assert!(reg.register("mine", || unreachable!()).is_err());
    /// ```
    pub fn register<F>(&self, id: &str, factory: F) -> Result<(), RegistryError>
    where
        F: Fn() -> Result<Box<dyn Operations>, OpsError> + Send + Sync + 'static,
    {
        if id.is_empty()
            || !id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        {
            return Err(RegistryError::BadId(id.to_string()));
        }
        let mut map = self.map.write();
        if map.contains_key(id) {
            return Err(RegistryError::Duplicate(id.to_string()));
        }
        map.insert(id.to_string(), Arc::new(factory));
        Ok(())
    }

    /// Removes a registration (for tests and plugin unloading).
    pub fn unregister(&self, id: &str) -> Result<(), RegistryError> {
        self.map
            .write()
            .remove(id)
            .map(|_| ())
            .ok_or_else(|| RegistryError::Unknown(id.to_string()))
    }

    /// True if `id` is registered (`damon_is_registered_ops`).
    pub fn is_registered(&self, id: &str) -> bool {
        self.map.read().contains_key(id)
    }

    /// Registered ids, sorted.
    pub fn ids(&self) -> Vec<String> {
        self.map.read().keys().cloned().collect()
    }

    /// Builds the backend registered as `id` and installs it in `ctx`.
    pub fn select(&self, ctx: &mut Context, id: &str) -> Result<(), SelectError> {
        let factory = self
            .map
            .read()
            .get(id)
            .cloned()
            .ok_or_else(|| RegistryError::Unknown(id.to_string()))?;
        let ops = factory()?;
        ctx.set_ops(id, ops);
        Ok(())
    }
}

/// Registers a backend in the global registry (`damon_register_ops`).
pub fn damon_register_ops<F>(id: &str, factory: F) -> Result<(), RegistryError>
where
    F: Fn() -> Result<Box<dyn Operations>, OpsError> + Send + Sync + 'static,
{
    OpsRegistry::global().register(id, factory)
}

/// Selects a globally registered backend into `ctx` (`damon_select_ops`).
pub fn damon_select_ops(ctx: &mut Context, id: &str) -> Result<(), SelectError> {
    OpsRegistry::global().select(ctx, id)
}
