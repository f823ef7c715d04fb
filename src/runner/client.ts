/**
 * HTTP client of GitLab's runner API as Wharf serves it (see protocol.ts for the endpoints).
 * Every call returns the status and the headers the caller acts on; only transport failures
 * throw. Nothing here logs a token.
 */
import { createWriteStream, openAsBlob } from 'node:fs'
import { basename } from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import {
  HEADERS,
  JOB_REQUEST_LONG_POLL_SECONDS,
  formatContentRange,
  parseRangeHeader,
  type FeaturesInfo,
  type JobResponse,
  type UpdateJobRequest,
  type VersionInfo,
  type VerifyRunnerResponse,
} from './protocol.ts'

export const RUNNER_NAME = 'wharf-runner'
export const RUNNER_VERSION = '0.1.0'

/** What this runner can do, in gitlab-runner's feature names. */
export const RUNNER_FEATURES: FeaturesInfo = {
  variables: true,
  image: true,
  services: true,
  artifacts: true,
  cache: true,
  shared: true,
  upload_multiple_artifacts: true,
  upload_raw_artifacts: true,
  refspecs: true,
  masking: true,
  raw_variables: true,
  artifacts_exclude: true,
  multi_build_steps: true,
  trace_reset: true,
  trace_checksum: true,
  trace_size: true,
  cancelable: true,
  return_exit_code: true,
  service_variables: true,
  service_multiple_aliases: true,
  cancel_gracefully: true,
}

export function runnerInfo(executor: string, shell: string): VersionInfo {
  return {
    name: RUNNER_NAME,
    version: RUNNER_VERSION,
    revision: 'wharf',
    platform: process.platform,
    architecture: process.arch === 'x64' ? 'amd64' : process.arch,
    executor,
    shell,
    features: RUNNER_FEATURES,
  }
}

/** A slack above the server's long-poll bound before the client gives up on a job request. */
const REQUEST_TIMEOUT_MS = (JOB_REQUEST_LONG_POLL_SECONDS + 30) * 1000
/** Bound on ordinary calls (update, trace). */
const CALL_TIMEOUT_MS = 30_000
/** Bound on artifact transfers. */
const TRANSFER_TIMEOUT_MS = 30 * 60_000

export interface CallResult {
  status: number
  /** `Job-Status` answer header (`running`, `canceled`, ...). */
  jobStatus: string | undefined
  text: string
}

export interface VerifyResult extends CallResult {
  runner: VerifyRunnerResponse | undefined
}

export interface RequestJobResult extends CallResult {
  job: JobResponse | undefined
  lastUpdate: string | undefined
}

export interface PatchTraceResult extends CallResult {
  /** Size the server has stored (from `Range: 0-<n>`). */
  stored: number | undefined
  /** Seconds between trace updates the server asks for. */
  updateInterval: number | undefined
}

export interface ArtifactUpload {
  file: string
  /** Name the server shows (the upload's filename). */
  filename?: string
  artifactFormat: string
  artifactType: string
  expireIn?: string | null
}

function signalWith(ms: number, signal?: AbortSignal): AbortSignal {
  const t = AbortSignal.timeout(ms)
  return signal ? AbortSignal.any([t, signal]) : t
}

export class RunnerClient {
  readonly baseUrl: string
  readonly info: VersionInfo

  constructor(url: string, info: VersionInfo) {
    this.baseUrl = `${url.replace(/\/+$/, '')}/api/v4`
    this.info = info
  }

  async #call(
    method: string,
    path: string,
    init: { body?: string | Uint8Array | FormData; headers?: Record<string, string>; signal?: AbortSignal; timeoutMs?: number } = {},
  ) {
    const res = await fetch(`${this.baseUrl}${path}`, {
      method,
      headers: { 'user-agent': `${RUNNER_NAME}/${RUNNER_VERSION}`, ...init.headers },
      signal: signalWith(init.timeoutMs ?? CALL_TIMEOUT_MS, init.signal),
      ...(init.body !== undefined ? { body: init.body } : {}),
    })
    return res
  }

  async #json(method: string, path: string, body: unknown, opts: { signal?: AbortSignal; timeoutMs?: number } = {}) {
    const res = await this.#call(method, path, {
      body: JSON.stringify(body),
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      ...opts,
    })
    const text = await res.text()
    return { res, text, jobStatus: res.headers.get(HEADERS.jobStatus) ?? undefined }
  }

  async verify(token: string, systemId: string, signal?: AbortSignal): Promise<VerifyResult> {
    const { res, text, jobStatus } = await this.#json(
      'POST',
      '/runners/verify',
      { token, system_id: systemId, info: this.info },
      signal ? { signal } : {},
    )
    let runner: VerifyRunnerResponse | undefined
    if (res.status === 200) {
      try {
        runner = JSON.parse(text) as VerifyRunnerResponse
      } catch {
        runner = undefined
      }
    }
    return { status: res.status, text, jobStatus, runner }
  }

  /** One long poll. `job` is set on 201; 204 means none (remember `lastUpdate`). */
  async requestJob(token: string, systemId: string, lastUpdate: string | undefined, signal?: AbortSignal): Promise<RequestJobResult> {
    const body = { token, system_id: systemId, info: this.info, ...(lastUpdate ? { last_update: lastUpdate } : {}) }
    const { res, text, jobStatus } = await this.#json('POST', '/jobs/request', body, {
      timeoutMs: REQUEST_TIMEOUT_MS,
      ...(signal ? { signal } : {}),
    })
    let job: JobResponse | undefined
    if (res.status === 201) job = JSON.parse(text) as JobResponse
    return { status: res.status, text, jobStatus, job, lastUpdate: res.headers.get(HEADERS.lastUpdate) ?? undefined }
  }

  async updateJob(jobId: number, update: UpdateJobRequest, signal?: AbortSignal): Promise<CallResult> {
    const { res, text, jobStatus } = await this.#json('PUT', `/jobs/${jobId}`, { info: this.info, ...update }, signal ? { signal } : {})
    return { status: res.status, text, jobStatus }
  }

  /** Appends `bytes` at offset `start` of the job's log. */
  async patchTrace(jobId: number, jobToken: string, start: number, bytes: Uint8Array, signal?: AbortSignal): Promise<PatchTraceResult> {
    const res = await this.#call('PATCH', `/jobs/${jobId}/trace`, {
      body: bytes,
      headers: {
        'content-type': 'text/plain',
        [HEADERS.jobToken]: jobToken,
        [HEADERS.contentRange]: formatContentRange(start, bytes.byteLength),
      },
      ...(signal ? { signal } : {}),
    })
    const text = await res.text()
    const interval = Number(res.headers.get(HEADERS.traceUpdateInterval))
    return {
      status: res.status,
      text,
      jobStatus: res.headers.get(HEADERS.jobStatus) ?? undefined,
      stored: parseRangeHeader(res.headers.get(HEADERS.range)),
      updateInterval: Number.isFinite(interval) && interval > 0 ? interval : undefined,
    }
  }

  async uploadArtifacts(jobId: number, jobToken: string, upload: ArtifactUpload, signal?: AbortSignal): Promise<CallResult> {
    const form = new FormData()
    form.set('file', await openAsBlob(upload.file), upload.filename ?? basename(upload.file))
    const q = new URLSearchParams({ artifact_format: upload.artifactFormat, artifact_type: upload.artifactType })
    if (upload.expireIn) q.set('expire_in', upload.expireIn)
    const res = await this.#call('POST', `/jobs/${jobId}/artifacts?${q}`, {
      body: form,
      headers: { [HEADERS.jobToken]: jobToken },
      timeoutMs: TRANSFER_TIMEOUT_MS,
      ...(signal ? { signal } : {}),
    })
    return { status: res.status, text: await res.text(), jobStatus: res.headers.get(HEADERS.jobStatus) ?? undefined }
  }

  /** Downloads a job's artifacts archive to `dest` (only on 200). */
  async downloadArtifacts(jobId: number, jobToken: string, dest: string, signal?: AbortSignal): Promise<CallResult> {
    const res = await this.#call('GET', `/jobs/${jobId}/artifacts`, {
      headers: { [HEADERS.jobToken]: jobToken },
      timeoutMs: TRANSFER_TIMEOUT_MS,
      ...(signal ? { signal } : {}),
    })
    if (res.status !== 200 || !res.body) return { status: res.status, text: await res.text(), jobStatus: undefined }
    await pipeline(Readable.fromWeb(res.body as import('node:stream/web').ReadableStream), createWriteStream(dest))
    return { status: res.status, text: '', jobStatus: undefined }
  }
}
