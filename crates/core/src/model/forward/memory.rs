//! Large zeroed f32 buffers that a pass writes once: the collected keys and queries (112 MB at
//! the full reference size and 1024 tokens) and the workspace.
//!
//! Fresh memory is mapped page by page as it is first written. With 4 KiB pages that is one
//! fault per 1 024 values: a full-size pass (1024 tokens) took ~33 500 faults, 7% of its
//! samples in the kernel (perf). On Linux these buffers ask for transparent huge pages
//! (`MADV_HUGEPAGE`: the common `madvise` setting of `/sys/kernel/mm/transparent_hugepage/
//! enabled` gives them only to regions that ask), one fault per 2 MiB: ~7 400 faults per pass,
//! and passes after the first ~5–7% faster (alternating runs), the spectra that read the keys
//! after them too. Where the kernel has no huge pages to give, or off Linux, the buffer is the
//! same zeroed vector, mapped 4 KiB at a time as before.
//!
//! On a VM whose balloon reports free memory to its host (this project's build machines), a
//! process's first huge pages may be ones the host took back, and the first pass paid for that
//! (−5% to +10% against 4 KiB pages, measured); a machine without that, or later passes, do not.

/// A transparent huge page (x86-64 and most arm64 kernels).
#[cfg(target_os = "linux")]
const HUGE_PAGE: usize = 2 << 20;

/// `len` zeros, backed by huge pages where the platform gives them (see the module's comment).
pub(crate) fn zeroed(len: usize) -> Vec<f32> {
    // `vec![0.0; n]` allocates with `calloc`, which for a buffer this large maps fresh zero
    // pages without writing them: the advice below comes before any page is touched.
    let buffer = vec![0.0f32; len];
    #[cfg(target_os = "linux")]
    advise_huge_pages(&buffer);
    buffer
}

/// Asks the kernel for huge pages over the whole 2 MiB pages inside `buffer`. Advice only: a
/// refusal (no THP in this kernel, `never` in its setting) changes nothing, so it is ignored.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn advise_huge_pages(buffer: &[f32]) {
    let start = buffer.as_ptr() as usize;
    let end = start + std::mem::size_of_val(buffer);
    let first = start.next_multiple_of(HUGE_PAGE);
    let last = end / HUGE_PAGE * HUGE_PAGE;
    if last > first {
        // SAFETY: [first, last) lies inside `buffer`'s allocation, which this process owns;
        // MADV_HUGEPAGE changes how its pages are backed, never their contents (zeros here).
        unsafe {
            libc::madvise(
                first as *mut libc::c_void,
                last - first,
                libc::MADV_HUGEPAGE,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::zeroed;

    #[test]
    fn a_buffer_is_zeros_of_the_length_asked() {
        for len in [0, 1, 1000, 3 << 20] {
            let buffer = zeroed(len);
            assert_eq!(buffer.len(), len);
            assert!(buffer.iter().all(|&v| v == 0.0));
        }
    }

    /// Where the kernel has transparent huge pages, the advice lands on the buffer's own
    /// mapping: `/proc/self/smaps` flags it `hg` ("huge page advise").
    #[cfg(target_os = "linux")]
    #[test]
    fn a_large_buffer_is_advised_huge_pages() {
        if !std::path::Path::new("/sys/kernel/mm/transparent_hugepage/enabled").exists() {
            eprintln!("this kernel has no transparent huge pages: nothing to check");
            return;
        }
        let buffer = zeroed(16 << 20); // 64 MiB
        let middle = buffer.as_ptr() as usize + std::mem::size_of_val(&buffer[..]) / 2;
        let smaps = std::fs::read_to_string("/proc/self/smaps").expect("smaps");
        let mut inside = false;
        let flags = smaps
            .lines()
            .find_map(|line| {
                if let Some((range, _)) = line.split_once(' ') {
                    if let Some((start, end)) = range.split_once('-') {
                        if let (Ok(s), Ok(e)) = (
                            usize::from_str_radix(start, 16),
                            usize::from_str_radix(end, 16),
                        ) {
                            inside = (s..e).contains(&middle);
                            return None;
                        }
                    }
                }
                line.strip_prefix("VmFlags:").filter(|_| inside)
            })
            .expect("the buffer's mapping in /proc/self/smaps");
        assert!(
            flags.split_whitespace().any(|f| f == "hg"),
            "flags of the buffer's mapping: {flags}"
        );
    }
}
