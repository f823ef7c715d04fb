import type { FastifyBaseLogger } from 'fastify'

/**
 * Process-level handlers for `wharf serve`, installed once the server listens.
 *
 * A promise nobody awaited that rejects belongs to one request (or one background task), never to
 * the whole server: it is logged and the server keeps serving the others.
 *
 * An uncaught exception is not treated the same way: it leaves some handler half-run with its
 * state unknown (locks held, streams half-written), which "log and continue" would carry on with.
 * It is logged and the process exits non-zero, so a supervisor restarts a clean one. The known
 * ways a request used to get there are closed at the source instead: every child process and its
 * stdio get their 'error' listeners first (core/spawn.ts), and the listening socket's accept()
 * failures (EMFILE) are heard (server.ts).
 */
export function installProcessGuards(log: Pick<FastifyBaseLogger, 'error' | 'fatal'>): void {
  process.on('unhandledRejection', (err) => log.error({ err }, 'unhandled promise rejection; still serving'))
  process.on('uncaughtException', (err, origin) => {
    log.fatal({ err, origin }, 'uncaught exception; exiting')
    process.exit(EXIT_SOFTWARE)
  })
}

/** sysexits.h EX_SOFTWARE: an internal software error. */
export const EXIT_SOFTWARE = 70
