/*
 * The cluster backend's name and link limits. The checks on a name's bytes
 * are the ones every backend applies (vfs/names.ts).
 */
export { checkName, checkNewName, checkOldName, isDot, isDotDot, NAME_MAX } from '../../names.ts'

/** pathconf linkmax: links to one file, and subdirectories of one directory. */
export const LINK_MAX = 32000
/** POSIX PATH_MAX: a longer symlink target is ENAMETOOLONG, as on Linux. */
export const PATH_MAX = 4096
