// End to end against a real `homefarm serve` (tests/test_typescript_client.py starts one, with a worker):
// a scene uploaded, a job submitted twice under one idempotency key, waited for, its output downloaded and
// checked. Prints one JSON line for the Python test to read; exits 1 on any failure.
import { readFile } from "node:fs/promises";
import { createHash, randomUUID } from "node:crypto";
import { createHomefarm, HomefarmError } from "../src/index.js";

function need(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

const homefarm = createHomefarm({ baseUrl: need("HOMEFARM_URL"), appToken: need("HOMEFARM_APP_TOKEN") });
const scene = await homefarm.uploadScene(new Uint8Array(await readFile(need("HOMEFARM_SCENE"))));
const key = randomUUID();
const spec = { scene, render: { samples: 4, resolution: [64, 64], frames: "1" }, tag: "e2e" } as const;
const first = await homefarm.submitJob({ ...spec, render: { ...spec.render, resolution: [64, 64] } }, key);
const retried = await homefarm.submitJob({ ...spec, render: { ...spec.render, resolution: [64, 64] } }, key);
if (retried.id !== first.id) throw new Error(`a retried submission made job ${retried.id} beside ${first.id}`);

let refused = "";
try {
  await homefarm.submitJob({ scene, render: { samples: 0 } });
} catch (error) {
  if (!(error instanceof HomefarmError)) throw error;
  refused = `${error.status} ${error.code} ${error.field ?? ""}`;
}

const job = await homefarm.waitForJob(first.id, { timeoutMs: 120_000, pollMs: 200 });
if (job.state !== "done") throw new Error(`job ${job.id} ended ${job.state}: ${job.error ?? ""}`);
const output = job.outputs[0];
if (!output) throw new Error("the done job lists no output");
const bytes = await homefarm.downloadOutput(job.id, output.name);
const sha256 = createHash("sha256").update(bytes).digest("hex");
if (sha256 !== output.sha256) throw new Error(`the download's SHA-256 is ${sha256}, not ${output.sha256}`);
console.log(JSON.stringify({ id: job.id, state: job.state, output: output.name, size: bytes.byteLength, refused,
                             render_s: job.stats?.render_s ?? null }));
