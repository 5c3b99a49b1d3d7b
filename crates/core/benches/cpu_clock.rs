//! CPU-time clocks for the native benchmarks (Linux `/proc`; `None` elsewhere). On a shared
//! machine a thread's CPU time estimates its time on an idle core better than wall time.

/// CPU time of the calling thread in ms, from `/proc/thread-self/schedstat` (ns).
pub fn thread_cpu_ms() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: f64 = stat.split_whitespace().next()?.parse().ok()?;
    Some(ns / 1e6)
}

/// The clock a single-thread benchmark reads, in ms, and its name: this thread's CPU time
/// ([`thread_cpu_ms`]) where Linux has it, else wall time since this call.
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

/// CPU time of the whole process (every thread, user + system) in ms, from `/proc/self/stat`
/// (clock ticks, assumed 100 per second as on every Linux build that matters here).
pub fn process_cpu_ms() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) start at state, field 3.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let (utime, stime): (f64, f64) = (fields.get(11)?.parse().ok()?, fields.get(12)?.parse().ok()?);
    Some((utime + stime) * 10.0)
}
