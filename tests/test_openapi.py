"""docs/worker-api.yaml and the reference server agree: the same routes, and every answer fits its schema."""

import hashlib
from pathlib import Path

import jsonschema
import pytest
import requests
import yaml
from openapi_spec_validator import validate
from worker_app import protocol as P
from worker_app.server.http import ROUTES

DOC_PATH = Path(__file__).parent.parent / "docs" / "worker-api.yaml"
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
