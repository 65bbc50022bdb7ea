/*
 * NDMP MD5 authentication (draft-skardal-ndmpv4 §4.2, CONNECT_CLIENT_AUTH with NDMP_AUTH_MD5):
 * the server hands out a 64-byte challenge (CONFIG_GET_AUTH_ATTR) and the client proves it knows
 * the password by the MD5 digest of a 128-byte message laid out as
 *
 *     PASSWORD  zeros  CHALLENGE  zeros  PASSWORD
 *
 * with the challenge at offset 64 - pwlen and the second password ending at byte 128. The draft
 * says each run of zeros is "64 minus the password length" long, which cannot add up to 128; the
 * layout above is the one NDMP implementations agree on (the NDMP SDK's ndmjob among them),
 * and it only holds for passwords of up to 32 bytes, so only the first 32 bytes count.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'

export const NDMP_MD5_CHALLENGE_LENGTH = 64
export const NDMP_MD5_DIGEST_LENGTH = 16
/** Bytes of the password the digest uses (see above). */
export const NDMP_MD5_PASSWORD_MAX = 32

export function ndmpMd5Digest(challenge: Buffer, password: string | Buffer): Buffer {
  if (challenge.length !== NDMP_MD5_CHALLENGE_LENGTH) throw new RangeError(`an NDMP MD5 challenge is 64 bytes, not ${challenge.length}`)
  const full = typeof password === 'string' ? Buffer.from(password, 'utf8') : password
  const pw = full.subarray(0, Math.min(full.length, NDMP_MD5_PASSWORD_MAX))
  const message = Buffer.alloc(128)
  pw.copy(message, 0)
  challenge.copy(message, 64 - pw.length)
  pw.copy(message, 128 - pw.length)
  return createHash('md5').update(message).digest()
}

/** Constant-time check of a client's digest. */
export function ndmpMd5Ok(challenge: Buffer, password: string | Buffer, digest: Buffer): boolean {
  if (digest.length !== NDMP_MD5_DIGEST_LENGTH) return false
  return timingSafeEqual(ndmpMd5Digest(challenge, password), digest)
}

export function ndmpMd5Challenge(): Buffer {
  return randomBytes(NDMP_MD5_CHALLENGE_LENGTH)
}
