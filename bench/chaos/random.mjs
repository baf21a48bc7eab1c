// Seeded randomness: one independent stream per concern, so that e.g. the sinks' decisions do
// not shift the messages generated. A new concern takes a new stream name, never an existing one.

function splitmix32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x9e3779b9) >>> 0;
    let t = a ^ (a >>> 16);
    t = Math.imul(t, 0x21f0aaad);
    t ^= t >>> 15;
    t = Math.imul(t, 0x735a2d97);
    t ^= t >>> 15;
    return (t >>> 0) / 4294967296;
  };
}

export function rngStream(seed, name) {
  let h = 2166136261 ^ (seed >>> 0) ^ Math.floor(seed / 2 ** 32);
  for (const ch of name) h = Math.imul(h ^ ch.charCodeAt(0), 16777619);
  const r = splitmix32(h);
  for (let i = 0; i < 8; i++) r();
  return r;
}

export const between = (rng, lo, hi) => lo + rng() * (hi - lo);
