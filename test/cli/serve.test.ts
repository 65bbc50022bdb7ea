/*
 * The tsnfs command as users run it: a separate process, its banner, a real
 * client through it, clean stop on SIGTERM, and refusal of a bad export list.
 */
import t from 'tap'
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { dumpPorts } from '../../client/portmap.ts'
import { run } from '../helpers/server.ts'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..')
const cli = join(root, 'dist/cli/main.js')

t.before(async () => {
  // npm test builds first; a bare `tap` run builds here.
  if (!existsSync(cli)) await run('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: root })
})

function start(args: string[]): { child: ReturnType<typeof spawn>; banner: Promise<string>; exit: Promise<number | null> } {
  const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  const banner = new Promise<string>((resolveBanner, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString()
      if (out.includes('macOS:')) resolveBanner(out)
    })
    child.on('exit', () => {
      reject(new Error(`exited before the banner: ${out}`))
    })
  })
  const exit = new Promise<number | null>((resolveExit) => child.on('exit', (code) => {
    resolveExit(code)
  }))
  return { child, banner, exit }
}

t.test('serve prints how to mount, serves libnfs, and stops on SIGTERM', async (t) => {
  const state = t.testdir({})
  const s = start(['serve', '--port', '0', '--host', '127.0.0.1', '--state-dir', state, '--log-level', 'warn'])
  t.teardown(() => s.child.kill('SIGKILL'))
  const banner = await s.banner
  const port = /port (\d+)/.exec(banner)?.[1]
  t.ok(port !== undefined && Number(port) > 0, `listening on ${port ?? '?'}`)
  const url = `nfs://127.0.0.1/export?nfsport=${port ?? ''}&mountport=${port ?? ''}`
  t.ok(banner.includes(`libnfs:  ${url}`), 'prints the libnfs URL')
  t.match(banner, /Linux: {3}mount -t nfs -o vers=3,tcp,port=\d+,mountport=\d+,mountproto=tcp 127/, 'no nolock: the server has a lock manager')
  t.match(banner, /PORTMAP \+ NLM \+ NSM on/)
  const ls = await run('nfs-ls', [url])
  t.equal(ls.stdout, '', 'libnfs lists the empty embedded export')
  const maps = await dumpPorts({ host: '127.0.0.1', portmapPort: Number(port), protocol: 'tcp' })
  t.same([...new Set(maps.filter((m) => m.prog === 100021).map((m) => m.vers))].sort(), [1, 3, 4], 'NLM versions 1, 3 and 4 in our portmapper')
  t.ok(maps.some((m) => m.prog === 100024 && m.vers === 1 && m.protocol === 'udp'), 'and NSM')
  s.child.kill('SIGTERM')
  t.equal(await s.exit, 0, 'exits 0 on SIGTERM')
})

t.test('a bad export list is refused with file, line and column', async (t) => {
  const dir = t.testdir({})
  const file = join(dir, 'exports')
  await writeFile(file, '/ok *(rw,backend=memory)\n/bad *(rw,bogus,backend=memory)\n')
  const r = await run(process.execPath, [cli, 'serve', '--exports', file, '--port', '0', '--state-dir', dir]).then(
    () => null,
    (e: unknown) => e as { code: number; stderr: string },
  )
  t.equal(r?.code, 1)
  t.match(r?.stderr, `${file}:2:`)
  t.match(r?.stderr, /bogus/)
})

t.test('unknown commands and --help', async (t) => {
  const bad = await run(process.execPath, [cli, 'frobnicate']).then(
    () => null,
    (e: unknown) => e as { code: number; stderr: string },
  )
  t.equal(bad?.code, 2)
  t.match(bad?.stderr, /unknown command "frobnicate"/)
  const help = await run(process.execPath, [cli, '--help'])
  t.match(help.stdout, /usage: tsnfs <command>/)
})

t.test('--no-lock serves without NLM and tells clients nolock; bad --grace is refused', async (t) => {
  const state = t.testdir({})
  const s = start(['serve', '--port', '0', '--host', '127.0.0.1', '--state-dir', state, '--log-level', 'warn', '--no-lock'])
  t.teardown(() => s.child.kill('SIGKILL'))
  const banner = await s.banner
  t.notMatch(banner, /NLM/)
  t.match(banner, /mountproto=tcp,nolock 127/)
  t.match(banner, /,nolocks,resvport/)
  const port = /port (\d+)/.exec(banner)?.[1] ?? ''
  const programs = new Set((await dumpPorts({ host: '127.0.0.1', portmapPort: Number(port), protocol: 'tcp' })).map((m) => m.prog))
  t.ok(programs.has(100003) && !programs.has(100021) && !programs.has(100024), 'the portmapper names NFS but neither NLM nor NSM')
  const pm = await run('nfs-ls', [`nfs://127.0.0.1/export?nfsport=${port}&mountport=${port}`])
  t.equal(pm.stdout, '', 'NFS still serves')
  s.child.kill('SIGTERM')
  t.equal(await s.exit, 0)
  for (const args of [['--grace', 'soon'], ['--grace', '-1'], ['--no-lock', '--grace', '5']]) {
    const r = await run(process.execPath, [cli, 'serve', '--port', '0', '--state-dir', state, ...args]).then(
      () => null,
      (e: unknown) => e as { code: number; stderr: string },
    )
    t.equal(r?.code, 1, `serve ${args.join(' ')} fails`)
    t.match(r?.stderr, /--grace|--no-lock/)
  }
})
