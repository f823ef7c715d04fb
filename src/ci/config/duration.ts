// Human durations as GitLab reads them (ChronicDuration): "1h 30m", "1 hour and 30 minutes",
// "30 mins", "1 week", "1:30:00", "3600" (seconds). Used by `timeout`, `artifacts:expire_in`.

const SECOND = 1
const MINUTE = 60
const HOUR = 3600
const DAY = 86_400
const WEEK = 7 * DAY
/** ChronicDuration counts a month as 30 days and a year as 365.25 days. */
const MONTH = 30 * DAY
const YEAR = 31_557_600

const UNITS: ReadonlyMap<string, number> = new Map(
  Object.entries({
    s: SECOND,
    sec: SECOND,
    secs: SECOND,
    second: SECOND,
    seconds: SECOND,
    m: MINUTE,
    min: MINUTE,
    mins: MINUTE,
    minute: MINUTE,
    minutes: MINUTE,
    h: HOUR,
    hr: HOUR,
    hrs: HOUR,
    hour: HOUR,
    hours: HOUR,
    d: DAY,
    day: DAY,
    days: DAY,
    w: WEEK,
    wk: WEEK,
    wks: WEEK,
    week: WEEK,
    weeks: WEEK,
    mo: MONTH,
    mos: MONTH,
    mon: MONTH,
    mons: MONTH,
    month: MONTH,
    months: MONTH,
    y: YEAR,
    yr: YEAR,
    yrs: YEAR,
    year: YEAR,
    years: YEAR,
  }),
)

/** Longest job timeout GitLab accepts (Project::MAX_BUILD_TIMEOUT, one month). */
export const MAX_JOB_TIMEOUT_SECONDS = MONTH

/** Seconds in `text`, or undefined when it is not a duration. Fractions round down. */
export function parseDuration(text: string): number | undefined {
  const s = text.trim().toLowerCase()
  if (s === '') return undefined
  if (/^\d+(\.\d+)?$/.test(s)) return Math.floor(Number(s))
  const clock = /^(?:(\d+):)?(\d+):(\d{1,2})$/.exec(s)
  if (clock) {
    const [, h, m, sec] = clock
    return Number(h ?? 0) * HOUR + Number(m) * MINUTE + Number(sec)
  }
  const tokens = s
    .replace(/,/g, ' ')
    .replace(/\band\b/g, ' ')
    .match(/\d+(?:\.\d+)?|[a-z]+/g)
  if (!tokens) return undefined
  let total = 0
  let pending: number | undefined
  for (const token of tokens) {
    if (/^\d/.test(token)) {
      if (pending !== undefined) total += pending // a bare number counts as seconds
      pending = Number(token)
      continue
    }
    const unit = UNITS.get(token)
    if (unit === undefined || pending === undefined) return undefined
    total += pending * unit
    pending = undefined
  }
  if (pending !== undefined) total += pending
  return Math.floor(total)
}
