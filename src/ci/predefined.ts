// GitLab's predefined CI/CD variables, including the old aliases the seed's template uses
// (CI_BUILD_TOKEN, CI_BUILD_REF_NAME, ...). The job token itself is only known when a runner
// picks the job up, so it is added then (see `jobTokenVariables`).
import { refSlug } from '../core/names.ts'

export interface JobVariable {
  key: string
  value: string
  /** GitLab runner's notion: public variables may be shown; secrets are not. */
  public: boolean
  masked?: boolean
  file?: boolean
}

export interface PredefinedInput {
  serverUrl: string
  /** `namespaceIsGroup`: the dependency proxy lives in groups, so only then are its image prefixes set. */
  project: {
    id: number
    name: string
    path: string
    fullPath: string
    namespace: string
    namespaceIsGroup?: boolean
    visibility: string
    defaultBranch: string
  }
  /** The mirror listener's URL (`dependencyProxy.mirrorListen`), when the server runs one. */
  registryMirror?: string | undefined
  pipeline: { id: number; iid: number; source: string; ref: string; tag: boolean; sha: string; beforeSha: string; url: string }
  commit: { message: string; title: string; timestamp: string; author: string }
  job: { id: number; name: string; stage: string; url: string }
  user?: { id: number; username: string; name: string; email: string | null }
}

// The registry's CI-aware cleanup compares tags with it too, so it lives in core.
export { refSlug }

export function registryHost(serverUrl: string): string {
  return new URL(serverUrl).host
}

/** GitLab's CI_DEPENDENCY_PROXY_SERVER: $CI_SERVER_HOST:$CI_SERVER_PORT, the port always written out. */
export function dependencyProxyServer(serverUrl: string): string {
  const url = new URL(serverUrl)
  return `${url.hostname}:${url.port || (url.protocol === 'https:' ? '443' : '80')}`
}

export function predefinedVariables(i: PredefinedInput): JobVariable[] {
  const url = new URL(i.serverUrl)
  const registry = registryHost(i.serverUrl)
  const projectUrl = `${i.serverUrl}/${i.project.fullPath}`
  const v: Record<string, string> = {
    CI: 'true',
    GITLAB_CI: 'true',
    CI_SERVER: 'yes',
    CI_SERVER_URL: i.serverUrl,
    CI_SERVER_HOST: url.hostname,
    CI_SERVER_FQDN: url.host,
    CI_SERVER_PORT: url.port || (url.protocol === 'https:' ? '443' : '80'),
    CI_SERVER_PROTOCOL: url.protocol.replace(':', ''),
    CI_SERVER_NAME: 'Wharf',
    CI_API_V4_URL: `${i.serverUrl}/api/v4`,
    CI_PROJECT_ID: String(i.project.id),
    CI_PROJECT_NAME: i.project.path,
    CI_PROJECT_TITLE: i.project.name,
    CI_PROJECT_PATH: i.project.fullPath,
    CI_PROJECT_PATH_SLUG: refSlug(i.project.fullPath),
    CI_PROJECT_NAMESPACE: i.project.namespace,
    CI_PROJECT_ROOT_NAMESPACE: i.project.namespace.split('/')[0]!,
    CI_PROJECT_URL: projectUrl,
    CI_PROJECT_VISIBILITY: i.project.visibility,
    CI_PROJECT_DIR: `/builds/${i.project.fullPath}`,
    CI_DEFAULT_BRANCH: i.project.defaultBranch,
    CI_REPOSITORY_URL: `${url.protocol}//gitlab-ci-token:[MASKED]@${url.host}/${i.project.fullPath}.git`,
    CI_COMMIT_SHA: i.pipeline.sha,
    CI_COMMIT_SHORT_SHA: i.pipeline.sha.slice(0, 8),
    CI_COMMIT_BEFORE_SHA: i.pipeline.beforeSha,
    CI_COMMIT_REF_NAME: i.pipeline.ref,
    CI_COMMIT_REF_SLUG: refSlug(i.pipeline.ref),
    CI_COMMIT_MESSAGE: i.commit.message,
    CI_COMMIT_TITLE: i.commit.title,
    CI_COMMIT_DESCRIPTION: i.commit.message.split('\n').slice(1).join('\n').replace(/^\n+/, ''),
    CI_COMMIT_TIMESTAMP: i.commit.timestamp,
    CI_COMMIT_AUTHOR: i.commit.author,
    CI_PIPELINE_ID: String(i.pipeline.id),
    CI_PIPELINE_IID: String(i.pipeline.iid),
    CI_PIPELINE_SOURCE: i.pipeline.source,
    CI_PIPELINE_URL: i.pipeline.url,
    CI_PIPELINE_CREATED_AT: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
    CI_JOB_ID: String(i.job.id),
    CI_JOB_NAME: i.job.name,
    CI_JOB_STAGE: i.job.stage,
    CI_JOB_URL: i.job.url,
    CI_REGISTRY: registry,
    CI_REGISTRY_IMAGE: `${registry}/${i.project.fullPath.toLowerCase()}`,
    CI_REGISTRY_USER: 'gitlab-ci-token',
    CI_DEPENDENCY_PROXY_SERVER: dependencyProxyServer(i.serverUrl),
    CI_DEPENDENCY_PROXY_USER: 'gitlab-ci-token',
    // The seed's (GitLab 8) names, still used by old templates.
    CI_BUILD_ID: String(i.job.id),
    CI_BUILD_NAME: i.job.name,
    CI_BUILD_STAGE: i.job.stage,
    CI_BUILD_REF: i.pipeline.sha,
    CI_BUILD_REF_NAME: i.pipeline.ref,
    CI_BUILD_REF_SLUG: refSlug(i.pipeline.ref),
    CI_BUILD_BEFORE_SHA: i.pipeline.beforeSha,
    CI_BUILD_REPO: `${url.protocol}//gitlab-ci-token:[MASKED]@${url.host}/${i.project.fullPath}.git`,
  }
  if (i.project.namespaceIsGroup) {
    // GitLab's values: the top-level group's proxy, and the project's own group's (subgroup members pull there).
    const proxy = (group: string) => `${dependencyProxyServer(i.serverUrl)}/${group.toLowerCase()}/dependency_proxy/containers`
    v.CI_DEPENDENCY_PROXY_GROUP_IMAGE_PREFIX = proxy(i.project.namespace.split('/')[0]!)
    v.CI_DEPENDENCY_PROXY_DIRECT_GROUP_IMAGE_PREFIX = proxy(i.project.namespace)
  }
  // Wharf: where Docker Hub images can be pulled through this server's cache (Docker's registry-mirrors).
  if (i.registryMirror) v.WHARF_REGISTRY_MIRROR = i.registryMirror
  if (i.pipeline.tag) {
    v.CI_COMMIT_TAG = i.pipeline.ref
    v.CI_BUILD_TAG = i.pipeline.ref
  } else {
    v.CI_COMMIT_BRANCH = i.pipeline.ref
  }
  if (i.user) {
    v.GITLAB_USER_ID = String(i.user.id)
    v.GITLAB_USER_LOGIN = i.user.username
    v.GITLAB_USER_NAME = i.user.name
    if (i.user.email) v.GITLAB_USER_EMAIL = i.user.email
  }
  return Object.entries(v).map(([key, value]) => ({ key, value, public: true }))
}

/** Variables that carry the job token; added when a runner starts the job, never stored. */
export function jobTokenVariables(token: string, serverUrl: string, fullPath: string): JobVariable[] {
  const url = new URL(serverUrl)
  const repo = `${url.protocol}//gitlab-ci-token:${token}@${url.host}/${fullPath}.git`
  return [
    { key: 'CI_JOB_TOKEN', value: token, public: false, masked: true },
    { key: 'CI_BUILD_TOKEN', value: token, public: false, masked: true },
    { key: 'CI_REGISTRY_PASSWORD', value: token, public: false, masked: true },
    { key: 'CI_DEPENDENCY_PROXY_PASSWORD', value: token, public: false, masked: true },
    { key: 'CI_REPOSITORY_URL', value: repo, public: false },
    { key: 'CI_BUILD_REPO', value: repo, public: false },
  ]
}
