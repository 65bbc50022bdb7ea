/* The device table and device-qualified ids of crossmnt (vfs/local/devices.ts). */
import fs from 'node:fs'
import path from 'node:path'
import t from 'tap'
import { DeviceTable, MAX_CROSSED_INO, MAX_DEVICES, qualify, splitId } from '../../vfs/local/devices.ts'

const BIT63 = 1n << 63n

t.test('ids: the root device keeps raw inodes, others carry k above bit 47', async t => {
  t.equal(qualify(0, 2n), 2n, 'root device: the inode itself')
  t.equal(qualify(0, BIT63 - 1n), BIT63 - 1n)
  t.equal(qualify(0, BIT63), null, 'a root-device inode with bit 63 set has no id')
  t.equal(qualify(0, BIT63 | 5n), null)
  t.equal(qualify(1, 2n), BIT63 | (1n << 47n) | 2n)
  t.equal(qualify(MAX_DEVICES, MAX_CROSSED_INO), (1n << 64n) - 1n, 'the largest id')
  t.equal(qualify(3, MAX_CROSSED_INO + 1n), null, 'an inode >= 2^47 on a crossed device has no id')
  t.equal(qualify(3, 1n << 60n), null)
  t.equal(qualify(MAX_DEVICES + 1, 2n), null, 'no k beyond 65535')
  t.equal(qualify(-1, 2n), null)
  for (const [k, ino] of [[0, 0n], [0, 12345n], [0, BIT63 - 1n], [1, 0n], [7, 99n], [MAX_DEVICES, MAX_CROSSED_INO]] as const) {
    const id = qualify(k, ino)
    t.not(id, null)
    if (id !== null) t.strictSame(splitId(id), { k, ino }, `(${k}, ${ino}) round-trips`)
  }
  t.not(qualify(1, 2n), qualify(2, 2n), 'one inode number on two devices: two ids')
  t.not(qualify(0, 2n), qualify(1, 2n))
})

t.test('the table assigns dense numbers, durably, and keeps them across loads', async t => {
  const dir = t.testdir()
  const one = new DeviceTable(dir)
  t.equal(one.size, 0)
  t.equal(fs.existsSync(path.join(dir, 'devices')), false, 'nothing written before a device is seen')
  t.equal(one.find(39n), undefined)
  t.equal(one.numberOf(39n), 1)
  t.equal(fs.readFileSync(path.join(dir, 'devices'), 'latin1'), 'tsnfs-devices 1\n1 39\n', 'on disk before numberOf returned')
  t.equal(one.numberOf(39n), 1, 'the same device, the same number')
  t.equal(one.numberOf(0x1_0000_0005n), 2, 'a 64-bit st_dev')
  t.equal(one.numberOf(40n), 3)
  t.equal(one.devOf(2), 0x1_0000_0005n)
  t.equal(one.devOf(4), undefined)
  t.equal(fs.existsSync(path.join(dir, 'devices.tmp')), false, 'the temporary file was renamed into place')
  const two = new DeviceTable(dir)
  t.equal(two.size, 3)
  t.equal(two.find(39n), 1)
  t.equal(two.find(0x1_0000_0005n), 2)
  t.equal(two.numberOf(41n), 4, 'a new device after a reload gets the next number')
  t.equal(two.devOf(3), 40n)
  t.equal(new DeviceTable(dir).find(41n), 4)
})

t.test('a full table gives no number (the object is not exportable), and stays as it was', async t => {
  const dir = t.testdir()
  const small = new DeviceTable(dir, { max: 2 })
  t.equal(small.numberOf(10n), 1)
  t.equal(small.numberOf(11n), 2)
  t.equal(small.numberOf(12n), null, 'full')
  t.equal(small.numberOf(10n), 1, 'known devices still answer')
  t.equal(new DeviceTable(dir).find(12n), undefined, 'nothing was written for the refused device')

  // The real limit: 65535 devices on disk, then one more.
  const big = t.testdir()
  const rows: string[] = ['tsnfs-devices 1']
  for (let k = 1; k <= MAX_DEVICES; k++) rows.push(`${k} ${1000 + k}`)
  fs.writeFileSync(path.join(big, 'devices'), `${rows.join('\n')}\n`)
  const full = new DeviceTable(big)
  t.equal(full.size, MAX_DEVICES)
  t.equal(full.find(1000n + BigInt(MAX_DEVICES)), MAX_DEVICES)
  t.equal(full.numberOf(5n), null, 'device 65536 gets no number')
  t.equal(new DeviceTable(big, { max: 1_000_000 }).numberOf(6n), null, 'max cannot raise the limit')
})

t.test('a damaged table refuses to load instead of renumbering devices', async t => {
  const bad = ['', 'garbage\n', 'tsnfs-devices 1\n1 39', 'tsnfs-devices 1\n2 39\n', 'tsnfs-devices 1\n1 39\n2 39\n', 'tsnfs-devices 1\n1 x\n', 'tsnfs-devices 2\n1 39\n']
  for (const text of bad) {
    const dir = t.testdir()
    fs.writeFileSync(path.join(dir, 'devices'), text)
    t.throws(() => new DeviceTable(dir), { message: /devices: (not a device table|bad line)/ }, JSON.stringify(text))
  }
  const dir = t.testdir()
  fs.writeFileSync(path.join(dir, 'devices'), 'tsnfs-devices 1\n')
  t.equal(new DeviceTable(dir).numberOf(7n), 1, 'an empty table is fine')
})
