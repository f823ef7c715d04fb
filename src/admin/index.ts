export { adminRoutes, type AdminRouteDeps } from './routes.ts'
