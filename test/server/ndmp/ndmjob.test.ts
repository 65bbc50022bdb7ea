import t from 'tap'
import { runNdmjob } from '../../helpers/ndmjob.ts'
import type { NdmjobResult } from '../../helpers/ndmjob.ts'
import { PASSWORD, USER, startTestNdmp } from './helpers.ts'

/*
 * The independent judge: the NDMP SDK's reference DMA (Debian amanda-server's ndmjob, which
 * .ci/run installs) queries our server as a data agent (-D) and as a tape agent (-T), over v4
 * and v3, with text (t) and MD5 (m) authorization. It never skips: a missing ndmjob fails.
 */

const ndmjob = (args: string[]): Promise<NdmjobResult> => runNdmjob(args, 15_000)

t.test('ndmjob -q against our server: v4 and v3, text and MD5, data and tape agent', async (t) => {
  const srv = await startTestNdmp(t)
  for (const [mode, version, auth] of [['4t', 4, 'TEXT'], ['4m', 4, 'MD5'], ['3t', 3, 'TEXT'], ['3m', 3, 'MD5']] as const) {
    const agent = `127.0.0.1:${srv.port}/${mode},${USER},${PASSWORD}`
    const { code, out } = await ndmjob(['-q', '-D', agent, '-T', agent])
    t.equal(code, 0, `${mode}: ndmjob exits 0`)
    const has = (line: string): void => {
      t.ok(out.includes(line), `${mode} (${auth}): prints ${line}`)
    }
    has(`QR "Data Agent 127.0.0.1 NDMPv${version}"`)
    has(`QR "Tape Agent 127.0.0.1 NDMPv${version}"`)
    has('QR "    vendor     tsnfs"')
    has('QR "    product    tsnfs NDMP data and tape service"')
    has('QR "    revision   1.2.3"')
    has(`QR "    auths      (2)  NDMP${version}_AUTH_TEXT NDMP${version}_AUTH_MD5"`)
    has(`QR "    addr_types (2)  NDMP${version}_ADDR_LOCAL NDMP${version}_ADDR_TCP"`)
    has('QR "  Backup type info of tar format"')
    has('QR "    set        HIST=y"')
    has('QR "  File system /mem"')
    has('QR "    type       memory"')
    has('QR "    status     online"')
    has('QR "    set        BACKEND=memory"')
    has('QR "  tape tsnfs virtual tape"')
    t.match(out, /QR " {4}device {5}\/.*\/tape0"/, `${mode}: the tape device`)
    t.notMatch(out, /ERR|failed/i, `${mode}: no error line`)
    // ndmjob spells out v3 butype attrs one by one.
    if (version === 3) for (const a of ['backup-file-history', 'recover-filelist', 'backup-incremental', 'recover-direct']) has(`QR "      ${a}   yes"`)
  }
})

t.test('ndmjob with a wrong password is refused (text and MD5), and the server goes on', async (t) => {
  const srv = await startTestNdmp(t)
  for (const mode of ['4t', '4m', '3m']) {
    const { code, out } = await ndmjob(['-q', '-D', `127.0.0.1:${srv.port}/${mode},${USER},wrong`])
    // ndmjob -q exits 0 whatever the query found: what it prints is the verdict.
    t.equal(code, 0, `${mode}: ndmjob ran`)
    t.ok(out.includes(`err connect-auth-${mode.endsWith('t') ? 'text' : 'md5'}-failed`), `${mode}: says the authorization failed`)
    t.notMatch(out, /File system/, `${mode}: learned nothing of the exports`)
  }
  const { code, out } = await ndmjob(['-q', '-D', `127.0.0.1:${srv.port}/4m,${USER},${PASSWORD}`])
  t.equal(code, 0)
  t.ok(out.includes('QR "  File system /mem"'), 'the right password still works')
})
