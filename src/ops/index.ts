// Operating Wharf: probes, Prometheus metrics and the instrumentation of the database and storage.
export { Metrics } from './metrics.ts'
export { Probes } from './probes.ts'
export { instrumentDriver } from './instrument-storage.ts'
export { instrumentRequests, metricsServer, opsRoutes } from './routes.ts'
export { installGracefulClose } from './shutdown.ts'
