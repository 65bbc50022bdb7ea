/**
 * Opens the image named in argv[2] read-write with ImageFile, prints "held", and waits to be
 * killed: the other process of the image-lock tests. Run with `node --import tsx`.
 */
import { ImageFile } from '../../vfs/engine/blockdev/image-file.ts'

const path = process.argv[2] ?? ''
const image = await ImageFile.open(path)
process.stdout.write(`held ${image.size}\n`)
setInterval(() => undefined, 1 << 30)
