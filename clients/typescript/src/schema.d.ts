// Generated from docs/worker-api.yaml by scripts/generate.mjs; do not edit.

export interface paths {
    "/api/health": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Liveness; needs no token.
         * @description Liveness; needs no token.
         */
        get: operations["health"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/ready": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Readiness; the database answers and the server is not shutting down. Needs no token.
         * @description Readiness; the database answers and the server is not shutting down. Needs no token.
         */
        get: operations["ready"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/metrics": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Prometheus metrics (jobs by state, claims, lease expiries, render time); only with --metrics.
         * @description Prometheus metrics (jobs by state, claims, lease expiries, render time); only with --metrics.
         */
        get: operations["metrics"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/worker/v1/hello": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * A worker signs on and says what it can do.
         * @description A worker signs on and says what it can do.
         */
        post: operations["hello"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/worker/v1/ping": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Checks the worker token without side effects.
         * @description Checks the worker token without side effects.
         */
        get: operations["ping"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/worker/v1/jobs/claim": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Long poll for a job.
         * @description Answers 200 with a lease as soon as a job is queued (a submission wakes waiting claims at
         *     once), or 204 after `wait` seconds without one. `wait` is capped at the hello reply's
         *     `claim_wait_max_s`.
         */
        post: operations["claim"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/worker/v1/state": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * The worker's own state, sent when it changes, for the dashboard.
         * @description Whether the worker is paused and why (the kind of reason; the program that caused it only when the
         *     owner set share.program_names = true), until when if that is known, and whether it keeps a warm Blender. Best effort: a worker that cannot
         *     send it says it again at its next change. Also counts as seeing the worker.
         */
        post: operations["reportState"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/worker/v1/jobs/claim/cancel": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Ends the worker's waiting claim now, with a 204 and no job.
         * @description A worker sends this when its owner pauses it (a game started) or it quits, so that a claim already
         *     waiting at the server cannot hand it a job it must not start.
         */
        post: operations["cancelClaim"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/worker/v1/jobs/{job_id}/heartbeat": {
        parameters: {
            query?: never;
            header?: never;
            path: {
                job_id: components["parameters"]["JobId"];
            };
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Renews the lease and reports progress; the reply may ask the worker to cancel.
         * @description Renews the lease and reports progress; the reply may ask the worker to cancel.
         */
        post: operations["heartbeat"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/worker/v1/jobs/{job_id}/outputs/{name}": {
        parameters: {
            query?: never;
            header?: never;
            path: {
                job_id: components["parameters"]["JobId"];
                name: components["parameters"]["OutputName"];
            };
            cookie?: never;
        };
        get?: never;
        /**
         * Uploads one output file, streamed, with its SHA-256.
         * @description The body is the file's bytes with a Content-Length (chunked bodies are refused with 411).
         *     Uploading the same content again is a no-op success (200, `stored: false`).
         */
        put: operations["putOutput"];
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/worker/v1/jobs/{job_id}/outputs/{name}/uploads": {
        parameters: {
            query?: never;
            header?: never;
            path: {
                job_id: components["parameters"]["JobId"];
                name: components["parameters"]["OutputName"];
            };
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Where to upload an output straight to storage (a server on S3; protocol 1.1).
         * @description Sent when the hello reply has `upload_part_size`. `parts` is the SHA-256 of each part of that size
         *     (a file of up to one part: one). The answer is presigned PUTs for the parts not `done`; each PUT
         *     must carry the part's `headers` (its checksum, which storage enforces). `direct: false`: PUT the
         *     file to the server as in protocol 1. `stored: true`: the server has it already.
         */
        post: operations["planOutputUpload"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/worker/v1/jobs/{job_id}/outputs/{name}/commit": {
        parameters: {
            query?: never;
            header?: never;
            path: {
                job_id: components["parameters"]["JobId"];
                name: components["parameters"]["OutputName"];
            };
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * The parts are in storage; the server checks size and SHA-256, then counts the output.
         * @description `etags` maps each part's number to the ETag its PUT answered. An `upload_gone` error (422) means the
         *     storage lost or refused the upload: plan it again without `upload_id`.
         */
        post: operations["commitOutputUpload"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/worker/v1/jobs/{job_id}/complete": {
        parameters: {
            query?: never;
            header?: never;
            path: {
                job_id: components["parameters"]["JobId"];
            };
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Finishes the job; every named output must have been uploaded.
         * @description Finishes the job; every named output must have been uploaded.
         */
        post: operations["complete"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/worker/v1/jobs/{job_id}/fail": {
        parameters: {
            query?: never;
            header?: never;
            path: {
                job_id: components["parameters"]["JobId"];
            };
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Fails this attempt; a retryable failure with attempts left requeues the job.
         * @description Fails this attempt; a retryable failure with attempts left requeues the job.
         */
        post: operations["fail"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/worker/v1/jobs/{job_id}/release": {
        parameters: {
            query?: never;
            header?: never;
            path: {
                job_id: components["parameters"]["JobId"];
            };
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Gives the job back unfinished (the owner started a game, the worker quits); no attempt is counted.
         * @description Gives the job back unfinished (the owner started a game, the worker quits); no attempt is counted.
         */
        post: operations["release"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/worker/v1/assets/{sha256}": {
        parameters: {
            query?: never;
            header?: never;
            path: {
                sha256: components["schemas"]["Sha256"];
            };
            cookie?: never;
        };
        /**
         * Downloads a scene stored on the job server.
         * @description Downloads a scene stored on the job server.
         */
        get: operations["getAsset"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/jobs": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Lists jobs a page at a time, newest first; with updated_since, the changed ones, oldest change first.
         * @description Pass `next_cursor` back as `cursor` for the next page; it is null after the last. To follow changes,
         *     poll with `updated_since` set to the largest `updated` seen (less a few seconds: several server
         *     processes' clocks differ slightly), or use webhooks.
         */
        get: operations["listJobs"];
        put?: never;
        /**
         * Submits a job.
         * @description Queues a job and answers 201 with it. Send an `Idempotency-Key` (a UUID per job your app means to make): a retry of the same request, say by a serverless function that timed out, then answers 200 with the job the first one made, with `Idempotent-Replayed: true`, instead of queuing a second. A key is kept for 24 hours; sent again with another body it is refused (422, `idempotency_key_reused`).
         */
        post: operations["submitJob"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/jobs/{job_id}": {
        parameters: {
            query?: never;
            header?: never;
            path: {
                job_id: components["parameters"]["JobId"];
            };
            cookie?: never;
        };
        /**
         * A job's state, progress and outputs, with an ETag.
         * @description A job's state, progress and outputs, with an ETag.
         */
        get: operations["getJob"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/jobs/{job_id}/cancel": {
        parameters: {
            query?: never;
            header?: never;
            path: {
                job_id: components["parameters"]["JobId"];
            };
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Cancels a job; a worker rendering it stops at its next heartbeat.
         * @description Cancels a job; a worker rendering it stops at its next heartbeat.
         */
        post: operations["cancelJob"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/jobs/{job_id}/outputs/{name}": {
        parameters: {
            query?: never;
            header?: never;
            path: {
                job_id: components["parameters"]["JobId"];
                name: components["parameters"]["OutputName"];
            };
            cookie?: never;
        };
        /**
         * Downloads one output (HEAD and Range work; with S3 storage, a redirect to a presigned URL).
         * @description Downloads one output (HEAD and Range work; with S3 storage, a redirect to a presigned URL).
         */
        get: operations["getOutput"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/assets": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        /**
         * Stores a scene (.blend or .zip) on the job server for jobs to name.
         * @description Stores a scene (.blend or .zip) on the job server for jobs to name.
         */
        put: operations["putAsset"];
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/assets/uploads": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Where to upload a scene straight to storage (a server on S3).
         * @description As an output's upload plan, for the web app: `direct: false` means PUT the scene to /api/v1/assets;
         *     `stored: true` means the server has it (the answer then carries its `url`).
         */
        post: operations["planAssetUpload"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/assets/{sha256}/commit": {
        parameters: {
            query?: never;
            header?: never;
            path: {
                sha256: components["schemas"]["Sha256"];
            };
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * The scene is in storage; the server checks it and answers what a job names it by.
         * @description The scene is in storage; the server checks it and answers what a job names it by.
         */
        post: operations["commitAssetUpload"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/workers": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * The workers that signed on, most recently seen first.
         * @description The workers that signed on, most recently seen first.
         */
        get: operations["listWorkers"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
}
export type webhooks = Record<string, never>;
export interface components {
    schemas: {
        Error: {
            error: components["schemas"]["ErrorCode"];
            /** @description A sentence for the log or the person, saying what happened. */
            message: string;
            /** @description Dotted path of the value at fault, e.g. render.samples, or a header's name. */
            field?: string;
        };
        Health: {
            ok: boolean;
            version: string;
            protocol: number;
        };
        Ready: {
            ok: boolean;
            message?: string;
        };
        Sha256: string;
        /** @description One plain file name; Windows' reserved names (CON, NUL, COM1...) are refused. */
        OutputName: string;
        /** @enum {string} */
        JobState: "queued" | "leased" | "done" | "failed" | "canceled";
        Hello: {
            name: string;
            os: string;
            app_version: string;
            blender?: {
                version: string;
                path?: string;
            }[];
            gpus?: {
                name: string;
                vram_bytes?: number;
                uuid?: string;
            }[];
            devices?: string[];
            /** @description The id this worker had until now (it says hello again after adding a Blender). The server keeps the id when it knows it under the same name, else gives a new one. */
            worker_id?: string;
        };
        HelloReply: {
            worker_id: string;
            protocol: number;
            server_version: string;
            claim_wait_max_s: number;
            lease_ttl_s: number;
            heartbeat_interval_s: number;
            /** @description The newest homefarm release; older workers show that an update exists. */
            latest_worker_version?: string;
            /** @description Workers older than this claim nothing and ask their owner to update. */
            min_worker_version?: string;
            /** @description Set when the server keeps outputs in S3: upload them straight to storage (planOutputUpload), in parts of this many bytes. */
            upload_part_size?: number;
        };
        Lease: {
            job_id: string;
            lease_id: string;
            /** @description The lease lasts this long after the claim and after each heartbeat. */
            ttl_s: number;
            expires_at: components["schemas"]["Timestamp"];
            attempt: number;
            spec: components["schemas"]["StoredJobSpec"];
            /** @description Outputs an earlier attempt already uploaded; the worker renders only the frames still missing. */
            outputs: {
                name: components["schemas"]["OutputName"];
                sha256: components["schemas"]["Sha256"];
                size?: number;
            }[];
        };
        SceneAsset: {
            /**
             * @description An http(s) URL, or a path on the job server (`/api/worker/v1/assets/<sha256>`). The worker
             *     sends its token only to the job server's own origin.
             */
            url: string;
            sha256: components["schemas"]["Sha256"];
            size: number;
            /**
             * @default blend
             * @enum {string}
             */
            type?: "blend" | "zip";
            /** @description For a zip: the path of the .blend inside it. */
            blend?: string;
        };
        RenderSettings: {
            /**
             * @default CYCLES
             * @enum {string}
             */
            engine?: "CYCLES" | "BLENDER_EEVEE" | "BLENDER_WORKBENCH";
            /**
             * @default AUTO
             * @enum {string}
             */
            device?: "AUTO" | "GPU" | "CPU";
            samples?: number;
            /** @description Width and height in pixels; left out: as the scene says. */
            resolution?: number[];
            /** @default 100 */
            resolution_percentage?: number;
            /**
             * @description Frames and ranges, such as `1-10,15`, or one frame number; at most 10,000 frames.
             * @default 1
             */
            frames?: string | number;
            /**
             * @default PNG
             * @enum {string}
             */
            format?: "PNG" | "JPEG" | "OPEN_EXR" | "FFMPEG";
            /** @description The camera object to render from. */
            camera?: string;
            /** @description The scene in the .blend, if not the active one. */
            scene?: string;
            /** @description Cycles denoising on or off. Left out: as the scene says, where this Blender has OpenImageDenoise (a build without it renders without and says so in the job's warnings). */
            denoise?: boolean;
        };
        /** @description What a done job's scene lacked, or tried (docs/scenes.md): a missing library, linked data-block, image, font, cache, clip or sound (path as the scene names it), a path the scene named for writing that was pointed into the job's folder (redirected), or a note of the render (render). */
        Warning: {
            /** @enum {string} */
            kind: "library" | "linked" | "image" | "font" | "cache" | "clip" | "sound" | "redirected" | "render";
            path: string;
            name?: string;
            message?: string;
        };
        Timeouts: {
            /** @default 3600 */
            total_s?: number;
            /** @default 600 */
            silence_s?: number;
        };
        /** @description A job to submit. Every field but `scene` has a default. */
        JobSpec: {
            scene: components["schemas"]["SceneAsset"];
            render?: components["schemas"]["RenderSettings"];
            timeouts?: components["schemas"]["Timeouts"];
            /** @default 0 */
            priority?: number;
            /** @default 3 */
            max_attempts?: number;
            /** @description The web app's own reference, echoed back. */
            tag?: string;
            blender?: {
                /** @example 4.2 */
                min_version?: string;
            };
            overrides?: components["schemas"]["Overrides"];
            /**
             * @description A missing library, linked data-block, image, font, cache or clip fails the job.
             * @default false
             */
            strict?: boolean;
            /**
             * Format: uri
             * @description Told of the job's end (signed POST), besides the server's own webhook.
             */
            webhook_url?: string;
        };
        Vector3: number[];
        Color: number[];
        /**
         * @description Template parameters, applied by the bundled script before rendering. Keys are names in the
         *     .blend; a name that is not there fails the job with the field's path. Rotations are in degrees.
         */
        Overrides: {
            objects?: {
                [key: string]: {
                    location?: components["schemas"]["Vector3"];
                    rotation?: components["schemas"]["Vector3"];
                    scale?: components["schemas"]["Vector3"];
                    visible?: boolean;
                };
            };
            materials?: {
                [key: string]: {
                    base_color?: components["schemas"]["Color"];
                    metallic?: number;
                    roughness?: number;
                    emission?: components["schemas"]["Color"];
                    emission_strength?: number;
                };
            };
            /** @description A text object's name and its new body. */
            texts?: {
                [key: string]: string;
            };
            /** @description An image datablock's name and the job asset that replaces its file. */
            images?: {
                [key: string]: {
                    url: string;
                    sha256: components["schemas"]["Sha256"];
                    size: number;
                };
            };
            collections?: {
                [key: string]: {
                    visible: boolean;
                };
            };
        };
        Progress: {
            /** @enum {string} */
            stage?: "downloading" | "rendering" | "uploading";
            frame?: number;
            frames_done?: number;
            frame_count?: number;
            sample?: number;
            samples?: number;
            percent?: number;
            eta_s?: number;
            gpu?: components["schemas"]["GpuFigures"];
            message?: string;
        };
        StoredOutput: {
            name: components["schemas"]["OutputName"];
            sha256: components["schemas"]["Sha256"];
            size: number;
            stored: boolean;
        };
        /**
         * @description Without `parts`: a probe, answered with how to upload (`direct`, `part_size`) or that the file is
         *     stored already. With `parts`: the plan for the parts not `done`.
         */
        UploadRequest: {
            /** @description An output's upload: the job's lease. */
            lease_id?: string;
            sha256: components["schemas"]["Sha256"];
            size: number;
            /** @description The SHA-256 of each part (the file cut in parts of upload_part_size bytes). */
            parts?: components["schemas"]["Sha256"][];
            /** @description Resuming: the upload the last plan began. */
            upload_id?: string | null;
            /** @description Resuming; the parts already sent. */
            done?: number[];
        };
        UploadPlan: {
            direct: boolean;
            stored?: boolean;
            /** @description null: one plain PUT; else a multipart upload. */
            upload_id?: string | null;
            part_size?: number;
            expires_at?: components["schemas"]["Timestamp"];
            parts?: {
                number: number;
                url: string;
                headers: {
                    [key: string]: string;
                };
            }[];
            name?: string;
            sha256?: components["schemas"]["Sha256"];
            size?: number;
            url?: string;
        };
        UploadCommit: {
            lease_id?: string;
            sha256: components["schemas"]["Sha256"];
            size: number;
            parts: components["schemas"]["Sha256"][];
            upload_id?: string | null;
            /** @description Each part's number to the ETag its PUT answered (a multipart upload). */
            etags?: {
                [key: string]: string;
            };
        };
        StateReply: {
            state: components["schemas"]["JobState"];
        };
        JobSummary: {
            id: string;
            state: components["schemas"]["JobState"];
            tag: string | null;
            priority: number;
            attempts: number;
            max_attempts: number;
            worker_id: string | null;
            progress: components["schemas"]["Progress"] | null;
            error: string | null;
            stats: components["schemas"]["JobStats"] | null;
            warnings: components["schemas"]["Warning"][];
            created: components["schemas"]["Timestamp"];
            updated: components["schemas"]["Timestamp"];
            claimed: components["schemas"]["Timestamp"] | null;
            finished: components["schemas"]["Timestamp"] | null;
            /** @description When retention deletes the outputs. */
            outputs_expire_at: components["schemas"]["Timestamp"] | null;
            /** @description When retention deleted them. */
            outputs_deleted: components["schemas"]["Timestamp"] | null;
            spec: components["schemas"]["StoredJobSpec"];
        };
        Job: components["schemas"]["JobSummary"] & {
            outputs: {
                name: components["schemas"]["OutputName"];
                sha256: components["schemas"]["Sha256"];
                size: number;
                /** @description Where to download it (presigned for an hour, with S3). */
                url: string;
            }[];
            log_tail: string | null;
            /** @description The deliveries of the job's end to webhooks. */
            webhooks?: {
                url: string;
                /** @enum {string} */
                event: "job.done" | "job.failed" | "job.canceled";
                attempts: number;
                delivered: components["schemas"]["Timestamp"] | null;
                next_attempt: components["schemas"]["Timestamp"] | null;
                last_error: string | null;
            }[];
        };
        InvalidError: {
            error: components["schemas"]["ErrorCode"];
            message: string;
            /** @description Dotted path of the value at fault, e.g. render.samples, or a header's name. */
            field: string;
        };
        /**
         * @description invalid: a value breaks the protocol (see field). bad_json, bad_request, short_body, length_required, too_large: the body. unauthorized: no valid token of the right kind. forbidden: the server takes requests only through its CDN (X-Origin-Verify), or a dashboard change lacked its page's CSRF token. not_found: no such job, output or scene. lease_lost, canceled: the worker drops the job. conflict: the call does not fit the job's state. upload_gone: storage lost the upload; plan it again. idempotency_key_reused: that key came before with another request. unavailable: database or storage away; retry. internal: the server failed.
         * @enum {string}
         */
        ErrorCode: "invalid" | "bad_json" | "bad_request" | "short_body" | "length_required" | "too_large" | "unauthorized" | "forbidden" | "not_found" | "method_not_allowed" | "lease_lost" | "canceled" | "conflict" | "upload_gone" | "idempotency_key_reused" | "unavailable" | "internal";
        /** @description Unix time: seconds since 1970-01-01 UTC, with a fraction. */
        Timestamp: number;
        /** @description The first GPU's figures when the heartbeat was sent; a figure the GPU does not give is left out. */
        GpuFigures: {
            index?: number;
            name?: string;
            /** @description Percent busy. */
            load?: number;
            /** @description Bytes. */
            vram_used?: number;
            /** @description Bytes. */
            vram_total?: number;
            temp_c?: number;
            power_w?: number;
        };
        /** @description What the worker measured; it may add figures of its own (at most 64 in all). */
        JobStats: {
            download_s?: number;
            render_s?: number;
            total_s?: number;
            frames?: number;
            /** @description The Blender version that rendered. */
            blender?: string;
            /** @description Outputs already uploaded when the render ended. */
            uploaded_during_render?: number;
            /** @description With an NVIDIA GPU: the energy the GPU used for the job. */
            gpu_energy_wh?: number;
            energy_source?: string;
        } & {
            [key: string]: number | string | boolean | null;
        };
        /** @description The render settings as stored: the defaults filled in. */
        StoredRenderSettings: {
            /** @enum {string} */
            engine: "CYCLES" | "BLENDER_EEVEE" | "BLENDER_WORKBENCH";
            /** @enum {string} */
            device: "AUTO" | "GPU" | "CPU";
            samples?: number;
            /** @description Width and height in pixels; left out: as the scene says. */
            resolution?: number[];
            resolution_percentage: number;
            /** @description Frames and ranges, such as `1-10,15`. */
            frames: string;
            /** @enum {string} */
            format: "PNG" | "JPEG" | "OPEN_EXR" | "FFMPEG";
            /** @description The camera object to render from. */
            camera?: string;
            /** @description The scene in the .blend, if not the active one. */
            scene?: string;
            /** @description Cycles denoising on or off. Left out: as the scene says, where this Blender has OpenImageDenoise (a build without it renders without and says so in the job's warnings). */
            denoise?: boolean;
        };
        StoredTimeouts: {
            total_s: number;
            silence_s: number;
        };
        /** @description A job's spec as the server stores it and sends it back: the defaults filled in. */
        StoredJobSpec: {
            scene: components["schemas"]["SceneAsset"];
            render: components["schemas"]["StoredRenderSettings"];
            timeouts: components["schemas"]["StoredTimeouts"];
            priority: number;
            max_attempts: number;
            /** @description The web app's own reference, echoed back. */
            tag?: string;
            blender?: {
                /** @example 4.2 */
                min_version?: string;
            };
            overrides?: components["schemas"]["Overrides"];
            /** @description A missing library, linked data-block, image, font, cache or clip fails the job. */
            strict?: boolean;
            /**
             * Format: uri
             * @description Told of the job's end (signed POST), besides the server's own webhook.
             */
            webhook_url?: string;
        };
    };
    responses: {
        /** @description The request cannot be served as sent; `error` and `message` say why. */
        Error: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/json": components["schemas"]["Error"];
            };
        };
        /** @description The request breaks the protocol; `field` names the value at fault. */
        Invalid: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/json": components["schemas"]["InvalidError"];
            };
        };
        /** @description No valid token of the right kind. */
        Unauthorized: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/json": components["schemas"]["Error"];
            };
        };
        /** @description No such job or file. */
        NotFound: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/json": components["schemas"]["Error"];
            };
        };
        /**
         * @description The lease is not the job's current one (`lease_lost`: it expired and the job went to another
         *     worker), the job was canceled (`canceled`), or the call conflicts with the job's state (`conflict`).
         *     The worker drops the job at once and sends nothing more for that lease.
         */
        LeaseLost: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/json": components["schemas"]["Error"];
            };
        };
        /** @description The body is not valid JSON (`bad_json`), its Content-Length is wrong, or it ended early (`bad_request`, `short_body`). */
        BadRequest: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/json": components["schemas"]["Error"];
            };
        };
        /** @description The body came chunked; send a Content-Length (`length_required`). */
        LengthRequired: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/json": components["schemas"]["Error"];
            };
        };
        /** @description The body is over the limit for this call (`too_large`). */
        TooLarge: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/json": components["schemas"]["Error"];
            };
        };
        /** @description The server failed (`internal`); its log has the detail. Retry with backoff. */
        Internal: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/json": components["schemas"]["Error"];
            };
        };
        /** @description The server cannot reach its database or storage right now (`unavailable`); retry after Retry-After. */
        Unavailable: {
            headers: {
                /** @description Seconds to wait. */
                "Retry-After"?: number;
                [name: string]: unknown;
            };
            content: {
                "application/json": components["schemas"]["Error"];
            };
        };
        /** @description Any other status, such as 429, 502 or 504 from a proxy in front of the server; retry with backoff. */
        Other: {
            headers: {
                [name: string]: unknown;
            };
            content?: never;
        };
    };
    parameters: {
        JobId: string;
        OutputName: components["schemas"]["OutputName"];
    };
    requestBodies: never;
    headers: never;
    pathItems: never;
}
export type $defs = Record<string, never>;
export interface operations {
    health: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The server runs. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Health"];
                };
            };
            500: components["responses"]["Internal"];
            default: components["responses"]["Other"];
        };
    };
    ready: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Ready for traffic. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Ready"];
                };
            };
            500: components["responses"]["Internal"];
            /** @description The database does not answer, or the server is shutting down (SIGTERM). */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Ready"];
                };
            };
            default: components["responses"]["Other"];
        };
    };
    metrics: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The Prometheus text format. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "text/plain": string;
                };
            };
            /** @description The server runs without --metrics. */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            500: components["responses"]["Internal"];
            503: components["responses"]["Unavailable"];
            default: components["responses"]["Other"];
        };
    };
    hello: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["Hello"];
            };
        };
        responses: {
            /** @description Signed on. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["HelloReply"];
                };
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthorized"];
            411: components["responses"]["LengthRequired"];
            413: components["responses"]["TooLarge"];
            422: components["responses"]["Invalid"];
            500: components["responses"]["Internal"];
            503: components["responses"]["Unavailable"];
            default: components["responses"]["Other"];
        };
    };
    ping: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The token is good. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        ok: boolean;
                        protocol: number;
                    };
                };
            };
            401: components["responses"]["Unauthorized"];
            500: components["responses"]["Internal"];
            503: components["responses"]["Unavailable"];
            default: components["responses"]["Other"];
        };
    };
    claim: {
        parameters: {
            query?: {
                wait?: number;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": {
                    worker_id: string;
                };
            };
        };
        responses: {
            /** @description A job, leased to this worker. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Lease"];
                };
            };
            /** @description No job came during the wait, or the worker is held from the server's dashboard (then at once, with X-Homefarm-Held-Until). */
            204: {
                headers: {
                    /** @description The worker is held from the dashboard until this Unix time, or until released (`release`). Claim again at that time, or within a minute. */
                    "X-Homefarm-Held-Until"?: string;
                    [name: string]: unknown;
                };
                content?: never;
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthorized"];
            411: components["responses"]["LengthRequired"];
            413: components["responses"]["TooLarge"];
            422: components["responses"]["Invalid"];
            500: components["responses"]["Internal"];
            503: components["responses"]["Unavailable"];
            default: components["responses"]["Other"];
        };
    };
    reportState: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": {
                    worker_id: string;
                    paused?: boolean;
                    /** @enum {string} */
                    pause_kind?: "manual" | "game" | "gpu" | "fullscreen" | "active" | "schedule" | "thermal" | "disk" | "hold-off" | "update";
                    until?: components["schemas"]["Timestamp"];
                    warm?: boolean;
                    /** @description The program that paused the worker, sent only when its owner shares program names. */
                    program?: string;
                };
            };
        };
        responses: {
            /** @description Noted. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        ok: boolean;
                    };
                };
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthorized"];
            411: components["responses"]["LengthRequired"];
            413: components["responses"]["TooLarge"];
            422: components["responses"]["Invalid"];
            default: components["responses"]["Other"];
        };
    };
    cancelClaim: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": {
                    worker_id: string;
                };
            };
        };
        responses: {
            /** @description Whether a waiting claim was ended. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        canceled: boolean;
                    };
                };
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthorized"];
            411: components["responses"]["LengthRequired"];
            413: components["responses"]["TooLarge"];
            422: components["responses"]["Invalid"];
            500: components["responses"]["Internal"];
            503: components["responses"]["Unavailable"];
            default: components["responses"]["Other"];
        };
    };
    heartbeat: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                job_id: components["parameters"]["JobId"];
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": {
                    lease_id: string;
                    progress?: components["schemas"]["Progress"];
                };
            };
        };
        responses: {
            /** @description Renewed, or canceled. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        /** @description true: stop rendering and drop the job */
                        cancel: boolean;
                        ttl_s: number;
                    };
                };
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthorized"];
            404: components["responses"]["NotFound"];
            409: components["responses"]["LeaseLost"];
            411: components["responses"]["LengthRequired"];
            413: components["responses"]["TooLarge"];
            422: components["responses"]["Invalid"];
            500: components["responses"]["Internal"];
            503: components["responses"]["Unavailable"];
            default: components["responses"]["Other"];
        };
    };
    putOutput: {
        parameters: {
            query?: never;
            header: {
                "X-Lease-Id": string;
                "X-Content-SHA256": components["schemas"]["Sha256"];
            };
            path: {
                job_id: components["parameters"]["JobId"];
                name: components["parameters"]["OutputName"];
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/octet-stream": Blob;
            };
        };
        responses: {
            /** @description Already stored with this content. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["StoredOutput"];
                };
            };
            /** @description Stored. */
            201: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["StoredOutput"];
                };
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthorized"];
            404: components["responses"]["NotFound"];
            409: components["responses"]["LeaseLost"];
            411: components["responses"]["Error"];
            413: components["responses"]["TooLarge"];
            422: components["responses"]["Invalid"];
            500: components["responses"]["Internal"];
            503: components["responses"]["Unavailable"];
            default: components["responses"]["Other"];
        };
    };
    planOutputUpload: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                job_id: components["parameters"]["JobId"];
                name: components["parameters"]["OutputName"];
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["UploadRequest"];
            };
        };
        responses: {
            /** @description The plan, or that nothing needs sending. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["UploadPlan"];
                };
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthorized"];
            404: components["responses"]["NotFound"];
            409: components["responses"]["LeaseLost"];
            411: components["responses"]["LengthRequired"];
            413: components["responses"]["TooLarge"];
            422: components["responses"]["Invalid"];
            500: components["responses"]["Internal"];
            503: components["responses"]["Unavailable"];
            default: components["responses"]["Other"];
        };
    };
    commitOutputUpload: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                job_id: components["parameters"]["JobId"];
                name: components["parameters"]["OutputName"];
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["UploadCommit"];
            };
        };
        responses: {
            /** @description Checked and counted. */
            201: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["StoredOutput"];
                };
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthorized"];
            404: components["responses"]["NotFound"];
            409: components["responses"]["LeaseLost"];
            411: components["responses"]["LengthRequired"];
            413: components["responses"]["TooLarge"];
            422: components["responses"]["Invalid"];
            500: components["responses"]["Internal"];
            503: components["responses"]["Unavailable"];
            default: components["responses"]["Other"];
        };
    };
    complete: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                job_id: components["parameters"]["JobId"];
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": {
                    lease_id: string;
                    outputs: components["schemas"]["OutputName"][];
                    /** @description Figures of the run (stage times in seconds, frames, Blender version). */
                    stats?: {
                        [key: string]: number | string;
                    };
                    warnings?: components["schemas"]["Warning"][];
                };
            };
        };
        responses: {
            /** @description Done. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["StateReply"];
                };
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthorized"];
            404: components["responses"]["NotFound"];
            409: components["responses"]["LeaseLost"];
            411: components["responses"]["LengthRequired"];
            413: components["responses"]["TooLarge"];
            422: components["responses"]["Invalid"];
            500: components["responses"]["Internal"];
            503: components["responses"]["Unavailable"];
            default: components["responses"]["Other"];
        };
    };
    fail: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                job_id: components["parameters"]["JobId"];
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": {
                    lease_id: string;
                    reason: string;
                    log_tail?: string;
                    /** @default false */
                    retryable?: boolean;
                    /** @description The scene was saved by this Blender version, newer than the worker's. The server queues the job again for workers that have it; the attempt does not count. */
                    needs_blender?: string;
                    /**
                     * @description With needs_blender: this worker is getting that Blender (installing it, or asking its owner to), so the server keeps the job queued for it even when no worker has that Blender yet. It tells its new Blender with a new hello.
                     * @default false
                     */
                    installing_blender?: boolean;
                };
            };
        };
        responses: {
            /** @description The job's new state (queued or failed). */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["StateReply"];
                };
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthorized"];
            404: components["responses"]["NotFound"];
            409: components["responses"]["LeaseLost"];
            411: components["responses"]["LengthRequired"];
            413: components["responses"]["TooLarge"];
            422: components["responses"]["Invalid"];
            500: components["responses"]["Internal"];
            503: components["responses"]["Unavailable"];
            default: components["responses"]["Other"];
        };
    };
    release: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                job_id: components["parameters"]["JobId"];
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": {
                    lease_id: string;
                    reason?: string;
                };
            };
        };
        responses: {
            /** @description Queued again. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["StateReply"];
                };
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthorized"];
            404: components["responses"]["NotFound"];
            409: components["responses"]["LeaseLost"];
            411: components["responses"]["LengthRequired"];
            413: components["responses"]["TooLarge"];
            422: components["responses"]["Invalid"];
            500: components["responses"]["Internal"];
            503: components["responses"]["Unavailable"];
            default: components["responses"]["Other"];
        };
    };
    getAsset: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                sha256: components["schemas"]["Sha256"];
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The bytes. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/octet-stream": Blob;
                };
            };
            401: components["responses"]["Unauthorized"];
            404: components["responses"]["NotFound"];
            500: components["responses"]["Internal"];
            503: components["responses"]["Unavailable"];
            default: components["responses"]["Other"];
        };
    };
    listJobs: {
        parameters: {
            query?: {
                state?: components["schemas"]["JobState"];
                /** @description Jobs per page, 1 to 1000; outside that range the call is refused (422). */
                limit?: number;
                cursor?: string;
                /** @description Only jobs changed at or after this time, oldest change first. */
                updated_since?: components["schemas"]["Timestamp"];
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The jobs. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        jobs: components["schemas"]["JobSummary"][];
                        next_cursor: string | null;
                    };
                };
            };
            401: components["responses"]["Unauthorized"];
            422: components["responses"]["Invalid"];
            500: components["responses"]["Internal"];
            503: components["responses"]["Unavailable"];
            default: components["responses"]["Other"];
        };
    };
    submitJob: {
        parameters: {
            query?: never;
            header?: {
                /** @description Makes a retried submission return the job the first one made. */
                "Idempotency-Key"?: string;
            };
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["JobSpec"];
            };
        };
        responses: {
            /** @description A retry under an Idempotency-Key already used for this request: the job it made. */
            200: {
                headers: {
                    /** @description Always `true`. */
                    "Idempotent-Replayed"?: "true";
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Job"];
                };
            };
            /** @description Queued. */
            201: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Job"];
                };
            };
            400: components["responses"]["Error"];
            401: components["responses"]["Unauthorized"];
            411: components["responses"]["LengthRequired"];
            413: components["responses"]["TooLarge"];
            422: components["responses"]["Invalid"];
            500: components["responses"]["Internal"];
            503: components["responses"]["Unavailable"];
            default: components["responses"]["Other"];
        };
    };
    getJob: {
        parameters: {
            query?: never;
            header?: {
                "If-None-Match"?: string;
            };
            path: {
                job_id: components["parameters"]["JobId"];
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The job. */
            200: {
                headers: {
                    ETag?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Job"];
                };
            };
            /** @description Unchanged since the ETag sent in If-None-Match. */
            304: {
                headers: {
                    [name: string]: unknown;
                };
                content?: never;
            };
            401: components["responses"]["Unauthorized"];
            404: components["responses"]["NotFound"];
            500: components["responses"]["Internal"];
            503: components["responses"]["Unavailable"];
            default: components["responses"]["Other"];
        };
    };
    cancelJob: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                job_id: components["parameters"]["JobId"];
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Canceled. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Job"];
                };
            };
            401: components["responses"]["Unauthorized"];
            404: components["responses"]["NotFound"];
            409: components["responses"]["Error"];
            500: components["responses"]["Internal"];
            503: components["responses"]["Unavailable"];
            default: components["responses"]["Other"];
        };
    };
    getOutput: {
        parameters: {
            query?: never;
            header?: {
                Range?: string;
            };
            path: {
                job_id: components["parameters"]["JobId"];
                name: components["parameters"]["OutputName"];
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The file; its ETag is its SHA-256. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "image/png": Blob;
                    "image/jpeg": Blob;
                    "application/octet-stream": Blob;
                };
            };
            /** @description The requested range. */
            206: {
                headers: {
                    [name: string]: unknown;
                };
                content?: never;
            };
            /** @description The server keeps outputs in S3; Location is a presigned URL valid for an hour. */
            307: {
                headers: {
                    [name: string]: unknown;
                };
                content?: never;
            };
            401: components["responses"]["Unauthorized"];
            404: components["responses"]["NotFound"];
            /** @description The range is outside the file. */
            416: {
                headers: {
                    [name: string]: unknown;
                };
                content?: never;
            };
            500: components["responses"]["Internal"];
            503: components["responses"]["Unavailable"];
            default: components["responses"]["Other"];
        };
    };
    putAsset: {
        parameters: {
            query?: never;
            header?: {
                "X-Content-SHA256"?: components["schemas"]["Sha256"];
            };
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/octet-stream": Blob;
            };
        };
        responses: {
            /** @description Stored; use `url`, `sha256` and `size` as a job's `scene`. */
            201: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        sha256: components["schemas"]["Sha256"];
                        size: number;
                        url: string;
                    };
                };
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthorized"];
            411: components["responses"]["LengthRequired"];
            413: components["responses"]["TooLarge"];
            422: components["responses"]["Invalid"];
            500: components["responses"]["Internal"];
            503: components["responses"]["Unavailable"];
            default: components["responses"]["Other"];
        };
    };
    planAssetUpload: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["UploadRequest"];
            };
        };
        responses: {
            /** @description The plan, or the stored scene. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["UploadPlan"];
                };
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthorized"];
            411: components["responses"]["LengthRequired"];
            413: components["responses"]["TooLarge"];
            422: components["responses"]["Invalid"];
            500: components["responses"]["Internal"];
            503: components["responses"]["Unavailable"];
            default: components["responses"]["Other"];
        };
    };
    commitAssetUpload: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                sha256: components["schemas"]["Sha256"];
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["UploadCommit"];
            };
        };
        responses: {
            /** @description Checked; use `url`, `sha256` and `size` as a job's `scene`. */
            201: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        sha256: components["schemas"]["Sha256"];
                        size: number;
                        url: string;
                    };
                };
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthorized"];
            404: components["responses"]["NotFound"];
            411: components["responses"]["LengthRequired"];
            413: components["responses"]["TooLarge"];
            422: components["responses"]["Invalid"];
            500: components["responses"]["Internal"];
            503: components["responses"]["Unavailable"];
            default: components["responses"]["Other"];
        };
    };
    listWorkers: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The workers. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        workers: {
                            id: string;
                            name: string;
                            info: components["schemas"]["Hello"];
                            last_seen: number;
                        }[];
                    };
                };
            };
            401: components["responses"]["Unauthorized"];
            500: components["responses"]["Internal"];
            503: components["responses"]["Unavailable"];
            default: components["responses"]["Other"];
        };
    };
}
