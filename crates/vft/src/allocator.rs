//! mimalloc's purge delay (decision 0020). mimalloc 3 keeps freed memory resident for a second
//! before giving it back to the OS. A national reconciliation or its progress frees hundreds of
//! megabytes on one thread and allocates them again on another within that second, so the
//! server's resident memory held two requests' worth (progress at 500 000 devices: 578 MiB
//! peak, against 472 MiB with no delay). This sets the delay to [`PURGE_DELAY_MS`] unless an
//! operator set `MIMALLOC_PURGE_DELAY` (mimalloc reads its environment at load, before `main`).

/// mimalloc's option number for the purge delay: `mi_option_purge_delay` in `mimalloc.h`, the
/// one before `use_numa_nodes`, which `libmimalloc-sys` names (it names no purge option).
/// `tests::the_option_is_the_purge_delay` checks it against the library's default.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t =
    libmimalloc_sys::mi_option_use_numa_nodes - 1;

/// How long freed memory stays resident, in ms: none. Over the national bench's requests the
/// server peaked at 465–471 MiB with none, 524 MiB at 10 ms and 529 MiB at 100 ms (issue 11's
/// goal is 512). The price is ingest's: its batches give pages back and fault them in again
/// (`--bench ingest`, one run each: batches 71 700 events/s against 75 500–78 000 with a
/// delay).
const PURGE_DELAY_MS: std::os::raw::c_long = 0;

/// mimalloc 3's default purge delay, in ms.
#[cfg(test)]
const DEFAULT_PURGE_DELAY_MS: std::os::raw::c_long = 1000;

pub(crate) fn return_freed_memory_at_once() {
    if cfg!(feature = "system-allocator") || std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    set_purge_delay(PURGE_DELAY_MS);
}

#[allow(unsafe_code)]
fn set_purge_delay(ms: std::os::raw::c_long) {
    // SAFETY: `mi_option_set` stores a number in mimalloc's option table (an atomic store);
    // it takes no pointer and any option number below `_mi_option_last` is valid.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, ms) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(unsafe_code)]
    fn get(option: libmimalloc_sys::mi_option_t) -> std::os::raw::c_long {
        // SAFETY: reads a number from mimalloc's option table.
        unsafe { libmimalloc_sys::mi_option_get(option) }
    }

    /// A mimalloc upgrade that renumbers its options fails here rather than setting another
    /// option to zero: the purge delay is the option whose default is a second, and setting
    /// it is what `return_freed_memory_at_once` does.
    #[test]
    fn the_option_is_the_purge_delay() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            eprintln!("MIMALLOC_PURGE_DELAY is set: the library default cannot be checked");
            return;
        }
        assert_eq!(get(MI_OPTION_PURGE_DELAY), DEFAULT_PURGE_DELAY_MS);
        assert_eq!(get(libmimalloc_sys::mi_option_use_numa_nodes), 0);
        return_freed_memory_at_once();
        assert_eq!(get(MI_OPTION_PURGE_DELAY), PURGE_DELAY_MS);
    }
}
