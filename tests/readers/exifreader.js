// What Civitai sees in an image: exifreader's tags, UserComment decoded as Civitai's
// src/utils/encoding-helpers.ts does. Usage: node exifreader.js FILE  (NODE_PATH must reach exifreader)
'use strict';
const fs = require('fs');

let ExifReader;
try {
  ExifReader = require('exifreader');
} catch (err) {
  process.stdout.write(JSON.stringify({ missing: String(err) }));
  process.exit(0);
}

function decodeUserComment(bytes) {
  if (bytes.length < 8) return '';
  const header = new TextDecoder('ascii').decode(bytes.subarray(0, 8));
  const body = bytes.subarray(8);
  if (header.startsWith('ASCII')) return new TextDecoder('ascii').decode(body);
  if (header.startsWith('UTF8')) return new TextDecoder('utf-8').decode(body);
  if (body.length >= 2 && body[0] === 0xfe && body[1] === 0xff) {
    return new TextDecoder('utf-16be').decode(body.subarray(2)).replace(/\0/g, '');
  }
  if (body.length >= 2 && body[0] === 0xff && body[1] === 0xfe) {
    return new TextDecoder('utf-16le').decode(body.subarray(2)).replace(/\0/g, '');
  }
  let even = 0;
  let odd = 0;
  for (let i = 0; i + 1 < Math.min(body.length, 1000); i += 2) {
    if (body[i] === 0) even++;
    if (body[i + 1] === 0) odd++;
  }
  return new TextDecoder(odd > even ? 'utf-16le' : 'utf-16be').decode(body).replace(/\0/g, '');
}

(async () => {
  const buf = fs.readFileSync(process.argv[2]);
  const tags = await ExifReader.load(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length),
    { includeUnknown: true, async: true });
  const out = {};
  for (const [name, tag] of Object.entries(tags)) {
    const value = tag && tag.value;
    if (name === 'UserComment') {
      // Civitai: Uint8Array.from(tags.UserComment.value); an XMP UserComment replaces the EXIF bytes.
      out.UserComment = Array.isArray(value) && typeof value[0] === 'number'
        ? decodeUserComment(Uint8Array.from(value)) : '';
    } else {
      out[name] = typeof value === 'string' ? value : (tag && tag.description !== undefined ? tag.description : value);
    }
  }
  const version = require('exifreader/package.json').version;
  process.stdout.write(JSON.stringify({ version, tags: out }));
})().catch((err) => {
  process.stdout.write(JSON.stringify({ error: String(err) }));
});
