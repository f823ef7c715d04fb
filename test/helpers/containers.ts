// Private containers/storage settings for podman and buildah, so that a test
// never touches the machine's global image storage or credentials.
import { mkdir, writeFile } from 'node:fs/promises'
import path from 'node:path'

export interface PrivateStorage {
  /** Global options for podman or buildah: --root, --runroot, --storage-driver. */
  args: string[]
  /** Environment: private storage.conf and credentials file. */
  env: Record<string, string>
  root: string
  runroot: string
  tmp: string
}

export async function privateStorage(dir: string): Promise<PrivateStorage> {
  const root = path.join(dir, 'root')
  const runroot = path.join(dir, 'run')
  const tmp = path.join(dir, 'tmp')
  await mkdir(tmp, { recursive: true })
  const storageConf = path.join(dir, 'storage.conf')
  // The same settings as the command-line options, so that no system or user
  // storage.conf applies.
  await writeFile(storageConf, `[storage]\ndriver = "vfs"\nrunroot = "${runroot}"\ngraphroot = "${root}"\n`)
  // A private, empty credentials file (podman insists that it exists).
  const authFile = path.join(dir, 'auth.json')
  await writeFile(authFile, '{"auths":{}}\n')
  return {
    args: ['--root', root, '--runroot', runroot, '--storage-driver', 'vfs'],
    env: {
      CONTAINERS_STORAGE_CONF: storageConf,
      REGISTRY_AUTH_FILE: authFile,
      TMPDIR: tmp,
    },
    root,
    runroot,
    tmp,
  }
}
