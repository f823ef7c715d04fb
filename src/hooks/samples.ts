import type { Trigger } from './queries.ts'

// What a test delivery carries: the event's shape (object_kind and its main fields) with sample
// values, marked `"test": true`, so a receiver can be checked without pushing anything.
const ZERO = '0000000000000000000000000000000000000000'

export function samplePayload(trigger: Trigger, publicUrl: string): object {
  const base = { test: true, instance: publicUrl }
  switch (trigger) {
    case 'push_events':
      return {
        ...base,
        object_kind: 'push',
        event_name: 'push',
        before: ZERO,
        after: ZERO,
        ref: 'refs/heads/main',
        commits: [],
        total_commits_count: 0,
      }
    case 'tag_push_events':
      return {
        ...base,
        object_kind: 'tag_push',
        event_name: 'tag_push',
        before: ZERO,
        after: ZERO,
        ref: 'refs/tags/v1.0.0',
        commits: [],
        total_commits_count: 0,
      }
    case 'pipeline_events':
      return { ...base, object_kind: 'pipeline', object_attributes: { id: 0, ref: 'main', status: 'success' }, builds: [] }
    case 'job_events':
      return { ...base, object_kind: 'build', build_id: 0, build_name: 'test', build_status: 'success' }
    case 'registry_events':
      return {
        ...base,
        object_kind: 'registry',
        event_name: 'tag_push',
        repository: { name: 'group/project', location: '' },
        tag: 'latest',
        digest: null,
        size: null,
      }
  }
}
