export { DependencyProxy, type ProxyOptions } from './service.ts'
export { buildMirrorApp, groupPullThrough, proxyApiRoutes } from './routes.ts'
