// Single sign-on: external identity providers (OpenID Connect) linked to Wharf accounts.
export { Sso, type SsoDeps, type SyncResult, SIGN_IN_TTL_SECONDS, safeReturnTo } from './service.ts'
export { type ProviderStatus, type SsoFailure, SSO_FAILURES, ssoReason } from './oidc.ts'
