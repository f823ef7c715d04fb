import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto'
import { mkdir, open, readFile } from 'node:fs/promises'
import { dirname } from 'node:path'

// Secrets Wharf must send back out (a webhook's X-Gitlab-Token) cannot be stored as digests like
// passwords and tokens: they are sealed with AES-256-GCM under a key kept in the data directory's
// `secrets/` (mode 0600, outside the database, so a leaked database alone reveals nothing; the
// backup carries it along).

const VERSION = 'v1'

export class Sealer {
  private readonly key: Buffer

  constructor(key: Buffer) {
    if (key.length !== 32) throw new Error('a sealing key is 32 bytes')
    this.key = key
  }

  /** The key in `file`, made (random, 0600) on first use. */
  static async fromFile(file: string): Promise<Sealer> {
    await mkdir(dirname(file), { recursive: true, mode: 0o700 })
    try {
      const fh = await open(file, 'wx', 0o600)
      try {
        await fh.writeFile(randomBytes(32).toString('base64'))
        await fh.sync()
      } finally {
        await fh.close()
      }
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e
    }
    return new Sealer(Buffer.from((await readFile(file, 'utf8')).trim(), 'base64'))
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
