"""docs/worker-api.yaml and the reference server agree: the same routes, and every answer fits its schema."""

import hashlib

import jsonschema
import pytest
import requests
import yaml
from openapi_spec_validator import validate
from support.harness import ROOT
from worker_app import protocol as P
from worker_app.server.http import ROUTES

DOC_PATH = ROOT / "docs" / "worker-api.yaml"
DOC = yaml.safe_load(DOC_PATH.read_text())


def schema_validator(schema: dict) -> jsonschema.Draft202012Validator:
    """A validator for a schema from the document; its "#/components/..." refs resolve in the document."""
    return jsonschema.Draft202012Validator({"components": DOC["components"], "allOf": [schema]})


def test_the_document_is_valid_openapi_3_1():
    validate(DOC)
    assert DOC["openapi"].startswith("3.1")


def test_routes_match_the_server():
    documented = {(method.upper(), path) for path, item in DOC["paths"].items()
                  for method in item if method in ("get", "post", "put", "delete")}
    import worker_app.server.app  # noqa: F401 - registers the routes
    served = {(method, path.replace(":path}", "}")) for method, path, _, _ in ROUTES}
    assert documented == served


def test_enums_match_the_shared_protocol_definitions():
    schemas = DOC["components"]["schemas"]
    assert tuple(schemas["RenderSettings"]["properties"]["engine"]["enum"]) == P.ENGINES
    assert tuple(schemas["RenderSettings"]["properties"]["device"]["enum"]) == P.DEVICES
    assert tuple(schemas["RenderSettings"]["properties"]["format"]["enum"]) == P.FORMATS
    assert tuple(schemas["JobState"]["enum"]) == P.JOB_STATES
    assert tuple(schemas["Progress"]["properties"]["stage"]["enum"]) == P.STAGES
    assert set(schemas["JobSpec"]["properties"]) == {"scene", "render", "timeouts", "priority",
                                                     "max_attempts", "tag", "blender", "overrides", "strict",
                                                     "webhook_url"}
    assert tuple(schemas["Warning"]["properties"]["kind"]["enum"]) == P.WARNING_KINDS
    assert set(schemas["RenderSettings"]["properties"]) == P.RenderSettings.FIELDS


@pytest.mark.parametrize("spec, valid", [
    ({"scene": {"url": "/a", "sha256": "a" * 64, "size": 1}}, True),
    ({"scene": {"url": "/a", "sha256": "a" * 64, "size": 1}, "render": {"engine": "CYCLES", "samples": 8,
                                                                      "resolution": [64, 36]}}, True),
    ({"scene": {"url": "/a", "sha256": "a" * 64, "size": 1}, "render": {"engine": "LUX"}}, False),
    ({"scene": {"url": "/a", "sha256": "a" * 64, "size": 1}, "script": "x"}, False),
    ({"scene": {"url": "/a", "sha256": "xyz", "size": 1}}, False),
])
def test_the_document_and_the_validator_agree_on_job_specs(spec, valid):
    assert schema_validator({"$ref": "#/components/schemas/JobSpec"}).is_valid(spec) is valid
    try:
        P.JobSpec.parse(spec)
        parsed = True
    except P.ValidationError:
        parsed = False
    assert parsed is valid


class Checked:
    """Calls the server and checks each JSON answer against the documented response."""

    def __init__(self, served):
        self.served = served
        self.checked = 0

    def call(self, method, path, template, token, **kwargs):
        response = requests.request(method, self.served.url + path, timeout=10,
                                    headers={"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})},
                                    **kwargs)
        operation = DOC["paths"][template][method.lower()]
        assert str(response.status_code) in operation["responses"], (method, path, response.status_code)
        documented = operation["responses"][str(response.status_code)]
        if "$ref" in documented:
            documented = DOC["components"]["responses"][documented["$ref"].rsplit("/", 1)[-1]]
        content = documented.get("content", {})
        if "application/json" in content:
            schema_validator(content["application/json"]["schema"]).validate(response.json())
            self.checked += 1
        else:
            assert not response.content or response.headers["Content-Type"] != "application/json"
        return response


def test_a_whole_job_s_answers_fit_the_document(served, tmp_path):
    api, worker = served.app_token, served.worker_token
    c = Checked(served)
    W = "/api/worker/v1"
    c.call("GET", "/api/health", "/api/health", "")
    data = b"scene bytes"
    sha = hashlib.sha256(data).hexdigest()
    asset = c.call("PUT", "/api/v1/assets", "/api/v1/assets", api, data=data,
                   headers={"X-Content-SHA256": sha}).json()
    c.call("POST", "/api/v1/jobs", "/api/v1/jobs", api, json={"render": {}})  # 422
    c.call("POST", "/api/v1/jobs", "/api/v1/jobs", api, json={
        "scene": {"url": asset["url"], "sha256": sha, "size": len(data)},
        "render": {"frames": "1-2", "samples": 4}}).json()
    c.call("GET", "/api/v1/jobs", "/api/v1/jobs", api)
    c.call("GET", W + "/ping", W + "/ping", worker)
    c.call("GET", W + "/ping", W + "/ping", api)  # 401
    hello = c.call("POST", W + "/hello", W + "/hello", worker, json={
        "name": "pc", "os": "Linux", "app_version": "0", "gpus": [{"name": "RTX", "vram_bytes": 8}]}).json()
    lease = c.call("POST", W + "/jobs/claim?wait=0", W + "/jobs/claim", worker,
                   json={"worker_id": hello["worker_id"]}).json()
    c.call("POST", W + "/jobs/claim?wait=0", W + "/jobs/claim", worker, json={"worker_id": hello["worker_id"]})
    jid, lid = lease["job_id"], lease["lease_id"]
    c.call("GET", f"{W}/assets/{sha}", W + "/assets/{sha256}", worker)
    c.call("POST", f"{W}/jobs/{jid}/heartbeat", W + "/jobs/{job_id}/heartbeat", worker,
           json={"lease_id": lid, "progress": {"stage": "rendering", "percent": 50, "frame": 1}})
    c.call("POST", f"{W}/jobs/{jid}/heartbeat", W + "/jobs/{job_id}/heartbeat", worker,
           json={"lease_id": "l_stale"})  # 409
    out_sha = hashlib.sha256(b"png").hexdigest()
    for _ in range(2):  # 201, then 200
        c.call("PUT", f"{W}/jobs/{jid}/outputs/frame_0001.png", W + "/jobs/{job_id}/outputs/{name}", worker,
               data=b"png", headers={"X-Lease-Id": lid, "X-Content-SHA256": out_sha})
    c.call("GET", f"/api/v1/jobs/{jid}", "/api/v1/jobs/{job_id}", api)
    c.call("POST", f"{W}/jobs/{jid}/complete", W + "/jobs/{job_id}/complete", worker,
           json={"lease_id": lid, "outputs": ["frame_0001.png"], "stats": {"render_s": 1.0}})
    c.call("GET", f"/api/v1/jobs/{jid}/outputs/frame_0001.png", "/api/v1/jobs/{job_id}/outputs/{name}", api)
    c.call("GET", f"/api/v1/jobs/{jid}", "/api/v1/jobs/{job_id}", api)
    c.call("POST", f"/api/v1/jobs/{jid}/cancel", "/api/v1/jobs/{job_id}/cancel", api)  # 409
    c.call("GET", "/api/v1/jobs/999", "/api/v1/jobs/{job_id}", api)  # 404
    c.call("GET", "/api/v1/workers", "/api/v1/workers", api)
    # A second job, failed and released.
    second = c.call("POST", "/api/v1/jobs", "/api/v1/jobs", api, json={
        "scene": {"url": asset["url"], "sha256": sha, "size": len(data)}, "max_attempts": 2}).json()
    lease = c.call("POST", W + "/jobs/claim?wait=0", W + "/jobs/claim", worker,
                   json={"worker_id": hello["worker_id"]}).json()
    c.call("POST", f"{W}/jobs/{second['id']}/release", W + "/jobs/{job_id}/release", worker,
           json={"lease_id": lease["lease_id"], "reason": "game started"})
    lease = c.call("POST", W + "/jobs/claim?wait=0", W + "/jobs/claim", worker,
                   json={"worker_id": hello["worker_id"]}).json()
    c.call("POST", f"{W}/jobs/{second['id']}/fail", W + "/jobs/{job_id}/fail", worker,
           json={"lease_id": lease["lease_id"], "reason": "x", "retryable": False})
    c.call("GET", "/api/v1/jobs?state=failed", "/api/v1/jobs", api)
    assert c.checked >= 20


def _probes(path: str, method: str, body_kind: str | None):
    """Requests that each draw an error from an operation: (what it tries, kwargs for requests)."""
    yield "no token", {"headers": {"Authorization": ""}}
    if "{job_id}" in path:
        yield "unknown job", {"job_id": "987654"}
        yield "job id not a number", {"job_id": "abc"}
    if body_kind == "json":
        yield "broken JSON", {"data": b"{not json", "headers": {"Content-Type": "application/json"}}
        yield "empty object", {"json": {}}
        yield "a list", {"json": [1, 2]}
        yield "chunked", {"data": iter([b"{}"])}
        yield "too long", {"data": b"x" * (2 * 1024 * 1024), "headers": {"Content-Type": "application/json"}}
    if body_kind == "bytes":
        yield "no checksum", {"data": b"bytes"}
        yield "wrong checksum", {"data": b"bytes", "headers": {"X-Content-SHA256": "0" * 64, "X-Lease-Id": "l_x"}}
        yield "chunked", {"data": iter([b"bytes"])}
    if method == "get" and path == "/api/v1/jobs":
        for query in ("limit=0", "limit=1001", "limit=x", "state=nope", "cursor=zz", "updated_since=soon"):
            yield query, {"query": query}
    if path == "/api/worker/v1/jobs/claim":
        yield "unknown worker", {"json": {"worker_id": "w_nobody"}}
        yield "wait not a number", {"json": {"worker_id": "w_nobody"}, "query": "wait=x"}


def test_every_status_the_server_answers_is_documented(served):
    """Each documented operation is called with each kind of bad request that fits it; every status that comes
    back must be listed for that operation, with a body that fits what the document says of it."""
    tokens = {"app": served.app_token, "worker": served.worker_token, "none": ""}
    auth = {(m.lower(), p.replace(":path}", "}")): a for m, p, a, _ in ROUTES}
    seen: dict[str, set[int]] = {}
    for path, item in DOC["paths"].items():
        for method, operation in item.items():
            if method not in ("get", "post", "put"):
                continue
            content = operation.get("requestBody", {}).get("content", {})
            body_kind = "json" if "application/json" in content else "bytes" if content else None
            for what, probe in _probes(path, method, body_kind):
                url = path.replace("{job_id}", probe.pop("job_id", "1")).replace("{name}", "frame_0001.png") \
                    .replace("{sha256}", "a" * 64)
                query = probe.pop("query", "")
                headers = {"Authorization": f"Bearer {tokens[auth[(method, path)]]}", **probe.pop("headers", {})}
                if not headers["Authorization"].strip().removeprefix("Bearer").strip():
                    headers.pop("Authorization")
                response = requests.request(method, served.url + url + (f"?{query}" if query else ""),
                                            headers=headers, timeout=10, **probe)
                status = str(response.status_code)
                assert status in operation["responses"], f"{method.upper()} {path} ({what}) answered {status}"
                documented = operation["responses"][status]
                if "$ref" in documented:
                    documented = DOC["components"]["responses"][documented["$ref"].rsplit("/", 1)[-1]]
                if "application/json" in documented.get("content", {}):
                    schema_validator(documented["content"]["application/json"]["schema"]).validate(response.json())
                seen.setdefault(f"{method} {path}", set()).add(response.status_code)
    answered = set().union(*seen.values())
    assert {400, 401, 404, 411, 413, 422} <= answered, answered


def test_every_error_code_the_server_sends_is_in_the_documented_enum():
    import re
    source = "\n".join(path.read_text() for path in (ROOT / "worker_app" / "server").glob("*.py"))
    used = set(re.findall(r'HttpError\(\d+, "([a-z_]+)"', source)) | set(re.findall(r'"error": "([a-z_]+)"', source)) \
        | set(re.findall(r'code="([a-z_]+)"', source))
    assert used and used <= set(DOC["components"]["schemas"]["ErrorCode"]["enum"]), used


def test_a_retried_submission_under_one_idempotency_key_makes_one_job(served):
    headers = {"Authorization": f"Bearer {served.app_token}", "Idempotency-Key": "order-1234"}
    spec = {"scene": {"url": "/api/worker/v1/assets/" + "a" * 64, "sha256": "a" * 64, "size": 1}, "tag": "t"}
    first = requests.post(served.url + "/api/v1/jobs", json=spec, headers=headers, timeout=10)
    again = requests.post(served.url + "/api/v1/jobs", json=spec, headers=headers, timeout=10)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"] and again.headers["Idempotent-Replayed"] == "true"
    other = requests.post(served.url + "/api/v1/jobs", json={**spec, "tag": "u"}, headers=headers, timeout=10)
    assert other.status_code == 422 and other.json()["error"] == "idempotency_key_reused"
    assert other.json()["field"] == "Idempotency-Key"
    bad = requests.post(served.url + "/api/v1/jobs", json=spec, timeout=10,
                        headers={**headers, "Idempotency-Key": "a key with spaces"})
    assert bad.status_code == 422 and bad.json()["field"] == "Idempotency-Key"
    assert len(requests.get(served.url + "/api/v1/jobs", headers=headers, timeout=10).json()["jobs"]) == 1
