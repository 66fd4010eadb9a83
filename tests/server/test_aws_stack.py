"""The AWS stack (installer/server/aws/homefarm.yaml) as the founder deploys it with one command: cfn-lint and
checkov are clean on it (checkov's skipped checks each with a reason, none stale), the task runs a command the
server has, and docs/deploy.md's command, parameters and CloudFront policies match the template. AWS itself is
not reachable here: this is what can be checked without it."""

import json
import re
import shlex
import shutil
import subprocess

import yaml

from support.engines import need
from support.harness import ROOT
from worker_app.server.http import ROUTES

TEMPLATE = ROOT / "installer" / "server" / "aws" / "homefarm.yaml"
GUIDE = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
ALL_VIEWER = "216adef6-5c7f-47e4-b989-5492eafa07d3"  # CloudFront's managed origin request policy AllViewer


class _CloudFormation(yaml.SafeLoader):
    """YAML with CloudFormation's short forms (!Ref, !Sub, !GetAtt...) read as {"Fn": value}."""


def _tag(loader, suffix, node):
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_CloudFormation.add_multi_constructor("!", _tag)
STACK = yaml.load(TEMPLATE.read_text(encoding="utf-8"), Loader=_CloudFormation)
RESOURCES = STACK["Resources"]


def tool(name: str) -> str:
    """cfn-lint or checkov from .venv-lint (make lint-tools), else PATH; without it the test skips and says how
    to get it (it fails under CI, which runs make test)."""
    found = ROOT / ".venv-lint" / "bin" / name
    return need(str(found) if found.exists() else shutil.which(name), name, "make lint-tools")


def test_cfn_lint_finds_no_error_and_no_warning():
    run = subprocess.run([tool("cfn-lint"), str(TEMPLATE)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and not run.stdout.strip(), run.stdout + run.stderr


def test_checkov_passes_and_each_skipped_check_has_a_reason_and_is_needed():
    run = subprocess.run([tool("checkov"), "-f", str(TEMPLATE), "--framework", "cloudformation", "--skip-download",
                          "-o", "json"], capture_output=True, text=True, timeout=600)
    report = json.loads(run.stdout)
    failed = [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]
    assert not failed and report["summary"]["parsing_errors"] == 0, failed
    assert report["summary"]["passed"] > 30, "checkov read the template's resources"
    listed = {}
    for name, resource in RESOURCES.items():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert len(skip.get("comment", "")) > 20, f"{name} skips {skip['id']} without a reason"
            listed[(skip["id"], name)] = skip["comment"]
    skipped = {(c["check_id"], c["resource"].split(".")[-1]) for c in report["results"]["skipped_checks"]}
    assert set(listed) == skipped, "every skip listed in the template is one checkov would otherwise fail"


def test_the_task_runs_a_server_command_that_exists_with_the_platforms_limits():
    from worker_app.cli import build_parser

    task = RESOURCES["TaskDefinition"]["Properties"]
    container = task["ContainerDefinitions"][0]
    args = build_parser().parse_args(container["Command"][1:])
    assert container["Command"][0] == "homefarm" and args.command == "serve"
    assert args.shutdown_grace < container["StopTimeout"] == 120
    assert task["RuntimePlatform"]["CpuArchitecture"] == "ARM64"
    health = " ".join(container["HealthCheck"]["Command"])
    assert "/api/ready" in health and ("GET", "/api/ready") in {(m, p) for m, p, _, _ in ROUTES}
    secrets = {s["Name"] for s in container["Secrets"]}
    assert {"HOMEFARM_DB_URL", "HOMEFARM_WEBHOOK_SECRET", "HOMEFARM_ORIGIN_SECRET"} <= secrets
    assert not any("KEY" in e["Name"] for e in container["Environment"]), "the task role gives S3: no access keys"


def test_cloudfront_forwards_what_the_api_needs_and_proves_itself_to_the_origin():
    config = RESOURCES["Distribution"]["Properties"]["DistributionConfig"]
    behavior = config["DefaultCacheBehavior"]
    assert set(behavior["AllowedMethods"]) == {"GET", "HEAD", "OPTIONS", "PUT", "PATCH", "POST", "DELETE"}
    assert behavior["OriginRequestPolicyId"] == ALL_VIEWER
    cache = RESOURCES["NoCachePolicy"]["Properties"]["CachePolicyConfig"]
    assert cache["DefaultTTL"] == 0 and cache["ParametersInCacheKeyAndForwardedToOrigin"]["HeadersConfig"][
        "Headers"] == ["Authorization"]
    origin = config["Origins"][0]
    assert origin["CustomOriginConfig"]["OriginReadTimeout"] >= 30
    headers = {h["HeaderName"]: h["HeaderValue"] for h in origin["OriginCustomHeaders"]}
    assert headers["X-Forwarded-Proto"] == "https" and headers["X-Origin-Verify"] == {"Ref": "OriginSecret"}
    ingress = RESOURCES["OriginSecurityGroup"]["Properties"]["SecurityGroupIngress"]
    assert [rule.get("SourcePrefixListId") for rule in ingress] == [{"Ref": "CloudFrontPrefixListId"}]


def test_the_bucket_lets_the_dashboard_and_only_it_send_scenes_straight():
    rules = RESOURCES["Bucket"]["Properties"]["CorsConfiguration"]["CorsRules"]
    assert rules == [{"AllowedOrigins": [{"Fn::Sub": "https://${Distribution.DomainName}"}], "AllowedMethods": ["PUT"],
                      "AllowedHeaders": ["*"], "ExposedHeaders": ["ETag"], "MaxAge": 3600}]


def test_the_instance_takes_the_elastic_ip_so_the_origin_never_moves():
    user_data = RESOURCES["LaunchTemplate"]["Properties"]["LaunchTemplateData"]["UserData"]["Fn::Base64"]["Fn::Sub"]
    assert "associate-address" in user_data and "${Address.AllocationId}" in user_data
    assert "ECS_ENABLE_SPOT_INSTANCE_DRAINING=true" in user_data
    origin = RESOURCES["Distribution"]["Properties"]["DistributionConfig"]["Origins"][0]["DomainName"]
    assert "Ref" in json.dumps(origin) and "Address" in json.dumps(origin), "the origin is the EIP's DNS name"
    policy = RESOURCES["AutoScalingGroup"]["Properties"]["MixedInstancesPolicy"]["InstancesDistribution"]
    assert policy["OnDemandPercentageAboveBaseCapacity"] == 0, "spot"


def test_the_guides_command_deploys_this_template_with_its_parameters():
    block = re.search(r"aws cloudformation deploy(?:[^\n]*\\\n)*[^\n]*", GUIDE)
    assert block, "docs/deploy.md gives the deploy command"
    argv = shlex.split(block.group(0).replace("\\\n", " "))
    assert argv[argv.index("--template-file") + 1] == "installer/server/aws/homefarm.yaml"
    assert "CAPABILITY_IAM" in argv
    given = {arg.split("=", 1)[0] for arg in argv[argv.index("--parameter-overrides") + 1:] if "=" in arg}
    parameters = STACK["Parameters"]
    assert given <= set(parameters), f"the guide names parameters the template lacks: {given - set(parameters)}"
    required = {name for name, spec in parameters.items() if "Default" not in spec}
    assert required <= given, f"the guide leaves out required parameters: {required - given}"
    assert ALL_VIEWER in GUIDE and "X-Origin-Verify" in GUIDE and "mysql://" in GUIDE
