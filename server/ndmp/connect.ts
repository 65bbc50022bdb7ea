/*
 * The CONNECT interface (draft-skardal-ndmpv4-04 §4; NDMP v3 the same): CONNECT_OPEN picks the
 * version, CONNECT_CLIENT_AUTH authorizes the connection by clear text or MD5 (xdr/ndmp/md5.ts)
 * against the credentials file, CONNECT_CLOSE ends it (no reply), CONNECT_SERVER_AUTH (the
 * server proving itself to the DMA) is not offered: NDMP_NOT_SUPPORTED_ERR.
 */
import { timingSafeEqual } from 'node:crypto'
import * as v3 from '../../xdr/generated/ndmp3.ts'
import * as v4 from '../../xdr/generated/ndmp4.ts'
import { ndmpMd5Ok } from '../../xdr/ndmp/md5.ts'
import type { NdmpCredentials } from './auth-file.ts'
import { sessionControls, type SessionControls } from './session.ts'
import { NdmpError, type NdmpRegistry, type NdmpService, type NdmpSession } from './service-types.ts'

/* Codes and errors shared by v3 and v4 (same values in ndmp3.x and ndmp4.x). */
const E = {
  NO_ERR: v4.ndmp4_error.NDMP4_NO_ERR,
  NOT_SUPPORTED: v4.ndmp4_error.NDMP4_NOT_SUPPORTED_ERR,
  NOT_AUTHORIZED: v4.ndmp4_error.NDMP4_NOT_AUTHORIZED_ERR,
  ILLEGAL_ARGS: v4.ndmp4_error.NDMP4_ILLEGAL_ARGS_ERR,
} as const
const AUTH_TEXT = 1
const AUTH_MD5 = 2

/** Failed CONNECT_CLIENT_AUTH attempts before the connection is closed (a password guesser gets few tries). */
export const MAX_FAILED_AUTHS = 3

function controlsOf(session: NdmpSession): SessionControls {
  const c = sessionControls(session)
  if (c === undefined) throw new Error('not a server NDMP session')
  return c
}

function open(session: NdmpSession, version: number): { error: number } {
  const c = controlsOf(session)
  if (c.isOpen()) {
    // The version is settled once CONNECT_OPEN (or any other message) went through.
    if (version !== session.version) throw new NdmpError(E.ILLEGAL_ARGS, `too late to change the version to ${version}`)
    return { error: E.NO_ERR }
  }
  if ((version !== 3 && version !== 4) || version > c.maxVersion) throw new NdmpError(E.ILLEGAL_ARGS, `protocol version ${version} is not supported`)
  c.open(version)
  return { error: E.NO_ERR }
}

type AuthData =
  | { auth_type: number; auth_text?: { auth_id: string; auth_password: string }; auth_md5?: { auth_id: string; auth_digest: Buffer } }

function sameText(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8')
  const y = Buffer.from(b, 'utf8')
  return x.length === y.length && timingSafeEqual(x, y)
}

function clientAuth(session: NdmpSession, credentials: NdmpCredentials, data: AuthData): { error: number } {
  const c = controlsOf(session)
  let user: string
  let ok: boolean
  if (data.auth_type === AUTH_TEXT && data.auth_text !== undefined) {
    user = data.auth_text.auth_id
    const pw = credentials.get(user)
    ok = pw !== undefined && sameText(pw, data.auth_text.auth_password)
  } else if (data.auth_type === AUTH_MD5 && data.auth_md5 !== undefined) {
    user = data.auth_md5.auth_id
    const challenge = c.challenge
    // A challenge serves one attempt: a captured digest cannot be replayed on this connection.
    c.challenge = null
    if (challenge === null) return fail(session, c, E.NOT_AUTHORIZED, 'MD5 auth without a challenge (CONFIG_GET_AUTH_ATTR first)')
    const pw = credentials.get(user)
    ok = pw !== undefined && ndmpMd5Ok(challenge, pw, data.auth_md5.auth_digest)
  } else {
    throw new NdmpError(E.ILLEGAL_ARGS, `auth type ${data.auth_type} is not offered`)
  }
  if (!ok) return fail(session, c, E.NOT_AUTHORIZED, `bad credentials for ${user}`)
  c.authorize(user)
  c.failedAuths = 0
  session.log.info({ user, peer: session.peer.address, version: session.version }, 'ndmp: connection authorized')
  return { error: E.NO_ERR }
}

function fail(session: NdmpSession, c: SessionControls, error: number, why: string): never {
  c.failedAuths++
  session.log.warn({ peer: session.peer.address, why, attempts: c.failedAuths }, 'ndmp: authorization refused')
  // After the refusal's reply is written (the handler's reply goes out before a macrotask runs).
  if (c.failedAuths >= MAX_FAILED_AUTHS) setImmediate(() => { session.close() })
  throw new NdmpError(error, why)
}

/** CONNECT_* for v3 and v4. */
export function connectService(credentials: NdmpCredentials): NdmpService {
  return {
    name: 'connect',
    register(reg: NdmpRegistry): void {
      reg.register(4, v4.ndmp4_message.NDMP4_CONNECT_OPEN, {
        request: v4.ndmp4_connect_open_request,
        reply: v4.ndmp4_connect_open_reply,
        beforeAuth: true,
        handle: (s, req) => open(s, req.protocol_version),
      })
      reg.register(3, v3.ndmp3_message.NDMP3_CONNECT_OPEN, {
        request: v3.ndmp3_connect_open_request,
        reply: v3.ndmp3_connect_open_reply,
        beforeAuth: true,
        handle: (s, req) => open(s, req.protocol_version),
      })
      reg.register(4, v4.ndmp4_message.NDMP4_CONNECT_CLIENT_AUTH, {
        request: v4.ndmp4_connect_client_auth_request,
        reply: v4.ndmp4_connect_client_auth_reply,
        beforeAuth: true,
        handle: (s, req) => clientAuth(s, credentials, req.auth_data),
      })
      reg.register(3, v3.ndmp3_message.NDMP3_CONNECT_CLIENT_AUTH, {
        request: v3.ndmp3_connect_client_auth_request,
        reply: v3.ndmp3_connect_client_auth_reply,
        beforeAuth: true,
        handle: (s, req) => clientAuth(s, credentials, req.auth_data),
      })
      // CONNECT_CLOSE has no reply: the server closes the connection (draft §4.3).
      const close = { request: null, reply: null, beforeAuth: true, handle: (s: NdmpSession) => { s.close() } }
      reg.register(4, v4.ndmp4_message.NDMP4_CONNECT_CLOSE, close)
      reg.register(3, v3.ndmp3_message.NDMP3_CONNECT_CLOSE, close)
      reg.register(4, v4.ndmp4_message.NDMP4_CONNECT_SERVER_AUTH, {
        request: v4.ndmp4_connect_server_auth_request,
        reply: v4.ndmp4_connect_server_auth_reply,
        beforeAuth: true,
        handle: () => {
          throw new NdmpError(E.NOT_SUPPORTED, 'CONNECT_SERVER_AUTH is not offered')
        },
      })
      reg.register(3, v3.ndmp3_message.NDMP3_CONNECT_SERVER_AUTH, {
        request: v3.ndmp3_connect_server_auth_request,
        reply: v3.ndmp3_connect_server_auth_reply,
        beforeAuth: true,
        handle: () => {
          throw new NdmpError(E.NOT_SUPPORTED, 'CONNECT_SERVER_AUTH is not offered')
        },
      })
    },
  }
}
