import type { Kysely } from 'kysely'
import { WharfError } from '../core/errors.ts'
import type { CiVariable, Database } from '../metadata/schema.ts'
import * as q from './queries.ts'

const KEY = /^[A-Za-z0-9_]{1,255}$/
/** GitLab's rule for maskable values: at least 8 characters from a set the log masker can find reliably. */
const MASKABLE = /^[A-Za-z0-9+/=@:.~_-]{8,}$/
const MAX_VALUE = 10_000

export interface VariableInput {
  key?: string
  value?: string
  variable_type?: 'env_var' | 'file'
  protected?: boolean
  masked?: boolean
  environment_scope?: string
}

/** Project and group CI/CD variables (masked, protected, file-type), set through the API. */
export class CiVariables {
  private readonly db: Kysely<Database>
  constructor(db: Kysely<Database>) {
    this.db = db
  }

  /** A page of a project's or group's variables, by key. */
  page(
    kind: 'project' | 'group',
    ownerId: number,
    page: { limit: number; offset: number },
  ): Promise<{ rows: CiVariable[]; total: number }> {
    return q.pageVariables(this.db, kind, ownerId, page)
  }

  async get(kind: 'project' | 'group', ownerId: number, key: string): Promise<CiVariable> {
    const v = await q.findVariable(this.db, kind, ownerId, key)
    if (!v) throw new WharfError('NOT_FOUND', `Variable Not Found: ${key}`, {})
    return v
  }

  async create(kind: 'project' | 'group', ownerId: number, input: VariableInput): Promise<CiVariable> {
    if (!input.key || !KEY.test(input.key))
      throw new WharfError('BAD_REQUEST', 'key can contain only letters, digits and _ (at most 255)', { key: input.key })
    if (input.value === undefined) throw new WharfError('BAD_REQUEST', 'value is missing', {})
    if (await q.findVariable(this.db, kind, ownerId, input.key))
      throw new WharfError('BAD_REQUEST', `(${input.key}) has already been taken`, {})
    const v = validate({
      key: input.key,
      value: input.value,
      variable_type: input.variable_type ?? 'env_var',
      protected: input.protected ?? false,
      masked: input.masked ?? false,
      environment_scope: input.environment_scope ?? '*',
    })
    return q.insertVariable(this.db, {
      owner_kind: kind,
      owner_id: ownerId,
      key: v.key,
      value: v.value,
      variable_type: v.variable_type,
      protected: v.protected ? 1 : 0,
      masked: v.masked ? 1 : 0,
      environment_scope: v.environment_scope,
    })
  }

  async update(kind: 'project' | 'group', ownerId: number, key: string, input: VariableInput): Promise<CiVariable> {
    const cur = await this.get(kind, ownerId, key)
    const v = validate({
      key,
      value: input.value ?? cur.value,
      variable_type: input.variable_type ?? cur.variable_type,
      protected: input.protected ?? cur.protected === 1,
      masked: input.masked ?? cur.masked === 1,
      environment_scope: input.environment_scope ?? cur.environment_scope,
    })
    await q.updateVariable(this.db, cur.id, {
      value: v.value,
      variable_type: v.variable_type,
      protected: v.protected ? 1 : 0,
      masked: v.masked ? 1 : 0,
      environment_scope: v.environment_scope,
    })
    return this.get(kind, ownerId, key)
  }

  async remove(kind: 'project' | 'group', ownerId: number, key: string): Promise<void> {
    await q.deleteVariable(this.db, (await this.get(kind, ownerId, key)).id)
  }
}

function validate<T extends { key: string; value: string; variable_type: string; masked: boolean; environment_scope: string }>(v: T): T {
  if (v.value.length > MAX_VALUE) throw new WharfError('BAD_REQUEST', `value is too long (at most ${MAX_VALUE} characters)`, {})
  if (v.variable_type !== 'env_var' && v.variable_type !== 'file')
    throw new WharfError('BAD_REQUEST', 'variable_type must be env_var or file', {})
  if (v.masked && !MASKABLE.test(v.value)) {
    throw new WharfError('BAD_REQUEST', 'value cannot be masked: it must be at least 8 characters from letters, digits and +/=@:.~_-', {
      key: v.key,
    })
  }
  return v
}

export function variableJson(v: CiVariable) {
  return {
    key: v.key,
    value: v.value,
    variable_type: v.variable_type,
    protected: v.protected === 1,
    masked: v.masked === 1,
    raw: false,
    environment_scope: v.environment_scope,
    description: null,
  }
}
