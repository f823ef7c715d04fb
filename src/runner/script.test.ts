import { after, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { buildStageScript, commandEcho, expandValue, resolveVariables, shellQuote, variable } from './script.ts'

const dir = mkdtempSync(path.join(tmpdir(), 'wharf-script-'))
after(() => rmSync(dir, { recursive: true, force: true }))

function hasPipefail(shell: string): boolean {
  return spawnSync(shell, ['-c', 'set -o pipefail'], { stdio: 'ignore' }).status === 0
}

function run(shell: string, commands: string[], vars = [variable('GREETING', 'hello world')]) {
  const file = path.join(dir, `s-${Math.random().toString(36).slice(2)}.sh`)
  writeFileSync(file, buildStageScript({ variables: vars, tmpDir: path.join(dir, 'tmp'), workDir: dir, commands }))
  const [cmd, ...args] = shell.split(' ')
  const r = spawnSync(cmd!, [...args, file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
  return { code: r.status, out: r.stdout + r.stderr }
}

const plain = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, '')

describe('buildStageScript', () => {
  // bash, dash (Debian's sh) and busybox sh (the test images' shell) when installed.
  const shells = ['bash', 'sh', ...(existsSync('/bin/busybox') ? ['/bin/busybox sh'] : [])]
  for (const shell of shells) {
    it(`${shell}: echoes each command in green, then runs it with the variables`, () => {
      const r = run(shell, ['echo "$GREETING"', 'pwd'])
      assert.equal(r.code, 0, r.out)
      assert.equal(plain(r.out), `$ echo "$GREETING"\nhello world\n$ pwd\n${dir}\n`)
      assert.match(r.out, /\x1b\[32;1m\$ echo/)
    })

    it(`${shell}: stops at the first failing command with its exit status`, () => {
      const r = run(shell, ['echo one', 'sh -c "exit 7"', 'echo never'])
      assert.equal(r.code, 7)
      assert.doesNotMatch(plain(r.out), /^never$/m)
    })

    // dash has no pipefail: the script turns it on only where the shell has it, as gitlab-runner does.
    it(`${shell}: a failing command inside a pipeline fails the script (pipefail)`, { skip: shell === 'sh' && !hasPipefail('sh') }, () => {
      const r = run(shell, ['false | cat', 'echo never'])
      assert.notEqual(r.code, 0)
      assert.doesNotMatch(plain(r.out), /^never$/m)
    })

    it(`${shell}: file variables become files whose path is the value`, () => {
      const r = run(
        shell,
        ['cat "$CONFIG_FILE"', 'echo "path=$CONFIG_FILE"'],
        [variable('CONFIG_FILE', 'line 1\nit\'s "quoted" $HOME\n', { file: true })],
      )
      assert.equal(r.code, 0, r.out)
      assert.equal(readFileSync(path.join(dir, 'tmp', 'CONFIG_FILE'), 'utf8'), 'line 1\nit\'s "quoted" $HOME\n')
      assert.match(plain(r.out), new RegExp(`path=${path.join(dir, 'tmp', 'CONFIG_FILE')}`))
    })
  }

  it('keeps values with quotes, dollars and newlines literal', () => {
    const value = `a'b"c $HOME \`id\` \\n\nline2`
    const r = run('bash', ['printf "%s" "$V"'], [variable('V', value)])
    assert.equal(plain(r.out).split('\n').slice(1).join('\n'), value)
  })

  it('skips names a shell cannot export', () => {
    const script = buildStageScript({
      variables: [variable('BAD-NAME', 'x'), variable('OK_NAME', 'y')],
      tmpDir: '/t',
      workDir: '/w',
      commands: [],
    })
    assert.doesNotMatch(script, /BAD-NAME/)
    assert.match(script, /export OK_NAME='y'/)
  })

  it('shows the first line of a multi-line command', () => {
    assert.equal(commandEcho('echo a\necho b'), '$ echo a # collapsed multi-line command')
    assert.equal(commandEcho('  ls  '), '$ ls')
  })
})

describe('variables', () => {
  it('expands $VAR, ${VAR} and $$ from the other variables; raw ones stay literal', () => {
    const vars = resolveVariables([
      variable('BASE', 'registry.example/app', { raw: false }),
      variable('IMAGE', '$BASE:${TAG}', { raw: false }),
      variable('TAG', 'v1', { raw: false }),
      variable('RAW', '$BASE', { raw: true }),
      variable('PRICE', '$$5', { raw: false }),
      variable('MISSING', 'x$NOPE-y', { raw: false }),
    ])
    const get = (k: string) => vars.find((v) => v.key === k)?.value
    assert.equal(get('IMAGE'), 'registry.example/app:v1')
    assert.equal(get('RAW'), '$BASE')
    assert.equal(get('PRICE'), '$5')
    assert.equal(get('MISSING'), 'x-y')
  })

  it('a later definition of a key wins', () => {
    const vars = resolveVariables([variable('A', '1'), variable('B', '2'), variable('A', '3')])
    assert.deepEqual(
      vars.map((v) => [v.key, v.value]),
      [
        ['B', '2'],
        ['A', '3'],
      ],
    )
  })

  it('expandValue and shellQuote', () => {
    assert.equal(
      expandValue('$A/${B}', (k) => ({ A: 'x', B: 'y' })[k]),
      'x/y',
    )
    assert.equal(shellQuote("it's"), `'it'\\''s'`)
  })
})
