export { GarbageCollector, type GcItem, type GcOptions, type GcReport } from './collector.ts'
