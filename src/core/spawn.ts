import {
  spawn,
  type ChildProcess,
  type ChildProcessByStdio,
  type ChildProcessWithoutNullStreams,
  type SpawnOptions,
} from 'node:child_process'
import type { Readable, Writable } from 'node:stream'
import { unavailableFrom } from './errors.ts'

// spawn() fails in three ways, and each used to be able to take the server down:
// - it throws (invalid arguments, some errno values while setting up the child);
// - it returns a child that emits 'error' on the next tick (ENOENT, EACCES, EAGAIN, EMFILE,
//   ENFILE): an 'error' event nobody listens to is an uncaught exception;
// - after EMFILE/ENFILE that child has no stdio streams at all (`child.stdout` is null), so the
//   caller's `child.stdout.on(...)` threw before it had attached its 'error' listener.
// startProcess turns all three into one rejected promise, and resolves only once the program
// runs, with listeners already on the child and on every stdio stream.

type Pipes = SpawnOptions & { stdio: ['pipe', 'pipe', 'pipe'] }
type NoStdin = SpawnOptions & { stdio: ['ignore', 'pipe', 'pipe'] }

/**
 * Starts a program; resolves on its 'spawn' event. Rejects with the spawn error (UNAVAILABLE, see
 * core/errors.ts, when the process is out of file descriptors or processes).
 */
export function startProcess(command: string, args: readonly string[], options: Pipes): Promise<ChildProcessWithoutNullStreams>
export function startProcess(
  command: string,
  args: readonly string[],
  options: NoStdin,
): Promise<ChildProcessByStdio<null, Readable, Readable>>
export function startProcess(command: string, args: readonly string[], options: SpawnOptions): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    let child: ChildProcess
    try {
      child = spawn(command, args, options)
    } catch (e) {
      reject(spawnFailure(command, e))
      return
    }
    // First thing, before anything else can touch the child. After 'spawn' the event only means
    // that a kill() or send() failed, which the caller sees by the child not exiting.
    child.on('error', (e) => reject(spawnFailure(command, e)))
    // A program may exit without reading its input (EPIPE on stdin is expected); a read error on
    // an output pipe ends that stream, and the caller sees the output end early.
    for (const s of [child.stdin, child.stdout, child.stderr] as Array<Writable | Readable | null>) s?.on('error', () => {})
    child.once('spawn', () => resolve(child))
  })
}

function spawnFailure(command: string, e: unknown): Error {
  return (
    unavailableFrom(e, `cannot start ${command}: the server`) ??
    (e instanceof Error ? e : new Error(`cannot start ${command}: ${String(e)}`))
  )
}
