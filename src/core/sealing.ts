import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto'
import { link, mkdir, open, readFile, unlink } from 'node:fs/promises'
import { dirname } from 'node:path'

// Secrets Wharf must send back out (a webhook's X-Gitlab-Token) cannot be stored as digests like
// passwords and tokens: they are sealed with AES-256-GCM under a key kept in the data directory's
// `secrets/` (mode 0600, outside the database, so a leaked database alone reveals nothing; the
// backup carries it along). Several nodes share one key through secrets.sealingKeyFile; a check
// value in the database (checkValue) keeps a node with another key from starting.

const VERSION = 'v1'
const KEY_BYTES = 32

/** Why a sealing key file's line is not a key (32 bytes, base64), or undefined when it is one. */
export function sealingKeyProblem(line: string): string | undefined {
  const key = Buffer.from(line.trim(), 'base64')
  if (key.length !== KEY_BYTES || key.toString('base64') !== line.trim())
    return `a sealing key is ${KEY_BYTES} random bytes in base64 on one line (e.g. \`head -c 32 /dev/urandom | base64\`)`
  return undefined
}

/** A node's sealing key is not the one the database's secrets were sealed with (by the first node). */
export class SealingKeyMismatchError extends Error {
  constructor(source: string) {
    super(
      `the sealing key ${source} is not the one this database's secrets are sealed with (another node, or an earlier start, used a different key): give every node the same key file (secrets.sealingKeyFile / WHARF_SEALING_KEY_FILE)`,
    )
    this.name = 'SealingKeyMismatchError'
  }
}

export class Sealer {
  private readonly key: Buffer

  constructor(key: Buffer) {
    if (key.length !== KEY_BYTES) throw new Error('a sealing key is 32 bytes')
    this.key = key
  }

  /**
   * The key in `file`, made (random, 0600) on first use. Written to a temporary file and linked into
   * place, so nodes starting together on a shared data directory never read a half-written key: the
   * first link wins, the others read the winner's.
   */
  static async fromFile(file: string): Promise<Sealer> {
    await mkdir(dirname(file), { recursive: true, mode: 0o700 })
    const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`
    try {
      const fh = await open(tmp, 'wx', 0o600)
      try {
        await fh.writeFile(randomBytes(KEY_BYTES).toString('base64'))
        await fh.sync()
      } finally {
        await fh.close()
      }
      await link(tmp, file).catch((e: NodeJS.ErrnoException) => {
        if (e.code !== 'EEXIST') throw e
      })
    } finally {
      await unlink(tmp).catch(() => {})
    }
    return new Sealer(Buffer.from((await readFile(file, 'utf8')).trim(), 'base64'))
  }

  /** A key shared by several nodes (secrets.sealingKeyFile): read, never made (a node making its own would split the cluster). */
  static async fromSharedFile(file: string): Promise<Sealer> {
    const line = (await readFile(file, 'utf8')).split('\n', 1)[0]!.trim()
    const problem = sealingKeyProblem(line)
    if (problem) throw new Error(`${file}: ${problem}`)
    return new Sealer(Buffer.from(line, 'base64'))
  }

  /** Identifies the key without revealing it (an HMAC of a fixed text): stored once, compared by every node at start. */
  checkValue(): string {
    return createHmac('sha256', this.key).update('wharf sealing key check v1').digest('base64url')
  }

  seal(plain: string): string {
    const iv = randomBytes(12)
    const cipher = createCipheriv('aes-256-gcm', this.key, iv)
    const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()])
    return `${VERSION}:${Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64')}`
  }

  open(sealed: string): string {
    const raw = sealed.startsWith(`${VERSION}:`) ? Buffer.from(sealed.slice(VERSION.length + 1), 'base64') : undefined
    if (!raw || raw.length < 28) throw new Error('a sealed secret is malformed')
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.key, raw.subarray(0, 12))
      decipher.setAuthTag(raw.subarray(12, 28))
      return Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString('utf8')
    } catch (e) {
      throw new Error("a sealed secret cannot be opened with this server's key (secrets/sealing.key)", { cause: e })
    }
  }
}
