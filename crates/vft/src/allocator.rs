//! mimalloc's purge delay (decision 0020). mimalloc 3 keeps freed memory resident for a second
//! before giving it back to the OS. A national reconciliation or its progress frees hundreds of
//! megabytes on one thread and allocates them again on another within that second, so the
//! server's resident memory held two requests' worth (progress at 500 000 devices: 578 MiB
//! peak, against 472 MiB with no delay). This sets the delay to [`PURGE_DELAY_MS`] unless an
//! operator set `MIMALLOC_PURGE_DELAY` (mimalloc reads its environment at load, before `main`).
//! With no delay it also turns transparent huge pages off for the process (see
//! [`without_huge_pages`]).

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
    without_huge_pages();
}

/// With no purge delay, the pages an ingest batch frees go back to the OS at once and the next
/// batch faults them in again; where mimalloc asked for transparent huge pages (its arenas,
/// `madvise`), each such fault zeroes 2 MiB. A `perf` profile of the single-event ingest bench
/// had a third of the batcher's time in those faults, and `MIMALLOC_ALLOW_THP=0` (which makes
/// mimalloc do what this does) took its CPU from 1.02–1.14 to 0.82–0.96 s. mimalloc reads that
/// option before `main`, so the process flag is set here instead (`PR_SET_THP_DISABLE`: no
/// huge page for this process's later faults). Left alone when an operator set the option.
fn without_huge_pages() {
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_some() {
        return;
    }
    // A kernel without THP refuses the flag, and then there is nothing to turn off.
    #[cfg(target_os = "linux")]
    let _ = nix::sys::prctl::set_thp_disable(true);
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
    /// it is what `return_freed_memory_at_once` does. It also turns huge pages off.
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
        if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
            assert_eq!(nix::sys::prctl::get_thp_disable(), Ok(true));
        }
    }
}
