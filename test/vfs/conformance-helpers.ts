/* Helpers shared by the VFS conformance suite files. */
import type { Test } from 'tap'
import type { Errno } from '../../vfs/errors.ts'
import type { FileRef, Owner, Timespec, Vfs } from '../../vfs/types.ts'

export type MakeVfs = () => Promise<Vfs> | Vfs

export const b = (s: string): Buffer => Buffer.from(s)

/** New objects belong to the test process, so a host-directory backend can honour it without root. */
export const OWNER: Owner = { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 }

export async function fresh(t: Test, makeVfs: MakeVfs): Promise<Vfs> {
  const vfs = await makeVfs()
  t.teardown(() => vfs.close())
  return vfs
}

export async function rejectsCode(t: Test, p: Promise<unknown>, code: Errno, msg?: string): Promise<void> {
  await t.rejects(p, { code }, msg ?? code)
}

export async function mkfile(vfs: Vfs, dir: FileRef, name: string, content?: string): Promise<FileRef> {
  const { ref } = await vfs.create(dir, b(name), { how: 'guarded', attr: { mode: 0o644 } }, OWNER)
  if (content !== undefined) await vfs.write(ref, 0n, b(content), 'file_sync')
  return ref
}

export async function mkdir(vfs: Vfs, dir: FileRef, name: string): Promise<FileRef> {
  return (await vfs.mkdir(dir, b(name), { mode: 0o755 }, OWNER)).ref
}

export async function readAll(vfs: Vfs, f: FileRef): Promise<string> {
  const { size } = await vfs.getattr(f)
  return (await vfs.read(f, 0n, Number(size))).data.toString()
}

/** Negative, zero or positive as a is before, equal to or after b. */
export function cmpTime(a: Timespec, b: Timespec): number {
  return a.sec !== b.sec ? a.sec - b.sec : a.nsec - b.nsec
}

/** Host filesystems stamp times from a coarse clock (a jiffy); wait past it so a change is visible. */
export function tick(): Promise<void> {
  return new Promise(resolve => setTimeout(resolve, 30))
}

