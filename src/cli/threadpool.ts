// Imported first by the CLI, before anything touches libuv's thread pool (which reads this once).
// File writes, fsyncs and renames of concurrent uploads all run there; the default of 4 threads
// makes fsync latency, not CPU or bandwidth, the limit on concurrent pushes.
process.env.UV_THREADPOOL_SIZE ??= '16'
