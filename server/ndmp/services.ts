/*
 * The NDMP services the server registers at start, besides CONNECT and CONFIG (which the
 * session layer answers itself). The TAPE, MOVER and DATA services add themselves here:
 * one import and one entry each (server/ndmp/service-types.ts is what they code against).
 */
import { moverService } from './mover/service.ts'
import type { NdmpService } from './service-types.ts'
import { tapeService } from './tape/service.ts'
import { DataService } from './data/service.ts'
import { serverDataDeps } from './data/deps.ts'

export const NDMP_SERVICES: readonly NdmpService[] = [tapeService, moverService, new DataService(serverDataDeps())]
