/*
 * A fresh PostgreSQL database per test, on the server .ci/run starts
 * (Debian's postgresql-15, password auth on 127.0.0.1:5432). TSNFS_PG_URL
 * points the tests at another server. The database is dropped at teardown.
 */
import pg from 'pg'

export const PG_ADMIN_URL = process.env['TSNFS_PG_URL'] ?? 'postgres://postgres:tsnfs@127.0.0.1:5432/postgres'

let counter = 0

function withDatabase(url: string, name: string): string {
  const u = new URL(url)
  u.pathname = `/${name}`
  return u.toString()
}

async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: PG_ADMIN_URL })
  await c.connect()
  try {
    return await fn(c)
  } finally {
    await c.end()
  }
}

/** Create an empty database; returns its URL (credentials included: tests only). */
export async function createDatabase(): Promise<{ url: string; name: string; drop: () => Promise<void> }> {
  const name = `tsnfs_t_${process.pid}_${Date.now().toString(36)}_${counter++}`
  await admin((c) => c.query(`CREATE DATABASE ${name}`))
  const drop = (): Promise<void> => admin(async (c) => {
    await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
  })
  return { url: withDatabase(PG_ADMIN_URL, name), name, drop }
}

/** A database for the running tap test, dropped when it ends. */
export async function testDatabase(t: { teardown(fn: () => unknown): void }): Promise<string> {
  const db = await createDatabase()
  t.teardown(() => db.drop())
  return db.url
}
