/*
 * Renames racing across two servers on one database, with change
 * notifications (PostgreSQL's cache mode): the cases are in
 * rename-race-cases.ts.
 */
import t from 'tap'
import { dropTemplate } from './meta-helpers.ts'
import { renameRaceCases } from './rename-race-cases.ts'

t.teardown(dropTemplate)

renameRaceCases(t)
