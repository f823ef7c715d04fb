/** Codes node gives a stream whose peer went away: a client that disconnects mid-request, not a server fault. */
const DISCONNECT_CODES: ReadonlySet<string> = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ERR_STREAM_PREMATURE_CLOSE'])

/** True when `err` only says that the client closed the connection (or it was closed for idling). */
export function isClientDisconnect(err: unknown): boolean {
  if (!(err instanceof Error)) return false
  const code = (err as NodeJS.ErrnoException).code
  // An IncomingMessage destroyed with its socket fails with ECONNRESET "aborted".
  return (code !== undefined && DISCONNECT_CODES.has(code)) || err.message === 'aborted'
}
