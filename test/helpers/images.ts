// Test images built from local files by scripts/make-test-images.sh, cached
// in os.tmpdir()/wharf-test-images (the script is a no-op once built).
import { readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { runOk } from './run.ts'
import { repoRoot } from './wharf.ts'

export interface TestImages {
  dir: string
  /** OCI image layout with refs amd64, arm64 and index. */
  ociLayout: string
  /** skopeo/podman reference `oci:<layout>:<ref>` */
  oci(ref: 'amd64' | 'arm64' | 'index'): string
  /** docker-archive of the amd64 image, tagged localhost/wharf-test/multi:amd64 */
  dockerArchive: string
  dockerArchiveTag: string
  digests: {
    amd64Manifest: string
    amd64Config: string
    arm64Manifest: string
    arm64Config: string
    indexManifest: string
    /** gzip layers of the amd64 image, in order */
    amd64Layers: string[]
    /** gzip layers of the arm64 image, in order */
    arm64Layers: string[]
  }
}

let cached: Promise<TestImages> | undefined

export function testImages(): Promise<TestImages> {
  cached ??= build()
  return cached
}

/** Runs one of the image scripts into `dir` and returns a reader of the images.env it writes. */
async function makeImages(script: string, dir: string, timeoutMs: number): Promise<(key: string) => string> {
  await runOk('sh', [path.join(repoRoot, 'scripts', script), dir], { timeoutMs })
  const vars = new Map<string, string>()
  for (const line of readFileSync(path.join(dir, 'images.env'), 'utf8').split('\n')) {
    const i = line.indexOf('=')
    if (i > 0) vars.set(line.slice(0, i), line.slice(i + 1))
  }
  return (k) => {
    const v = vars.get(k)
    if (!v) throw new Error(`images.env has no ${k}`)
    return v
  }
}

async function build(): Promise<TestImages> {
  const dir = process.env.WHARF_E2E_IMAGES ?? path.join(tmpdir(), 'wharf-test-images')
  const get = await makeImages('make-test-images.sh', dir, 120_000)
  const ociLayout = path.join(dir, 'oci')
  const common = [get('LAYER1'), get('LAYER2'), get('LAYER3')]
  return {
    dir,
    ociLayout,
    oci: (ref) => `oci:${ociLayout}:${ref}`,
    dockerArchive: path.join(dir, 'amd64.docker.tar'),
    dockerArchiveTag: 'localhost/wharf-test/multi:amd64',
    digests: {
      amd64Manifest: get('AMD64_MANIFEST'),
      amd64Config: get('AMD64_CONFIG'),
      arm64Manifest: get('ARM64_MANIFEST'),
      arm64Config: get('ARM64_CONFIG'),
      indexManifest: get('INDEX_MANIFEST'),
      amd64Layers: [...common, get('AMD64_LAYER4')],
      arm64Layers: [...common, get('ARM64_LAYER4')],
    },
  }
}

/** The docker-in-docker stand-ins of scripts/make-dind-images.sh (Debian binaries, no network). */
export interface DindImages {
  dir: string
  /** OCI image layout with refs docker, dind and nginx. */
  ociLayout: string
  /** skopeo reference `oci:<layout>:<ref>` */
  oci(ref: 'docker' | 'dind' | 'nginx'): string
  /** docker-archives for `docker load`: docker:latest + docker:cli, docker:dind, nginx:latest */
  archives: { docker: string; dind: string; nginx: string }
  digests: { docker: string; dind: string; nginx: string; nginxConfig: string }
}

let dindCached: Promise<DindImages> | undefined

/** Builds the stand-ins once (cached in os.tmpdir()/wharf-dind-images; ~40 s the first time). */
export function dindImages(): Promise<DindImages> {
  dindCached ??= (async () => {
    const dir = process.env.WHARF_E2E_DIND_IMAGES ?? path.join(tmpdir(), 'wharf-dind-images')
    const get = await makeImages('make-dind-images.sh', dir, 300_000)
    const ociLayout = path.join(dir, 'oci')
    return {
      dir,
      ociLayout,
      oci: (ref) => `oci:${ociLayout}:${ref}`,
      archives: {
        docker: path.join(dir, 'docker.docker.tar'),
        dind: path.join(dir, 'dind.docker.tar'),
        nginx: path.join(dir, 'nginx.docker.tar'),
      },
      digests: {
        docker: get('DOCKER_MANIFEST'),
        dind: get('DIND_MANIFEST'),
        nginx: get('NGINX_MANIFEST'),
        nginxConfig: get('NGINX_CONFIG'),
      },
    }
  })()
  return dindCached
}
