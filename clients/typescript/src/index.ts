// A typed client for homefarm's job server: the web app's side (`/api/v1`, the app token).
// The types come from docs/worker-api.yaml (src/schema.d.ts, generated); the calls go through openapi-fetch.
import createClient from "openapi-fetch";
import type { components, paths } from "./schema.js";

export type { components, paths };
export type JobSpec = components["schemas"]["JobSpec"];
export type Job = components["schemas"]["Job"];
export type JobSummary = components["schemas"]["JobSummary"];
export type JobState = components["schemas"]["JobState"];
export type SceneAsset = components["schemas"]["SceneAsset"];
export type ErrorCode = components["schemas"]["ErrorCode"];

type ErrorBody = components["schemas"]["Error"];

/** A call the server refused, or a server that did not answer as the protocol says. */
export class HomefarmError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code: ErrorCode | "unexpected",
    readonly field?: string,
  ) {
    super(message);
    this.name = "HomefarmError";
  }

  /** Whether trying again later may succeed (the server or a proxy was busy or away). */
  get retryable(): boolean {
    return this.status === 429 || this.status >= 500;
  }
}

function fail(response: Response, body: unknown): never {
  const error = (body ?? {}) as Partial<ErrorBody>;
  const code = error.error ?? "unexpected";
  const message = error.message ?? `the job server answered ${response.status} ${response.statusText}`;
  throw new HomefarmError(message, response.status, code, error.field);
}

async function sha256Hex(data: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", data);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

export interface HomefarmOptions {
  /** The job server's address, with its base path if it has one: `https://render.example.com`. */
  baseUrl: string;
  /** The web app's token (it starts with `hfa_`). Keep it on your backend, never in a browser. */
  appToken: string;
  fetch?: typeof fetch;
}

export interface WaitOptions {
  /** Give up after this long (default: 1 hour). */
  timeoutMs?: number;
  /** Ask again this often (default: 1 s); webhooks tell you without asking. */
  pollMs?: number;
  signal?: AbortSignal;
}

const ENDED: ReadonlySet<JobState> = new Set(["done", "failed", "canceled"]);

export function createHomefarm(options: HomefarmOptions) {
  const api = createClient<paths>({
    baseUrl: options.baseUrl.replace(/\/+$/, ""),
    headers: { Authorization: `Bearer ${options.appToken}` },
    ...(options.fetch ? { fetch: options.fetch } : {}),
  });

  return {
    /** The underlying openapi-fetch client, typed for every operation (the worker's included). */
    api,

    /** Stores a scene (a .blend or a .zip) and returns what a job names it by. Straight to storage in
     * checked parts when the server keeps scenes in S3; else through the server. */
    async uploadScene(bytes: Uint8Array<ArrayBuffer>): Promise<SceneAsset> {
      const sha256 = await sha256Hex(bytes);
      const size = bytes.byteLength;
      const probe = await api.POST("/api/v1/assets/uploads", { body: { sha256, size } });
      const how = probe.data ?? fail(probe.response, probe.error);
      if (how.stored && how.url) return { url: how.url, sha256, size };
      if (!how.direct) {
        const put = await api.PUT("/api/v1/assets", {
          body: new Blob([bytes]),
          params: { header: { "X-Content-SHA256": sha256 } },
          bodySerializer: (body: Blob) => body,
          headers: { "Content-Type": "application/octet-stream" },
        });
        const stored = put.data ?? fail(put.response, put.error);
        return { url: stored.url, sha256, size };
      }
      const partSize = how.part_size ?? size;
      const parts: string[] = [];
      for (let at = 0; at < size || parts.length === 0; at += partSize) {
        parts.push(await sha256Hex(bytes.subarray(at, Math.min(at + partSize, size))));
      }
      const planned = await api.POST("/api/v1/assets/uploads", { body: { sha256, size, parts } });
      const plan = planned.data ?? fail(planned.response, planned.error);
      const etags: Record<string, string> = {};
      for (const part of plan.parts ?? []) {
        const start = (part.number - 1) * partSize;
        const sent = await (options.fetch ?? fetch)(part.url, {
          method: "PUT",
          headers: part.headers,
          body: bytes.subarray(start, Math.min(start + partSize, size)),
        });
        if (!sent.ok) fail(sent, undefined);
        etags[String(part.number)] = sent.headers.get("ETag") ?? "";
      }
      const committed = await api.POST("/api/v1/assets/{sha256}/commit", {
        params: { path: { sha256 } },
        body: { sha256, size, parts, upload_id: plan.upload_id ?? null, etags },
      });
      const done = committed.data ?? fail(committed.response, committed.error);
      return { url: done.url, sha256, size };
    },

    /** Queues a job. Pass an idempotency key (a UUID per job your app means to make): a retried call
     * then answers with the job the first call made instead of making a second. */
    async submitJob(spec: JobSpec, idempotencyKey?: string): Promise<Job> {
      const { data, error, response } = await api.POST("/api/v1/jobs", {
        body: spec,
        params: { header: idempotencyKey === undefined ? {} : { "Idempotency-Key": idempotencyKey } },
      });
      return data ?? fail(response, error);
    },

    async getJob(id: string): Promise<Job> {
      const { data, error, response } = await api.GET("/api/v1/jobs/{job_id}", { params: { path: { job_id: id } } });
      return data ?? fail(response, error);
    },

    async cancelJob(id: string): Promise<Job> {
      const { data, error, response } = await api.POST("/api/v1/jobs/{job_id}/cancel", {
        params: { path: { job_id: id } },
      });
      return data ?? fail(response, error);
    },

    /** Waits until the job is done, failed or canceled, and returns it as it ended. */
    async waitForJob(id: string, wait: WaitOptions = {}): Promise<Job> {
      const deadline = Date.now() + (wait.timeoutMs ?? 3_600_000);
      for (;;) {
        const job = await this.getJob(id);
        if (ENDED.has(job.state)) return job;
        if (Date.now() > deadline) {
          throw new HomefarmError(`job ${id} is still ${job.state} after the time given to wait`, 0, "unexpected");
        }
        wait.signal?.throwIfAborted();
        await new Promise((resolve) => setTimeout(resolve, wait.pollMs ?? 1000));
      }
    },

    /** One output's bytes (from storage, when the server keeps outputs in S3). */
    async downloadOutput(id: string, name: string): Promise<Uint8Array> {
      const { data, error, response } = await api.GET("/api/v1/jobs/{job_id}/outputs/{name}", {
        params: { path: { job_id: id, name } },
        parseAs: "arrayBuffer",
      });
      return new Uint8Array(data ?? fail(response, error));
    },
  };
}

export type Homefarm = ReturnType<typeof createHomefarm>;
