//! CPU-time clocks for the native benchmarks (POSIX `clock_gettime`; `None` elsewhere). On a
//! shared machine a thread's CPU time estimates its time on an idle core better than wall time.
//!
//! `clock_gettime` adds the running slice, so it reads to the microsecond. The `/proc` counters
//! read before move only at scheduler ticks (`schedstat`: 4 ms steps on the VM the benchmarks
//! ran on; `stat`: 10 ms): steps of 5–10% in a ~85 ms block of products, and a best-of over
//! several blocks kept the luckiest step, so the sgemm yardstick read high.

/// `clock`'s reading in ms, `None` where the call fails.
#[cfg(unix)]
#[allow(unsafe_code)]
fn clock_ms(clock: libc::clockid_t) -> Option<f64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec, the only memory the call writes.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    (rc == 0).then(|| ts.tv_sec as f64 * 1e3 + ts.tv_nsec as f64 / 1e6)
}

/// CPU time of the calling thread in ms (`CLOCK_THREAD_CPUTIME_ID`).
pub fn thread_cpu_ms() -> Option<f64> {
    #[cfg(unix)]
    return clock_ms(libc::CLOCK_THREAD_CPUTIME_ID);
    #[cfg(not(unix))]
    None
}

/// The clock a single-thread benchmark reads, in ms, and its name: this thread's CPU time
/// ([`thread_cpu_ms`]) where the platform has it, else wall time since this call.
pub fn thread_clock() -> (&'static str, Box<dyn Fn() -> f64>) {
    if thread_cpu_ms().is_some() {
        (
            "thread CPU time",
            Box::new(|| thread_cpu_ms().unwrap_or(0.0)),
        )
    } else {
        let start = std::time::Instant::now();
        (
            "wall time",
            Box::new(move || start.elapsed().as_secs_f64() * 1e3),
        )
    }
}

/// CPU time of the whole process (every thread, user + system) in ms
/// (`CLOCK_PROCESS_CPUTIME_ID`).
pub fn process_cpu_ms() -> Option<f64> {
    #[cfg(unix)]
    return clock_ms(libc::CLOCK_PROCESS_CPUTIME_ID);
    #[cfg(not(unix))]
    None
}
