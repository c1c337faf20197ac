// The node's proof-of-work challenge, as the page meets it: each connection's `welcome`
// brings one, a Web Worker (challenge-worker.js) solves it while the user fills in the
// form, and the connection's first `join` carries the solution. A person rarely waits: the
// form takes longer than the work.
//
// `reset(challenge)` starts on a connection's challenge (null: the node asks none);
// `proof()` resolves to the solution once solved (null if it could not be); `spent()` marks
// the connection as having passed, so later joins carry nothing.

const WORKER_URL = new URL('./challenge-worker.js', import.meta.url);

export class Prover {
  constructor() {
    this.worker = null;
    this.pending = null; // Promise of the current challenge's proof
    this.passed = true; // nothing to prove until a welcome asks it
    this.took = null; // ms the last solve took, for the curious (and the tests)
  }

  /** Whether the next join must carry a proof. */
  get needed() {
    return !this.passed;
  }

  /** A new connection's challenge (or a fresh one after a refusal); null: none asked. */
  reset(challenge) {
    this.worker?.terminate();
    this.worker = null;
    if (!challenge) {
      this.passed = true;
      this.pending = null;
      return;
    }
    this.passed = false;
    const worker = new Worker(WORKER_URL);
    this.worker = worker;
    this.pending = new Promise((resolve) => {
      worker.onmessage = (event) => {
        const { proof, took, error } = event.data;
        if (error) console.warn('tandem: the challenge could not be solved:', error);
        this.took = took ?? null;
        worker.terminate();
        if (this.worker === worker) this.worker = null;
        resolve(proof ?? null);
      };
      worker.onerror = (event) => {
        console.warn('tandem: the challenge worker failed:', event.message);
        worker.terminate();
        if (this.worker === worker) this.worker = null;
        resolve(null);
      };
    });
    worker.postMessage({ challenge });
  }

  /** The proof for the current challenge, once solved. */
  proof() {
    return this.pending ?? Promise.resolve(null);
  }

  /** The join with the proof is sent: this connection is not asked again. */
  spent() {
    this.passed = true;
    this.pending = null;
  }

  /** The node could not check `proof` (its store was unreachable): it may be sent again. */
  restore(proof) {
    this.passed = false;
    this.pending = Promise.resolve(proof);
  }
}
