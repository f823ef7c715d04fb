// What the registry asks CI (which sits above it) for tag history and CI-aware cleanup; src/ci
// implements it and services.ts plugs it in, as auth's JobAccessResolver.

export interface JobOrigin {
  pipelineId: number
  /** The branch or tag the pipeline ran for. */
  ref: string
  refIsTag: boolean
}

export interface CiFacts {
  /** The pipeline and ref of a job (undefined: unknown job). */
  job(jobId: number): Promise<JobOrigin | undefined>
  /** The names of the project's branches now (undefined: the project has no repository to ask). */
  branches(projectId: number): Promise<Set<string> | undefined>
  /** For each protected branch, its latest successful pipeline. */
  latestProtectedBranchPipelines(projectId: number): Promise<Array<{ branch: string; pipelineId: number }>>
}
