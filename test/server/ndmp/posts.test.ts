import t from 'tap'
import { NdmpConnection, type NdmpPost } from '../../../client/ndmp/connection.ts'
import * as v3 from '../../../xdr/generated/ndmp3.ts'
import * as v4 from '../../../xdr/generated/ndmp4.ts'
import { decodeBody } from '../../../xdr/ndmp/message.ts'
import { postDataHalted, postDataRead, postFhAddDir, postFhAddFile, postFhAddNode, postLog, postLogFile, postMoverHalted, postMoverPaused, type FhStat } from '../../../server/ndmp/posts.ts'
import type { NdmpService } from '../../../server/ndmp/service-types.ts'
import { PASSWORD, USER, startTestNdmp } from './helpers.ts'

/* The typed post helpers: one call, the body of the session's version, as a DMA decodes it. */

const GO = 0x20000100
const stat: FhStat = { type: 4, mtime: 1_700_000_000.7, atime: -5, ctime: 2 ** 40, uid: 1000, gid: 100, mode: 0o100644, size: 5_000_000_000n, links: 2 }
const name = Buffer.from([0x66, 0xff, 0x6f]) // not UTF-8: stays bytes

const service: NdmpService = {
  name: 'posts',
  register(reg) {
    for (const version of [3, 4] as const) {
      reg.register(version, GO, {
        request: null,
        reply: v4.ndmp4_data_stop_reply,
        handle: async (s) => {
          await postDataHalted(s, 1, 'done')
          await postMoverHalted(s, 2, 'aborted')
          await postMoverPaused(s, 1, 123n)
          await postDataRead(s, 1024n, 512n)
          await postLog(s, 'warning', 'careful')
          await postLog(s, 'normal', 'second')
          await postLogFile(s, '/a/b', 2)
          await postFhAddFile(s, [{ path: name, stat, node: 42n, fhInfo: 1536n }])
          await postFhAddDir(s, [{ name, node: 42n, parent: 2n }])
          await postFhAddNode(s, [{ stat, node: 42n, fhInfo: 1536n }])
          return { error: 0 }
        },
      })
    }
  },
}

async function collect(port: number, version: 3 | 4): Promise<NdmpPost[]> {
  const c = await NdmpConnection.connect({ host: '127.0.0.1', port, version })
  await c.auth({ type: 'text', user: USER, password: PASSWORD })
  const posts: NdmpPost[] = []
  c.onPost((p) => posts.push(p))
  await c.call(GO, null, undefined, v4.ndmp4_data_stop_reply)
  await c.close()
  return posts
}

t.test('v4 bodies', async (t) => {
  const srv = await startTestNdmp(t, { services: [service] })
  const p = await collect(srv.port, 4)
  const M = v4.ndmp4_message
  t.same(p.map((x) => x.code), [M.NDMP4_NOTIFY_DATA_HALTED, M.NDMP4_NOTIFY_MOVER_HALTED, M.NDMP4_NOTIFY_MOVER_PAUSED, M.NDMP4_NOTIFY_DATA_READ, M.NDMP4_LOG_MESSAGE, M.NDMP4_LOG_MESSAGE, M.NDMP4_LOG_FILE, M.NDMP4_FH_ADD_FILE, M.NDMP4_FH_ADD_DIR, M.NDMP4_FH_ADD_NODE])
  t.ok(p.every((x) => x.header.message_type === 0 && x.header.reply_sequence === 0), 'posts are requests answering nothing')
  const body = (i: number): Buffer => p[i]?.body ?? Buffer.alloc(0)
  t.same(decodeBody(v4.ndmp4_notify_data_halted_post, body(0)), { reason: 1 })
  t.same(decodeBody(v4.ndmp4_notify_mover_halted_post, body(1)), { reason: 2 })
  t.same(decodeBody(v4.ndmp4_notify_mover_paused_post, body(2)), { reason: 1, seek_position: 123n })
  t.same(decodeBody(v4.ndmp4_notify_data_read_post, body(3)), { offset: 1024n, length: 512n })
  t.same(decodeBody(v4.ndmp4_log_message_post, body(4)), { log_type: 3, message_id: 1, entry: 'careful', associated_message_valid: 0, associated_message_sequence: 0 })
  t.equal(decodeBody(v4.ndmp4_log_message_post, body(5)).message_id, 2, 'message ids count')
  t.same(decodeBody(v4.ndmp4_log_file_post, body(6)), { name: '/a/b', recovery_status: 2 })
  const files = decodeBody(v4.ndmp4_fh_add_file_post, body(7)).files
  t.same(files[0]?.names, [{ fs_type: 0, unix_name: name }], 'the name stays bytes')
  t.same(files[0]?.stats, [{ unsupported: 0, fs_type: 0, ftype: 4, mtime: 1_700_000_000, atime: 0, ctime: 0xffff_ffff, owner: 1000, group: 100, fattr: 0o100644, size: 5_000_000_000n, links: 2 }], 'times clamp to u_long seconds')
  t.equal(files[0]?.fh_info, 1536n)
  t.same(decodeBody(v4.ndmp4_fh_add_dir_post, body(8)).dirs, [{ names: [{ fs_type: 0, unix_name: name }], node: 42n, parent: 2n }])
  t.equal(decodeBody(v4.ndmp4_fh_add_node_post, body(9)).nodes[0]?.node, 42n)
})

t.test('v3 bodies: text reasons, LOG_FILE as an ndmp3_error, "invalid" stats', async (t) => {
  const srv = await startTestNdmp(t, { services: [service] })
  const p = await collect(srv.port, 3)
  const body = (i: number): Buffer => p[i]?.body ?? Buffer.alloc(0)
  t.same(decodeBody(v3.ndmp3_notify_data_halted_request, body(0)), { reason: 1, text_reason: 'done' })
  t.same(decodeBody(v3.ndmp3_notify_mover_halted_request, body(1)), { reason: 2, text_reason: 'aborted' })
  t.same(decodeBody(v3.ndmp3_log_message_request, body(4)), { log_type: 3, message_id: 1, entry: 'careful' })
  t.same(decodeBody(v3.ndmp3_log_file_request, body(6)), { name: '/a/b', error: v3.ndmp3_error.NDMP3_FILE_NOT_FOUND_ERR })
  const f = decodeBody(v3.ndmp3_fh_add_file_request, body(7)).files[0]
  t.equal(f?.stats[0]?.invalid, 0)
  t.equal(f?.stats[0]?.size, 5_000_000_000n)
})
