// The local object store's files, as a test that damages them on purpose sees them.
import { open, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Flips a byte of an object in place, wherever the local store keeps it: its file, or (for a
 * segment linked from WAL objects) the part file its manifest names.
 */
export async function flipStoredByte(file: string, at: number): Promise<void> {
  let target = file;
  let position = at;
  try {
    await stat(file);
  } catch {
    const dir = `${file}.skiff-parts`;
    const m = JSON.parse(await readFile(join(dir, 'manifest'), 'utf8')) as { files: string[]; spans: Array<[number, number, number]> };
    let start = 0;
    const span = m.spans.find(([, , length]) => (start += length) > at)!;
    target = join(dir, m.files[span[0]]);
    position = span[1] + at - (start - span[2]);
  }
  const fh = await open(target, 'r+');
  try {
    const b = Buffer.alloc(1);
    await fh.read(b, 0, 1, position);
    b[0] ^= 0xff;
    await fh.write(b, 0, 1, position);
  } finally {
    await fh.close();
  }
}
