// Operating Wharf: probes, Prometheus metrics and the instrumentation of the database and storage.
export { Metrics } from './metrics.ts'
export { Probes, READINESS_TIMEOUT_MS, type Readiness } from './probes.ts'
export { instrumentDriver } from './instrument-storage.ts'
export { instrumentRequests, metricsServer, opsRoutes, type OpsOptions } from './routes.ts'
export { InFlight, installGracefulClose } from './shutdown.ts'
