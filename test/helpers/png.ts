/**
 * Reads a PNG of 8-bit RGB or RGBA (what Chromium's screenshots are) into RGBA pixels: the
 * chunks, the zlib stream of the IDAT chunks, and the five row filters of the PNG specification.
 */

import { inflateSync } from 'node:zlib';

export interface Image {
  width: number;
  height: number;
  /** RGBA, row by row. */
  rgba: Uint8Array;
}

export function readPng(png: Buffer): Image {
  if (png.readUInt32BE(0) !== 0x89504e47) throw new Error('not a PNG');
  let at = 8;
  let width = 0;
  let height = 0;
  let channels = 0;
  const idat: Buffer[] = [];
  while (at < png.length) {
    const len = png.readUInt32BE(at);
    const type = png.toString('latin1', at + 4, at + 8);
    const data = png.subarray(at + 8, at + 8 + len);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      const depth = data[8]!;
      const colour = data[9]!;
      if (depth !== 8 || (colour !== 2 && colour !== 6) || data[12] !== 0)
        throw new Error(`PNG of depth ${depth}, colour type ${colour}: not read here`);
      channels = colour === 6 ? 4 : 3;
    } else if (type === 'IDAT') idat.push(data);
    else if (type === 'IEND') break;
    at += 12 + len;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  const cur = new Uint8Array(stride);
  const prev = new Uint8Array(stride);
  const rgba = new Uint8Array(width * height * 4);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)]!;
    const row = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    for (let i = 0; i < stride; i++) {
      const a = i >= channels ? cur[i - channels]! : 0;
      const b = prev[i]!;
      const c = i >= channels ? prev[i - channels]! : 0;
      let pred = 0;
      if (filter === 1) pred = a;
      else if (filter === 2) pred = b;
      else if (filter === 3) pred = (a + b) >> 1;
      else if (filter === 4) {
        const p = a + b - c;
        const pa = Math.abs(p - a);
        const pb = Math.abs(p - b);
        const pc = Math.abs(p - c);
        pred = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      }
      cur[i] = (row[i]! + pred) & 0xff;
    }
    for (let x = 0; x < width; x++) {
      const o = (y * width + x) * 4;
      rgba[o] = cur[x * channels]!;
      rgba[o + 1] = cur[x * channels + 1]!;
      rgba[o + 2] = cur[x * channels + 2]!;
      rgba[o + 3] = channels === 4 ? cur[x * channels + 3]! : 255;
    }
    prev.set(cur);
  }
  return { width, height, rgba };
}

/** The red, green and blue of the pixel at (x, y). */
export function pixel(img: Image, x: number, y: number): [number, number, number] {
  if (x < 0 || y < 0 || x >= img.width || y >= img.height)
    throw new Error(`(${x}, ${y}) is outside the ${img.width}x${img.height} image`);
  const o = (y * img.width + x) * 4;
  return [img.rgba[o]!, img.rgba[o + 1]!, img.rgba[o + 2]!];
}

/** Whether two colours are the same within `tolerance` in each channel. */
export function near(a: readonly number[], b: readonly number[], tolerance = 3): boolean {
  return a.every((v, k) => Math.abs(v - b[k]!) <= tolerance);
}

/**
 * How much of `colour` a pixel drawn over white has (0: white, 1: the colour itself), as an
 * antialiased edge mixes them, or -1 when the pixel is not a mix of the two (another hue): the
 * share fitted to the three channels at once, each channel within `tolerance` of the fit.
 */
export function coverage(px: readonly number[], colour: readonly number[], tolerance = 12): number {
  let num = 0;
  let den = 0;
  for (let k = 0; k < 3; k++) {
    num += (255 - px[k]!) * (255 - colour[k]!);
    den += (255 - colour[k]!) ** 2;
  }
  const share = num / den;
  for (let k = 0; k < 3; k++)
    if (Math.abs(255 - px[k]! - share * (255 - colour[k]!)) > tolerance) return -1;
  return share;
}
