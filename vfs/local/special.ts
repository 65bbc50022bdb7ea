/*
 * MKNOD (RFC 1813 §3.3.11) without mknod(2): Node has none. FIFOs and
 * device nodes are made by coreutils `mkfifo`/`mknod` (a process: slow, but
 * MKNOD is rare), sockets by binding a UNIX socket. Each is made under a
 * temporary ASCII name in the target directory (argv and sun_path cannot
 * carry arbitrary name bytes, and sun_path holds 108 bytes), then hard-linked
 * to the requested name, which fails with EEXIST instead of replacing
 * anything, and the temporary name is removed.
 */
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import net from 'node:net'
import { VfsError } from '../errors.ts'
import { fdPath, link, pidFdPath, toVfsError, unlink } from './sys.ts'

export type SpecialType = 'block' | 'char' | 'socket' | 'fifo'

/**
 * Runs `cmd` with the directory fd given to the child as its fd 3, so `/proc/self/fd/3`
 * names exactly our pinned directory, not whatever holds our fd number by then.
 */
function run(cmd: string, args: string[], dirFd: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe', dirFd], timeout: 10_000 })
    let stderr = ''
    child.stderr?.setEncoding('utf8').on('data', (d: string) => {
      stderr += d
    })
    child.on('error', (err: Error) => {
      // The tool is missing: this host cannot make the node at all.
      if ((err as { code?: unknown }).code === 'ENOENT') reject(new VfsError('ENOTSUP', `${cmd} not available`, { cause: err }))
      else reject(new VfsError('EIO', err.message, { cause: err }))
    })
    child.on('close', (code) => {
      if (code === 0) resolve()
      else if (/Operation not permitted/.test(stderr)) reject(new VfsError('EPERM', stderr.trim()))
      else reject(new VfsError('EIO', `${cmd}: exit ${String(code)}: ${stderr.trim()}`))
    })
  })
}

function bindSocket(path: string): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.once('error', reject)
    srv.listen(path, () => {
      resolve(srv)
    })
  })
}

/** Makes the node at `dirFd`/`name`; the mode is set by the caller afterwards. */
export async function makeSpecial(dirFd: number, name: Buffer, type: SpecialType, rdev: { major: number; minor: number }): Promise<void> {
  const tmp = `.tsnfs-${randomBytes(6).toString('hex')}`
  let server: net.Server | null = null
  try {
    const inChild = `/proc/self/fd/3/${tmp}`
    if (type === 'fifo') await run('mkfifo', ['-m', '600', inChild], dirFd)
    // In this process the pinned fd is ours for the whole call.
    else if (type === 'socket') server = await bindSocket(pidFdPath(dirFd, tmp))
    else await run('mknod', ['-m', '600', inChild, type === 'block' ? 'b' : 'c', `${rdev.major}`, `${rdev.minor}`], dirFd)
  } catch (err) {
    throw toVfsError(err)
  }
  try {
    await link(fdPath(dirFd, Buffer.from(tmp)), fdPath(dirFd, name))
  } catch (err) {
    throw toVfsError(err)
  } finally {
    // libuv removes a bound socket's path when the server closes; other nodes we unlink ourselves.
    const srv = server
    if (srv !== null) {
      await new Promise<void>(resolve => {
        srv.close(() => {
          resolve()
        })
      })
    }
    else await unlink(fdPath(dirFd, Buffer.from(tmp))).catch(() => undefined)
  }
}
