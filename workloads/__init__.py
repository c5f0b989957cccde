"""Request workloads for benchmarks: generators fitted to published traces, real traces, user files."""
