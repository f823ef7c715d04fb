import { Worker } from 'node:worker_threads'
import MarkdownIt from 'markdown-it'
import { RETRY_AFTER_SECONDS, WharfError } from '../core/errors.ts'

// Markdown to HTML for the UI (a project's README), on the server: markdown-it with raw HTML
// turned off, so a README's `<script>`, `<img onerror=…>` or `<iframe>` is text, and markdown-it's
// link check refuses `javascript:`, `vbscript:`, `file:` and (except images) `data:` URLs. What
// comes out is markdown-it's own tags and attributes only; the app's CSP (no inline script, images
// from this origin only) is a second line.

/** GitLab's flavour where markdown-it has it: tables, strikethrough, bare URLs as links. */
const md = new MarkdownIt({ html: false, linkify: true, typographer: false })

// Links leave for another site without the page's window or referrer.
const defaultLinkOpen = md.renderer.rules.link_open ?? ((tokens, idx, options, _env, self) => self.renderToken(tokens, idx, options))
md.renderer.rules.link_open = (tokens, idx, options, env, self) => {
  const token = tokens[idx]!
  const href = String(token.attrGet('href') ?? '')
  if (/^[a-z][a-z0-9+.-]*:/i.test(href)) token.attrSet('rel', 'nofollow noreferrer noopener')
  return defaultLinkOpen(tokens, idx, options, env, self)
}

export function renderMarkdown(text: string): string {
  return md.render(text)
}

/** The worker module beside this one: .ts in the repository, .js in the published package (dist/). */
const WORKER_URL = new URL(`./markdown-worker${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url)

export const MARKDOWN_LIMITS = {
  /**
   * Time one text may take. markdown-it is linear but slow on some input (a megabyte of `[` takes
   * seconds), so rendering runs in a worker thread and never holds the event loop; a text over the
   * budget is refused and its worker replaced. A real README renders in milliseconds.
   */
  timeMs: 3000,
  /** Texts waiting for the worker; past that a request is refused as UNAVAILABLE (503, Retry-After). */
  queue: 32,
} as const

interface Job {
  id: number
  text: string
  resolve(html: string): void
  reject(err: Error): void
}

/** Renders Markdown in one worker thread, a text at a time, each within MARKDOWN_LIMITS.timeMs. */
export class MarkdownRenderer {
  readonly #timeMs: number
  #worker: Worker | undefined
  #current: Job | undefined
  #timer: NodeJS.Timeout | undefined
  readonly #queue: Job[] = []
  #nextId = 1
  #closed = false

  constructor(opts: { timeMs?: number } = {}) {
    this.#timeMs = opts.timeMs ?? MARKDOWN_LIMITS.timeMs
  }

  render(text: string): Promise<string> {
    if (this.#closed) return Promise.reject(new Error('the Markdown renderer is closed'))
    if (this.#queue.length >= MARKDOWN_LIMITS.queue)
      return Promise.reject(
        new WharfError('UNAVAILABLE', 'too many Markdown texts are waiting to be rendered; retry later', {
          retryAfter: RETRY_AFTER_SECONDS,
        }),
      )
    return new Promise((resolve, reject) => {
      this.#queue.push({ id: this.#nextId++, text, resolve, reject })
      this.#next()
    })
  }

  async close(): Promise<void> {
    this.#closed = true
    for (const job of this.#queue.splice(0)) job.reject(new Error('the Markdown renderer is closed'))
    this.#finish(undefined)
    await this.#worker?.terminate()
    this.#worker = undefined
  }

  #next(): void {
    if (this.#current || this.#closed) return
    const job = this.#queue.shift()
    if (!job) return
    const worker = this.#worker ?? this.#spawn()
    this.#current = job
    worker.ref() // a busy worker keeps the process alive, an idle one must not
    worker.postMessage({ id: job.id, text: job.text })
  }

  #spawn(): Worker {
    const worker = new Worker(WORKER_URL)
    worker.on('message', (m: { id: number; started?: true; html?: string }) => {
      const job = this.#current
      if (this.#worker !== worker || job?.id !== m.id) return
      if (m.started) this.#startClock(worker, job)
      else this.#finish(() => job.resolve(m.html ?? ''))
    })
    const failed = (err: Error) => {
      // A worker that timed out was replaced already: its exit concerns no job of the new one.
      if (this.#worker !== worker) return
      this.#worker = undefined
      const job = this.#current
      if (job) this.#finish(() => job.reject(err))
    }
    worker.on('error', failed)
    worker.on('exit', (code) => failed(new Error(`the Markdown renderer exited with code ${code}`)))
    this.#worker = worker
    return worker
  }

  /** The job's time budget, from when the worker has it: over it, the worker is replaced. */
  #startClock(worker: Worker, job: Job): void {
    this.#timer = setTimeout(() => {
      void worker.terminate()
      this.#worker = undefined
      this.#finish(() =>
        job.reject(
          new WharfError('TOO_LARGE', `the Markdown text takes too long to render (the limit is ${this.#timeMs / 1000} s)`, {
            limit: this.#timeMs,
          }),
        ),
      )
    }, this.#timeMs)
  }

  /** Ends the current job (running `outcome`), then starts the next one. */
  #finish(outcome: (() => void) | undefined): void {
    clearTimeout(this.#timer)
    this.#timer = undefined
    this.#current = undefined
    this.#worker?.unref()
    outcome?.()
    this.#next()
  }
}
