import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import path from 'node:path'
import { describe, it } from 'node:test'
import { EXIT_SOFTWARE } from './guards.ts'

// The guards change process-wide behaviour, so they run in a child process of their own.
const script = (body: string) => `
import { pino } from 'pino'
import { installProcessGuards } from ${JSON.stringify(path.join(import.meta.dirname, 'guards.ts'))}
installProcessGuards(pino())
${body}
`

function runNode(body: string) {
  return spawnSync(process.execPath, ['--input-type=module', '-e', script(body)], {
    encoding: 'utf8',
    timeout: 20_000,
    cwd: import.meta.dirname,
  })
}

const lines = (out: string) =>
  out
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { level: number; msg: string; err?: { message: string } })

describe('process guards', () => {
  it('an unhandled rejection is logged at error level and the process keeps running', () => {
    const r = runNode(`
      Promise.reject(new Error('lost in a request'))
      setTimeout(() => { console.log(JSON.stringify({ level: 30, msg: 'still serving' })) }, 100)
    `)
    assert.equal(r.status, 0, r.stderr)
    const logged = lines(r.stdout)
    const rejection = logged.find((l) => l.msg === 'unhandled promise rejection; still serving')
    assert.ok(rejection, r.stdout)
    assert.equal(rejection.level, 50)
    assert.equal(rejection.err?.message, 'lost in a request')
    assert.ok(logged.some((l) => l.msg === 'still serving'))
  })

  it('an uncaught exception is logged as fatal and the process exits non-zero', () => {
    const r = runNode(`setTimeout(() => { throw new Error('state unknown') }, 10)`)
    assert.equal(r.status, EXIT_SOFTWARE, r.stderr)
    const fatal = lines(r.stdout).find((l) => l.msg === 'uncaught exception; exiting')
    assert.ok(fatal, r.stdout)
    assert.equal(fatal.level, 60)
    assert.equal(fatal.err?.message, 'state unknown')
  })
})
