// The UI's page paths, in one place: app.js routes them to pages, and the server serves the app's
// HTML only for a path matching one of them (anything else under /-/ is a 404, not the app).
export const PAGES = {
  home: /^\/$/,
  signIn: /^\/-\/sign_in$/,
  newProject: /^\/-\/projects\/new$/,
  newGroup: /^\/-\/groups\/new$/,
  group: /^\/-\/groups\/([A-Za-z0-9_.-]+(?:\/[A-Za-z0-9_.-]+)*)$/,
  project: /^\/-\/projects\/(\d+)$/,
  projectRegistry: /^\/-\/projects\/(\d+)\/registry$/,
  pipelines: /^\/-\/projects\/(\d+)\/pipelines$/,
  newPipeline: /^\/-\/projects\/(\d+)\/pipelines\/new$/,
  schedules: /^\/-\/projects\/(\d+)\/pipelines\/schedules$/,
  newSchedule: /^\/-\/projects\/(\d+)\/pipelines\/schedules\/new$/,
  editSchedule: /^\/-\/projects\/(\d+)\/pipelines\/schedules\/(\d+)\/edit$/,
  pipeline: /^\/-\/projects\/(\d+)\/pipelines\/(\d+)$/,
  job: /^\/-\/projects\/(\d+)\/jobs\/(\d+)$/,
  repository: /^\/-\/projects\/(\d+)\/repository$/,
  members: /^\/-\/projects\/(\d+)\/members$/,
  settings: /^\/-\/projects\/(\d+)\/settings$/,
  tokens: /^\/-\/user\/tokens$/,
  account: /^\/-\/user\/account$/,
  admin: /^\/-\/admin(?:\/(users|projects|groups|runners|signing_keys|audit_log|settings))?$/,
}
