/*
 * The backup types CONFIG_GET_BUTYPE_INFO announces, with the default environment a DMA may
 * override and what each can do (draft §5.5 butype attrs). The DATA service implements these:
 * keep the two in step. "tar" is our POSIX pax stream (backup/); there is no "dump".
 */
import * as v3 from '../../xdr/generated/ndmp3.ts'
import * as v4 from '../../xdr/generated/ndmp4.ts'

export interface NdmpButype {
  name: string
  defaultEnv: ReadonlyArray<{ name: string; value: string }>
  /** ndmp4.x NDMP4_BUTYPE_* bits. */
  attrsV4: number
  /** ndmp3.x NDMP3_BUTYPE_* bits. */
  attrsV3: number
}

export const NDMP_BUTYPES: readonly NdmpButype[] = [
  {
    name: 'tar',
    defaultEnv: [
      { name: 'TYPE', value: 'tar' },
      { name: 'HIST', value: 'y' },
      { name: 'UPDATE', value: 'y' },
      { name: 'LEVEL', value: '0' },
      { name: 'DIRECT', value: 'y' },
    ],
    // File history by path (FH_ADD_FILE), levels, restore of a file list, direct access by fh_info.
    attrsV4:
      v4.NDMP4_BUTYPE_BACKUP_FH_FILE |
      v4.NDMP4_BUTYPE_BACKUP_INCREMENTAL |
      v4.NDMP4_BUTYPE_RECOVER_INCREMENTAL |
      v4.NDMP4_BUTYPE_RECOVER_FILELIST |
      v4.NDMP4_BUTYPE_BACKUP_DIRECT |
      v4.NDMP4_BUTYPE_RECOVER_DIRECT |
      v4.NDMP4_BUTYPE_RECOVER_FILEHIST |
      v4.NDMP4_BUTYPE_RECOVER_FH_FILE,
    attrsV3:
      v3.NDMP3_BUTYPE_BACKUP_FILE_HISTORY |
      v3.NDMP3_BUTYPE_BACKUP_INCREMENTAL |
      v3.NDMP3_BUTYPE_RECOVER_INCREMENTAL |
      v3.NDMP3_BUTYPE_RECOVER_FILELIST |
      v3.NDMP3_BUTYPE_BACKUP_DIRECT |
      v3.NDMP3_BUTYPE_RECOVER_DIRECT |
      v3.NDMP3_BUTYPE_RECOVER_FILE_HISTORY,
  },
]
