import { performance } from 'node:perf_hooks'
import { PathNotFoundError, type BlobDriver } from '../storage/driver.ts'
import type { Metrics } from './metrics.ts'

/**
 * The storage driver with each operation timed (opening a reader or writer, commit, stat, delete;
 * a transfer itself is not an operation). Every async method is wrapped, so a method added to the
 * driver later is timed too; `list` (an async generator) passes through. A missing path is an
 * expected outcome (`not_found`), not an error.
 */
export function instrumentDriver(driver: BlobDriver, metrics: Metrics): BlobDriver {
  const wrapped: Record<string, unknown> = {}
  for (const key of methodNames(driver)) {
    const fn = (driver as unknown as Record<string, unknown>)[key]
    if (typeof fn !== 'function' || key === 'list') {
      wrapped[key] = typeof fn === 'function' ? fn.bind(driver) : fn
      continue
    }
    wrapped[key] = (...args: unknown[]) => {
      const start = performance.now()
      const done = (outcome: string) => metrics.storageDuration.observe({ operation: key, outcome }, (performance.now() - start) / 1000)
      return (fn.apply(driver, args) as Promise<unknown>).then(
        (r) => {
          done('ok')
          return r
        },
        (e: unknown) => {
          done(e instanceof PathNotFoundError ? 'not_found' : 'error')
          throw e
        },
      )
    }
  }
  return wrapped as unknown as BlobDriver
}

/** Own and inherited property names (a driver may be an object literal or a class instance). */
function methodNames(o: object): string[] {
  const names = new Set<string>()
  for (let p: object | null = o; p && p !== Object.prototype; p = Object.getPrototypeOf(p)) {
    for (const k of Object.getOwnPropertyNames(p)) if (k !== 'constructor') names.add(k)
  }
  return [...names]
}
