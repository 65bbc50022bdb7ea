/*
 * Is an S3 gateway up for the tests? TSNFS_S3_URL and TSNFS_S3_KEYS
 * ("access:secret", as deploy/ceph/start.sh writes them to DIR/s3.env), else
 * the gateway deploy/ceph/start.sh starts by default: 127.0.0.1:7480 with its
 * fixed test user. `skip` says why there is none.
 */
export interface S3Env {
  endpoint: string
  accessKeyId: string
  secretAccessKey: string
  region: string
}

const DEFAULT_URL = 'http://127.0.0.1:7480'
/** deploy/ceph/start.sh's fixed test user (tests on 127.0.0.1 only). */
const DEFAULT_KEYS = 'TSNFSTESTACCESSKEY01:tsnfs-test-secret-key-0123456789abcdefgh'

export async function s3Env(): Promise<S3Env | { skip: string }> {
  const endpoint = process.env['TSNFS_S3_URL'] ?? DEFAULT_URL
  const keys = process.env['TSNFS_S3_KEYS'] ?? DEFAULT_KEYS
  const colon = keys.indexOf(':')
  if (colon < 0) return { skip: 'TSNFS_S3_KEYS is not access:secret' }
  try {
    // Any HTTP answer (radosgw says 200 with an anonymous bucket list) means a gateway listens.
    await fetch(endpoint, { signal: AbortSignal.timeout(2000) })
  } catch (err) {
    return { skip: `no S3 gateway at ${endpoint} (${(err as Error).message}); start one with deploy/ceph/start.sh DIR` }
  }
  return { endpoint, accessKeyId: keys.slice(0, colon), secretAccessKey: keys.slice(colon + 1), region: process.env['TSNFS_S3_REGION'] ?? 'us-east-1' }
}
