//! All `unsafe` of this program: the anonymous mappings, volatile word
//! access, the monotonic clock and the stop-signal handler.
#![expect(
    unsafe_code,
    reason = "the workload maps, reads and writes its memory itself, as an independent ground truth"
)]
use std::io;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicBool, Ordering};

/// An anonymous private read/write mapping, unmapped on drop.
pub struct Mapping {
    base: NonNull<u64>,
    len: usize,
}

/// The `madvise` hints we use.
pub enum Advice {
    HugePage,
    NoHugePage,
}

impl Mapping {
    /// Maps `len` bytes (a multiple of the page size, > 0) at an address
    /// aligned to `align` (a power of two, at least the page size).
    pub fn anonymous(len: usize, align: usize) -> io::Result<Self> {
        let page = page_size();
        let span = len
            .checked_add(align - page)
            .ok_or_else(|| io::Error::from(io::ErrorKind::OutOfMemory))?;
        // SAFETY: a fresh anonymous mapping at an address the kernel
        // picks; it cannot overlap memory that Rust code references.
        let p = unsafe {
            libc::mmap(
                ptr::null_mut(),
                span,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let start = p as usize;
        let aligned = (start + align - 1) & !(align - 1);
        let head = aligned - start;
        let tail = span - head - len;
        // SAFETY: both trimmed pieces lie inside the mapping made above
        // and nothing refers to them; munmap of a zero length is skipped.
        unsafe {
            if head > 0 {
                libc::munmap(p, head);
            }
            if tail > 0 {
                libc::munmap((aligned + len) as *mut libc::c_void, tail);
            }
        }
        let base = NonNull::new(aligned as *mut u64)
            .ok_or_else(|| io::Error::other("mmap returned address 0"))?;
        Ok(Mapping { base, len })
    }

    /// Passes a non-destructive hint for the whole mapping.
    pub fn advise(&self, advice: Advice) -> io::Result<()> {
        let advice = match advice {
            Advice::HugePage => libc::MADV_HUGEPAGE,
            Advice::NoHugePage => libc::MADV_NOHUGEPAGE,
        };
        // SAFETY: the range is exactly our mapping; (NO)HUGEPAGE only
        // changes how it is backed, never its contents.
        let rc = unsafe { libc::madvise(self.base.as_ptr().cast(), self.len, advice) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// The start address.
    pub fn addr(&self) -> usize {
        self.base.as_ptr() as usize
    }

    /// The length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The mapping as words.
    pub fn words(&self) -> &[u64] {
        // SAFETY: the mapping is valid for `len` bytes while `self`
        // lives, page (so u64) aligned, and anonymous memory is always
        // initialised (zero-filled); `&self` keeps `words_mut` out.
        unsafe { std::slice::from_raw_parts(self.base.as_ptr(), self.len / 8) }
    }

    /// The mapping as mutable words.
    pub fn words_mut(&mut self) -> &mut [u64] {
        // SAFETY: as in `words`; `&mut self` makes the slice unique.
        unsafe { std::slice::from_raw_parts_mut(self.base.as_ptr(), self.len / 8) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly what `anonymous` kept; no borrow of the
        // words can outlive `self`.
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.len);
        }
    }
}

/// A load the compiler cannot drop (it is the access we want the
/// kernel to see).
pub fn read_word(word: &u64) -> u64 {
    // SAFETY: a reference is valid, aligned and initialised.
    unsafe { ptr::read_volatile(word) }
}

/// A store the compiler cannot drop or merge.
pub fn write_word(word: &mut u64, value: u64) {
    // SAFETY: a unique reference is valid and aligned for writes.
    unsafe { ptr::write_volatile(word, value) }
}

/// The page size.
pub fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(n).unwrap_or(4096)
}

/// `CLOCK_MONOTONIC` in microseconds.
pub fn monotonic_us() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000 + (ts.tv_nsec as u64) / 1000
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// Makes SIGINT and SIGTERM end the run gracefully (so `--verify` and
/// the last truth line still happen).
pub fn install_stop_handler() -> io::Result<()> {
    let handler: extern "C" fn(libc::c_int) = on_stop_signal;
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: an all-zero sigaction is a valid value of the C
        // struct; the handler only stores to an atomic, which is
        // async-signal-safe; the pointers passed are valid.
        let rc = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = handler as libc::sighandler_t;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, ptr::null_mut())
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Whether SIGINT or SIGTERM arrived.
pub fn stop_requested() -> bool {
    STOP.load(Ordering::Relaxed)
}
