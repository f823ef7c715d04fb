import type { Generated, Insertable, Kysely, Selectable, Transaction } from 'kysely'

// Table interfaces. Timestamps are ISO-8601 text so SQLite and PostgreSQL store them alike.

export interface RepositoriesTable {
  id: Generated<number>
  name: string
  created_at: string
}

/** One row per distinct content-addressed blob in storage, shared across repositories. */
export interface BlobsTable {
  digest: string
  size: number
  created_at: string
}

/** A blob is readable in a repository only once it was pushed or mounted there. */
export interface RepositoryBlobsTable {
  repository_id: number
  digest: string
  created_at: string
}

export interface ManifestsTable {
  id: Generated<number>
  repository_id: number
  digest: string
  media_type: string
  artifact_type: string | null
  size: number
  config_digest: string | null
  subject_digest: string | null
  annotations: string | null
  content: Uint8Array
  created_at: string
}

/** Edges from a manifest to the blobs (config, layers) and manifests (index children) it names. */
export interface ManifestReferencesTable {
  manifest_id: number
  digest: string
  kind: 'blob' | 'manifest'
}

export interface TagsTable {
  repository_id: number
  name: string
  manifest_id: number
  updated_at: string
}

export interface UploadsTable {
  id: string
  repository_id: number
  /** Bytes received so far; the temp file is truncated back to this after a crash. */
  size: number
  created_at: string
  updated_at: string
}

export interface Database {
  repositories: RepositoriesTable
  blobs: BlobsTable
  repository_blobs: RepositoryBlobsTable
  manifests: ManifestsTable
  manifest_references: ManifestReferencesTable
  tags: TagsTable
  uploads: UploadsTable
}

export type Executor = Kysely<Database> | Transaction<Database>
export type Repository = Selectable<RepositoriesTable>
export type Manifest = Selectable<ManifestsTable>
export type NewManifest = Insertable<ManifestsTable>
export type Upload = Selectable<UploadsTable>
