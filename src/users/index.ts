// User accounts (with their personal namespace) and the /api/v4 users and personal access token routes.
export { Users, type NewUser } from './service.ts'
export { userRoutes, type UserRouteOptions } from './routes.ts'
export { countUsers } from './queries.ts'
