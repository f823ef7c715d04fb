import { Worker } from 'node:worker_threads'
import { RETRY_AFTER_SECONDS, WharfError } from '../core/errors.ts'
import type { PipelinePlan, PlanContext } from './config/index.ts'

/** The worker module beside this one: .ts in the repository, .js in the published package (dist/). */
const WORKER_URL = new URL(`./config-planner-worker${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url)

// Parsing and planning `.gitlab-ci.yml` is CPU work that grows with the file: a hostile file
// (tens of thousands of jobs, deep `extends` chains) once held the event loop for seconds, and
// with it every request, `/v2` included. So it runs in worker threads, with a time and memory
// budget: a worker over budget is terminated and the pipeline fails with a message naming the
// limit. Files that `include:` names are read by the main thread (git, artifacts) on the worker's request;
// built-in templates are read in the worker.

export const PLANNER_LIMITS = {
  /** Time one file may take to parse and plan, includes read; GitLab allows 30 s for the whole creation. */
  timeMs: 10_000,
  /** Heap of one worker: a 2 MiB file with its includes needs far less. */
  heapMb: 512,
  /** Workers at once: a hostile file can occupy one, not every core. */
  workers: 2,
  /**
   * Files waiting for a worker. Past it a plan is refused as UNAVAILABLE (a 503 with Retry-After on
   * the API; a push event is delivered again later), so a burst of pushes cannot queue without bound.
   */
  queue: 256,
} as const

export function tooSlow(limitMs: number): string {
  return `The pipeline configuration took too long to process (the limit is ${limitMs / 1000} s)`
}
export function tooMuchMemory(limitMb: number): string {
  return `The pipeline configuration needs too much memory to process (the limit is ${limitMb} MiB)`
}

/** Thrown by a plan's readFile for a file over YAML_LIMITS.bytes: the include fails as too big. */
export class FileTooBigError extends Error {}

/**
 * The plan context without callbacks: what crosses to the worker. `files` answers `exists:`;
 * `masked` names the masked variables (`expand_vars` refuses them).
 */
export type PlanInput = Omit<PlanContext, 'fileExists' | 'changedFilesComparedTo'> & { files: string[]; masked?: string[] }

/**
 * A file the configuration includes: of the pipeline's repository at its commit, of `job`'s
 * artifacts in the parent pipeline, or of another `project` at `ref` (its default branch when null);
 * or the tags of a project (`tagsOf`) whose component version is resolved; or the paths changed
 * since the merge base of the pipeline's commit and a ref (`compareTo`, for `changes:compare_to`).
 */
export type FileRequest =
  | { path: string; job?: string }
  | { path: string; project: string; ref: string | null }
  | { path: string; remote: string }
  | { path: string; tagsOf: string }
  | { path: string; compareTo: string }
/**
 * The file's text (for `tagsOf`, the project's tag names in `tags`; for `compareTo`, the paths in
 * `changed`, or `missing: 'ref'`); `missing` says which part of a project file's address does not
 * exist (or may not be read); `error` why a remote file could not be fetched.
 */
export type FileAnswer = {
  content: string | undefined
  missing?: 'project' | 'ref' | 'file'
  error?: string
  tags?: string[]
  changed?: string[]
}

export type ToWorker =
  | { kind: 'plan'; text: string; ctx: PlanInput; options: PlanOptions }
  | ({ kind: 'file'; id: number; tooBig?: true } & FileAnswer)
export type FromWorker =
  | { kind: 'started' }
  | { kind: 'read'; id: number; request: FileRequest }
  | { kind: 'done'; plan: PipelinePlan; mergedYaml?: string }
  | { kind: 'crash'; message: string }

export interface PlanOptions {
  /** The file may include artifacts of the parent pipeline's jobs (a child pipeline's). */
  artifacts?: boolean
  /** Also give the expanded configuration as YAML (`PlanResult.mergedYaml`). */
  merged?: boolean
}

/** A plan, with the expanded configuration as YAML when asked for (CI lint's `merged_yaml`). */
export interface PlanResult {
  plan: PipelinePlan
  mergedYaml?: string | undefined
}

interface Task {
  text: string
  ctx: PlanInput
  options: PlanOptions
  readFile(request: FileRequest): Promise<FileAnswer>
  resolve(result: PlanResult): void
  reject(err: Error): void
}

/** A pool of planner workers; `plan` resolves to the plan, or to a failed plan naming the limit it hit. */
export class ConfigPlanner {
  private readonly timeMs: number
  private readonly heapMb: number
  private readonly size: number
  private readonly maxQueue: number
  private readonly idle: Worker[] = []
  private readonly busy = new Set<Worker>()
  private readonly queue: Task[] = []
  private closed = false

  constructor(opts: { timeMs?: number; heapMb?: number; workers?: number; queue?: number } = {}) {
    this.timeMs = opts.timeMs ?? PLANNER_LIMITS.timeMs
    this.heapMb = opts.heapMb ?? PLANNER_LIMITS.heapMb
    this.size = opts.workers ?? PLANNER_LIMITS.workers
    this.maxQueue = opts.queue ?? PLANNER_LIMITS.queue
  }

  /** `readFile` answers the files the configuration includes; artifacts only when it may include them (`artifacts`). */
  async plan(
    text: string,
    ctx: PlanInput,
    readFile: (request: FileRequest) => Promise<FileAnswer>,
    artifacts = false,
  ): Promise<PipelinePlan> {
    return (await this.planResult(text, ctx, readFile, { artifacts })).plan
  }

  /** As `plan`; with `merged`, also the configuration with includes and `extends` expanded, as YAML (when it got that far). */
  planResult(
    text: string,
    ctx: PlanInput,
    readFile: (request: FileRequest) => Promise<FileAnswer>,
    options: PlanOptions,
  ): Promise<PlanResult> {
    if (this.closed) return Promise.reject(new Error('the pipeline planner is closed'))
    if (this.queue.length >= this.maxQueue) {
      return Promise.reject(
        new WharfError('UNAVAILABLE', 'too many pipeline configurations are waiting to be processed; retry later', {
          retryAfter: RETRY_AFTER_SECONDS,
        }),
      )
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ text, ctx, options, readFile, resolve, reject })
      this.next()
    })
  }

  async close(): Promise<void> {
    this.closed = true
    for (const t of this.queue.splice(0)) t.reject(new Error('the pipeline planner is closed'))
    await Promise.all([...this.idle.splice(0), ...this.busy].map((w) => w.terminate()))
    this.busy.clear()
  }

  private next(): void {
    if (this.queue.length === 0) return
    let worker = this.idle.pop()
    if (!worker) {
      if (this.busy.size >= this.size) return
      worker = new Worker(WORKER_URL, {
        resourceLimits: { maxOldGenerationSizeMb: this.heapMb },
      })
    }
    this.run(worker, this.queue.shift()!)
  }

  private run(worker: Worker, task: Task): void {
    this.busy.add(worker)
    worker.ref() // an idle worker must not keep the process alive; a busy one must
    let settled = false
    const finish = (keep: boolean, outcome: () => void): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      worker.off('message', onMessage)
      worker.off('error', onError)
      worker.off('exit', onExit)
      this.busy.delete(worker)
      if (keep && !this.closed) {
        worker.unref()
        this.idle.push(worker)
      } else {
        void worker.terminate()
      }
      outcome()
      this.next()
    }
    // The budget starts once the worker has the file: a new worker first loads its code.
    let timer: NodeJS.Timeout | undefined
    const onMessage = (m: FromWorker): void => {
      if (m.kind === 'started') {
        timer = setTimeout(
          () => finish(false, () => task.resolve({ plan: { status: 'failed', errors: [tooSlow(this.timeMs)] } })),
          this.timeMs,
        )
      } else if (m.kind === 'read') {
        task.readFile(m.request).then(
          (answer) => {
            if (!settled) worker.postMessage({ kind: 'file', id: m.id, ...answer } satisfies ToWorker)
          },
          (err: unknown) => {
            if (err instanceof FileTooBigError) {
              if (!settled) worker.postMessage({ kind: 'file', id: m.id, content: undefined, tooBig: true } satisfies ToWorker)
              return
            }
            finish(false, () => task.reject(err instanceof Error ? err : new Error(String(err))))
          },
        )
      } else if (m.kind === 'done') {
        finish(true, () => task.resolve({ plan: m.plan, mergedYaml: m.mergedYaml }))
      } else {
        finish(true, () => task.reject(new Error(`pipeline planner failed: ${m.message}`)))
      }
    }
    const onError = (err: Error): void => {
      const oom = (err as NodeJS.ErrnoException).code === 'ERR_WORKER_OUT_OF_MEMORY'
      finish(false, () => (oom ? task.resolve({ plan: { status: 'failed', errors: [tooMuchMemory(this.heapMb)] } }) : task.reject(err)))
    }
    const onExit = (code: number): void => finish(false, () => task.reject(new Error(`pipeline planner exited with code ${code}`)))
    worker.on('message', onMessage)
    worker.on('error', onError)
    worker.on('exit', onExit)
    worker.postMessage({ kind: 'plan', text: task.text, ctx: task.ctx, options: task.options } satisfies ToWorker)
  }
}
