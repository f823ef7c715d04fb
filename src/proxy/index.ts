export { DependencyProxy, type ProxyOptions } from './service.ts'
export { buildMirrorApp, groupPullThrough, proxyApiRoutes, type MirrorAuth } from './routes.ts'
