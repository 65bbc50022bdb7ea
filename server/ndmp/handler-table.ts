/* The registered NDMP handlers, by version and message code (server/ndmp/service-types.ts). */
import type { NdmpHandler, NdmpRegistry, NdmpVersion } from './service-types.ts'

export class NdmpHandlerTable implements NdmpRegistry {
  private readonly byKey = new Map<string, NdmpHandler>()

  register<A, R>(version: NdmpVersion, code: number, handler: NdmpHandler<A, R>): void {
    this.byKey.set(`${version}:${code}`, handler)
  }

  get(version: NdmpVersion, code: number): NdmpHandler | undefined {
    return this.byKey.get(`${version}:${code}`)
  }
}
