// Solves the node's proof-of-work challenge (ALTCHA v2, PBKDF2/SHA-256, deterministic
// mode) off the page's main thread, so that the page stays responsive while it works.
//
// In:  {challenge}, the `challenge` of `welcome` (or of a `challenge_*` error).
// Out: {proof, took} once solved: `proof` is what `join.proof` carries (base64 of the JSON
//      {challenge, solution}), `took` the milliseconds it took; or {error} when the
//      challenge is not one this worker can solve.
//
// The counter runs from 0 until PBKDF2(password = nonce ‖ counter as 4 big-endian bytes,
// salt, cost iterations) begins with the key prefix. WebCrypto derives each key at native
// speed, so a browser pays about what any other client pays.

self.onmessage = async (event) => {
  const { challenge } = event.data;
  try {
    const started = performance.now();
    const solution = await solve(challenge.parameters);
    const took = performance.now() - started;
    solution.time = Math.round(took * 10) / 10;
    const proof = btoa(JSON.stringify({ challenge, solution }));
    self.postMessage({ proof, took });
  } catch (error) {
    self.postMessage({ error: String(error?.message ?? error) });
  }
};

async function solve(parameters) {
  const algorithm = String(parameters.algorithm).toUpperCase();
  const hashes = { 'PBKDF2/SHA-256': 'SHA-256', 'PBKDF2/SHA-384': 'SHA-384', 'PBKDF2/SHA-512': 'SHA-512' };
  const hash = hashes[algorithm];
  if (!hash) throw new Error(`unsupported algorithm ${parameters.algorithm}`);
  const nonce = fromHex(parameters.nonce);
  const salt = fromHex(parameters.salt);
  const prefix = String(parameters.keyPrefix).toLowerCase();
  const bits = parameters.keyLength * 8;
  const password = new Uint8Array(nonce.length + 4);
  password.set(nonce);
  const view = new DataView(password.buffer);
  for (let counter = 0; counter <= 0xffffffff; counter += 1) {
    view.setUint32(nonce.length, counter);
    const key = await crypto.subtle.importKey('raw', password, 'PBKDF2', false, ['deriveBits']);
    const derived = new Uint8Array(await crypto.subtle.deriveBits(
      { name: 'PBKDF2', hash, salt, iterations: parameters.cost }, key, bits));
    const hex = toHex(derived);
    if (hex.startsWith(prefix)) return { counter, derivedKey: hex };
  }
  throw new Error('no solution');
}

function fromHex(text) {
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i += 1) out[i] = parseInt(text.substr(i * 2, 2), 16);
  return out;
}

function toHex(bytes) {
  let out = '';
  for (const byte of bytes) out += byte.toString(16).padStart(2, '0');
  return out;
}
