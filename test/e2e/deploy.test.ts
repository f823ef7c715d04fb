// The deployment examples (deploy/, docs/deploy/) stay usable: every YAML file parses, every WHARF_*
// variable they set is a real setting, the Kubernetes objects refer to each other correctly
// (Secret, PVC, Service, Ingress, probes), the compose nodes are identical, and Debian's nginx
// accepts the balancer's configuration.
import assert from 'node:assert/strict'
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { describe, it } from 'node:test'
import { parseAllDocuments } from 'yaml'
import { SETTINGS } from '../../src/config/load.ts'
import { describeResult, run } from '../helpers/run.ts'
import { repoRoot } from '../helpers/wharf.ts'

const deployDir = path.join(repoRoot, 'deploy')

async function files(dir: string): Promise<string[]> {
  const out: string[] = []
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name)
    if (e.isDirectory()) out.push(...(await files(p)))
    else out.push(p)
  }
  return out.sort()
}

async function yamlDocs(file: string): Promise<any[]> {
  const docs = parseAllDocuments(await readFile(file, 'utf8'))
  for (const d of docs) {
    assert.deepEqual(
      [...d.errors, ...d.warnings].map((e) => e.message),
      [],
      path.relative(repoRoot, file),
    )
  }
  return docs.map((d) => d.toJS({ maxAliasCount: -1 }))
}

async function kubeObjects(): Promise<any[]> {
  const out: any[] = []
  for (const f of await files(path.join(deployDir, 'kubernetes'))) {
    if (f.endsWith('gitlab-runner-values.yaml')) continue
    out.push(...(await yamlDocs(f)).filter((d) => d?.kind))
  }
  return out
}

function one(objects: any[], kind: string): any {
  const found = objects.filter((o) => o.kind === kind)
  assert.equal(found.length, 1, `one ${kind}`)
  return found[0]
}

describe('deployment examples', () => {
  it('every YAML file parses, and every WHARF_* variable in deploy/ and docs/deploy/ is a setting', async () => {
    const all = [...(await files(deployDir)), ...(await files(path.join(repoRoot, 'docs', 'deploy')))]
    const known = new Set([...SETTINGS.map((s) => s.env), 'WHARF_CONFIG'])
    for (const f of all) {
      if (/\.ya?ml$/.test(f)) await yamlDocs(f)
      // A name, or a family (`WHARF_S3_*`) that must hold at least one setting.
      for (const [m, name, family] of (await readFile(f, 'utf8')).matchAll(/\b(WHARF_[A-Z0-9_]+)(\*?)/g)) {
        const ok = family ? [...known].some((k) => k.startsWith(name!)) : known.has(name!)
        assert.ok(ok, `${path.relative(repoRoot, f)}: ${m} is not a setting (src/config/load.ts)`)
      }
    }
  })

  it('Kubernetes: replicas, probes on /-/readiness and /-/liveness, the Secret, the shared RWX volume, Service and Ingress', async () => {
    const objects = await kubeObjects()
    const deployment = one(objects, 'Deployment')
    const secret = one(objects, 'Secret')
    const pvc = one(objects, 'PersistentVolumeClaim')
    const service = one(objects, 'Service')
    const ingress = one(objects, 'Ingress')
    assert.ok(deployment.spec.replicas >= 2, 'several replicas')
    const pod = deployment.spec.template
    for (const [k, v] of Object.entries(deployment.spec.selector.matchLabels)) assert.equal(pod.metadata.labels[k], v)
    assert.ok(pod.spec.terminationGracePeriodSeconds > 30, 'longer than shutdownGraceSeconds')
    const [container] = pod.spec.containers
    assert.equal(container.readinessProbe.httpGet.path, '/-/readiness')
    assert.equal(container.livenessProbe.httpGet.path, '/-/liveness')
    const env = Object.fromEntries(container.env.map((e: { name: string; value: string }) => [e.name, e.value]))
    assert.equal(env.WHARF_STORAGE, 's3')
    const port = Number(env.WHARF_LISTEN.split(':').pop())
    assert.ok(container.ports.some((p: any) => p.containerPort === port && p.name === container.readinessProbe.httpGet.port))
    // The database and S3 credentials come from the Secret, not the Deployment.
    assert.deepEqual(container.envFrom, [{ secretRef: { name: secret.metadata.name } }])
    for (const k of ['WHARF_DATABASE_URL', 'WHARF_S3_ACCESS_KEY_ID', 'WHARF_S3_SECRET_ACCESS_KEY']) {
      assert.ok(k in secret.stringData, `${k} in the Secret`)
      assert.ok(!(k in env), `${k} not in the Deployment`)
    }
    // The data directory is the shared ReadWriteMany claim.
    const volume = pod.spec.volumes.find((v: any) => v.persistentVolumeClaim?.claimName === pvc.metadata.name)
    assert.ok(volume, 'the pod mounts the PVC')
    assert.deepEqual(pvc.spec.accessModes, ['ReadWriteMany'])
    assert.equal(container.volumeMounts.find((m: any) => m.name === volume.name).mountPath, env.WHARF_DATA)
    // Service → pods, Ingress → Service.
    for (const [k, v] of Object.entries(service.spec.selector)) assert.equal(pod.metadata.labels[k], v)
    assert.ok(service.spec.ports.every((p: any) => container.ports.some((c: any) => c.name === p.targetPort)))
    const backend = ingress.spec.rules[0].http.paths[0].backend.service
    assert.equal(backend.name, service.metadata.name)
    assert.ok(service.spec.ports.some((p: any) => p.name === backend.port.name))
    assert.equal(ingress.metadata.annotations['nginx.ingress.kubernetes.io/proxy-body-size'], '0')
    assert.equal(env.WHARF_PUBLIC_URL, `https://${ingress.spec.rules[0].host}`)
  })

  it('compose: identical Wharf nodes behind nginx, sharing the data directory', async () => {
    const [compose] = await yamlDocs(path.join(deployDir, 'compose.yaml'))
    const nodes = Object.entries<any>(compose.services).filter(([, s]) => s.image === 'wharf')
    assert.ok(nodes.length >= 2, 'several nodes')
    for (const [, s] of nodes) assert.deepEqual(s, nodes[0]![1])
    const node = nodes[0]![1]
    assert.equal(node.environment.WHARF_STORAGE, 's3')
    assert.ok(node.volumes.some((v: string) => v.endsWith(`:${node.environment.WHARF_DATA}`)))
    for (const f of node.env_file) await readFile(path.join(deployDir, `${f}.example`), 'utf8')
    const port = node.environment.WHARF_LISTEN.split(':').pop()
    const nginx = await readFile(path.join(deployDir, 'nginx.conf'), 'utf8')
    for (const [name] of nodes) assert.match(nginx, new RegExp(`server ${name}:${port}\\b`))
    assert.ok(compose.services.nginx.volumes.includes('./nginx.conf:/etc/nginx/nginx.conf:ro'))
  })

  it("nginx accepts the balancer's configuration", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'wharf-deploy-nginx-'))
    try {
      // The node names resolve only inside compose's network.
      const conf = (await readFile(path.join(deployDir, 'nginx.conf'), 'utf8')).replace(/server wharf-[a-z]+:/g, 'server 127.0.0.1:')
      await writeFile(path.join(dir, 'nginx.conf'), conf)
      const nginx = (await run('sh', ['-c', 'command -v nginx || echo /usr/sbin/nginx'])).stdout.trim()
      const r = await run(nginx, ['-t', '-p', dir, '-c', path.join(dir, 'nginx.conf'), '-e', path.join(dir, 'error.log')])
      assert.equal(r.code, 0, describeResult(r))
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
