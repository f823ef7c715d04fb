export { webRoutes, type WebOptions } from './routes.ts'
export { Sessions, SESSION_COOKIE, csrfTokenFor } from './sessions.ts'
export { markdownRoutes } from './markdown-routes.ts'
export { ssoWebRoutes, type SsoRouteOptions } from './sso-routes.ts'
