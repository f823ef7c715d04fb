import type { Readable, Writable } from 'node:stream'

export interface FileInfo {
  path: string
  size: number
  modified: Date
}

/** A narrow streaming driver; paths are relative to the driver's root and come from storage/paths.ts. */
export interface BlobDriver {
  readonly kind: 'fs' | 's3'
  stat(path: string): Promise<FileInfo | undefined>
  /** Streams a file (optionally a byte range); rejects with PathNotFoundError. */
  reader(path: string, range?: { offset: number; length?: number }): Promise<Readable>
  /**
   * Opens a file (or byte range) for sending; rejects with PathNotFoundError before anything is
   * written. The returned function copies it to `dest` with back-pressure and resolves when the
   * last byte was handed to `dest`.
   */
  openForSend(path: string, range?: { offset: number; length: number }): Promise<(dest: Writable) => Promise<void>>
  /**
   * Opens a file for reads at given positions, for following a temp file while it is written
   * (the pull-through cache). The handle stays valid after the file is committed (renamed).
   */
  openPositional(path: string): Promise<PositionalReader>
  /**
   * Opens a temp file for appending at `offset`, truncating anything past it (left by a crash).
   * `durable`: the writer flushes the file to disk (fsync) before it closes, so a commit of the file
   * right after it may pass `synced` and skip opening it again. A writer destroyed with an error
   * keeps what it received (a chunk that broke off), unless the error is an AbortError: its caller
   * lost the right to write the file (another node took the upload over), so nothing more is stored.
   */
  appender(path: string, offset: number, opts?: { durable?: boolean }): Promise<Writable>
  /**
   * An appender's write calls back only once its bytes are stored, so the caller may reuse the buffer
   * then (the file system); false: the writer may still hold the buffer after calling back (S3 gathers
   * a segment's chunks, uncopied, until the segment is uploaded).
   */
  readonly appenderWritesThrough: boolean
  /** Makes a temp file durable (fsync, unless `synced`: its writer already did) and atomically renames it into place. */
  commit(from: string, to: string, opts?: { synced?: boolean }): Promise<void>
  delete(path: string): Promise<void>
  /**
   * Yields every file under `prefix`. A file still being written through `appender` may be listed
   * with the size of what the driver keeps for it (S3: its segment manifest), not its content's.
   */
  list(prefix: string): AsyncIterable<FileInfo>
  /**
   * Removes what a process stopped mid-commit (kill -9) left outside the paths `list` shows, started
   * before `before`: S3's unfinished multipart uploads. Returns how many; absent when there is none.
   */
  abortIncomplete?(before: Date): Promise<number>
  /** A URL a client may fetch the file from directly for a while (S3 presigned GET); undefined when the driver offers none. */
  redirectUrl?(path: string): Promise<string | undefined>
}

export class PathNotFoundError extends Error {
  readonly path: string
  constructor(path: string) {
    super(`path not found: ${path}`)
    this.name = 'PathNotFoundError'
    this.path = path
  }
}

export interface PositionalReader {
  /** Reads up to `length` bytes at `position` into `buffer`; 0 at the current end of the file. */
  read(buffer: Buffer, length: number, position: number): Promise<number>
  close(): Promise<void>
}
