/*
 * What a job backs up. An NDMP export is `HOST[:PORT]:/PATH`: the NDMP agent (port 10000 by
 * default, the IANA port of NDMP) and the FILESYSTEM it backs up; an IPv6 host goes in brackets.
 * `file:PATH` backs up the bytes of one host file (a stream made elsewhere, as a tar file): the
 * driver that needs no NDMP agent.
 */
import { isAbsolute, resolve } from 'node:path'
import { DmaError } from '../errors.ts'

export const NDMP_PORT = 10000

export type ExportSpec =
  | { readonly kind: 'ndmp'; readonly host: string; readonly port: number; readonly filesystem: string; readonly text: string }
  | { readonly kind: 'file'; readonly path: string; readonly text: string }

/** Parses an export; a relative file: path is taken from `base`. */
export function parseExport(text: string, base: string = process.cwd()): ExportSpec {
  if (text.startsWith('file:')) {
    const p = text.slice(5)
    if (p === '') throw new DmaError('DMA_BAD_EXPORT', 'file: needs a path')
    const path = isAbsolute(p) ? p : resolve(base, p)
    return { kind: 'file', path, text: `file:${path}` }
  }
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?:(\/.*)$/.exec(text)
  if (m === null) throw new DmaError('DMA_BAD_EXPORT', `"${text}" is not HOST[:PORT]:/PATH or file:PATH`)
  const [, host = '', portText, filesystem = '/'] = m
  const port = portText === undefined ? NDMP_PORT : Number(portText)
  if (port < 1 || port > 65535) throw new DmaError('DMA_BAD_EXPORT', `"${text}": port ${port} is outside 1-65535`)
  if (Buffer.byteLength(filesystem) > 1024) throw new DmaError('DMA_BAD_EXPORT', `"${text}": the path is over 1024 bytes`)
  return { kind: 'ndmp', host: host.replace(/^\[|\]$/g, ''), port, filesystem, text }
}

/** HOST[:PORT] (an IPv6 host in brackets) of an NDMP agent, such as tape=; the port defaults to NDMP's. */
export function hostPort(text: string): { host: string; port: number } {
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?$/.exec(text)
  return { host: (m?.[1] ?? text).replace(/^\[|\]$/g, ''), port: m?.[2] === undefined ? NDMP_PORT : Number(m[2]) }
}
