"""The Cloud Run stand-in on the wire: raw HTTP (error shapes, enums as ints or names, bad bodies,
output-only fields sent back) and conformance of every response to Google's own run.v2.json.
"""

from __future__ import annotations

import time

import httpx
import pytest

from tests.sandbox.cloudrun_support import PARENT, running_stand_in
from tests.support.discovery import SchemaChecker, discovery_client

API = f"/v2/{PARENT}"
INTS = {"$alt": "json;enum-encoding=int"}
RESPONSE_SCHEMAS = {
    "run.projects.locations.services.get": "GoogleCloudRunV2Service",
    "run.projects.locations.services.list": "GoogleCloudRunV2ListServicesResponse",
    "run.projects.locations.services.create": "GoogleLongrunningOperation",
    "run.projects.locations.services.patch": "GoogleLongrunningOperation",
    "run.projects.locations.services.delete": "GoogleLongrunningOperation",
    "run.projects.locations.services.revisions.get": "GoogleCloudRunV2Revision",
    "run.projects.locations.services.revisions.list": "GoogleCloudRunV2ListRevisionsResponse",
    "run.projects.locations.services.revisions.delete": "GoogleLongrunningOperation",
    "run.projects.locations.operations.get": "GoogleLongrunningOperation",
    "run.projects.locations.operations.wait": "GoogleLongrunningOperation",
    "run.projects.locations.operations.list": "GoogleLongrunningListOperationsResponse",
}
ANY_TYPES = {
    "type.googleapis.com/google.cloud.run.v2.Service": "GoogleCloudRunV2Service",
    "type.googleapis.com/google.cloud.run.v2.Revision": "GoogleCloudRunV2Revision",
}


@pytest.fixture(scope="module")
def stand_in():
    yield from running_stand_in()


@pytest.fixture(scope="module")
def wired(stand_in):
    stand_in.seed_service("wired", image="sandbox/wired:v1")
    return "wired"


@pytest.fixture
def http(stand_in):
    with httpx.Client(base_url=stand_in.url, timeout=10) as client:
        yield client


def finished(http, operation: dict, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while not operation.get("done"):
        assert time.monotonic() < deadline, operation
        time.sleep(0.02)
        operation = http.get(f"/v2/{operation['name']}").json()
    return operation


def assert_error(response: httpx.Response, code: int, status: str) -> dict:
    assert response.status_code == code, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["status"] == status and error["message"]
    assert "errors" not in error  # Cloud Run's AIP-193 errors have no legacy errors[]
    return error


# -- errors ---------------------------------------------------------------------------------------
def test_error_bodies_are_google_shaped(http, wired):
    error = assert_error(http.get(f"{API}/services/nope"), 404, "NOT_FOUND")
    assert error["message"] == (
        "Resource 'nope' of kind 'SERVICE' in region 'europe-west1' in project 'contract-project' "
        "does not exist."
    )
    body = {"traffic": [{"type": 2, "revision": "x", "percent": 50}]}
    error = assert_error(
        http.patch(f"{API}/services/{wired}", params={"updateMask": "traffic"}, json=body),
        400,
        "INVALID_ARGUMENT",
    )
    assert error["details"] == [
        {
            "@type": "type.googleapis.com/google.rpc.BadRequest",
            "fieldViolations": [
                {"field": "service.traffic[0].revision", "description": error["message"].split(": ", 1)[1]}
            ],
        }
    ]
    assert_error(http.get("/v2/projects/other/locations/europe-west1/services"), 403, "PERMISSION_DENIED")
    assert_error(
        http.get(f"/v2/projects/{PARENT.split('/')[1]}/locations/us-central1/services"), 404, "NOT_FOUND"
    )


def test_bad_bodies_are_400(http, wired):
    url = f"{API}/services/{wired}"
    assert_error(http.patch(url, json={"bogus": 1}), 400, "INVALID_ARGUMENT")
    assert_error(
        http.patch(url, json={"traffic": [{"type": "SIDEWAYS", "percent": 100}]}), 400, "INVALID_ARGUMENT"
    )
    assert_error(http.patch(url, content=b"{not json"), 400, "INVALID_ARGUMENT")
    assert_error(http.patch(url, params={"updateMask": "nonsense"}, json={}), 400, "INVALID_ARGUMENT")
    assert_error(
        http.post(f"{API}/services", json={"template": {"containers": [{"image": "x"}]}}),
        400,
        "INVALID_ARGUMENT",
    )


def test_deleting_a_serving_revision_is_failed_precondition(http, wired):
    service = http.get(f"{API}/services/{wired}").json()
    response = http.delete(f"/v2/{service['latestReadyRevision']}")
    assert_error(response, 400, "FAILED_PRECONDITION")


# -- enums and int64 -------------------------------------------------------------------------------
def test_enums_as_names_by_default_and_as_ints_when_asked(http, wired):
    named = http.get(f"{API}/services/{wired}").json()
    assert named["terminalCondition"]["state"] == "CONDITION_SUCCEEDED"
    assert named["traffic"][0]["type"] == "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION"
    assert named["ingress"] == "INGRESS_TRAFFIC_ALL" and named["launchStage"] == "GA"
    assert isinstance(named["generation"], str) and isinstance(named["observedGeneration"], str)
    numbered = http.get(f"{API}/services/{wired}", params=INTS).json()
    assert numbered["terminalCondition"]["state"] == 4
    assert numbered["traffic"][0]["type"] == 2 and numbered["ingress"] == 1 and numbered["launchStage"] == 4
    revision = http.get(f"/v2/{named['latestReadyRevision']}", params=INTS).json()
    assert revision["conditions"][0] == {**revision["conditions"][0], "type": "Ready", "state": 4}


@pytest.mark.parametrize("kind", [2, "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION"], ids=["int", "name"])
def test_request_enums_as_ints_or_names(http, wired, kind):
    revision = http.get(f"{API}/services/{wired}").json()["latestReadyRevision"].rsplit("/", 1)[-1]
    body = {"traffic": [{"type": kind, "revision": revision, "percent": 100, "tag": "pinned"}]}
    operation = http.patch(
        f"{API}/services/{wired}", params={"updateMask": "traffic", **INTS}, json=body
    ).json()
    assert operation["name"].startswith(f"{PARENT}/operations/") and not operation.get("done")
    assert operation["metadata"]["@type"] == "type.googleapis.com/google.cloud.run.v2.Service"
    done = finished(http, operation)
    assert done["response"]["@type"] == "type.googleapis.com/google.cloud.run.v2.Service"
    statuses = done["response"]["trafficStatuses"]
    assert statuses[0]["type"] == "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION" and statuses[0]["tag"] == "pinned"
    assert statuses[0]["uri"].endswith(f"/_run/pinned---{wired}")


def test_output_only_fields_sent_back_are_ignored(http, wired):
    current = http.get(f"{API}/services/{wired}").json()
    echoed = {**current, "uid": "forged", "uri": "https://evil", "generation": "99", "reconciling": True}
    done = finished(http, http.patch(f"{API}/services/{wired}", json=echoed).json())
    service = done["response"]
    assert service["uid"] == current["uid"] and service["uri"] == current["uri"]
    assert service["generation"] == current["generation"]  # nothing changed, no new generation
    assert service["latestCreatedRevision"] == current["latestCreatedRevision"]


def test_nested_update_mask_changes_only_that_part(http, wired):
    current = http.get(f"{API}/services/{wired}").json()
    body = {"template": {"containers": [{"image": "sandbox/wired:v2"}]}, "labels": {"ignored": "yes"}}
    done = finished(
        http,
        http.patch(f"{API}/services/{wired}", params={"updateMask": "template.containers"}, json=body).json(),
    )
    service = done["response"]
    assert service["template"]["containers"][0]["image"] == "sandbox/wired:v2"
    assert service["template"]["timeout"] == current["template"]["timeout"] and "labels" not in service
    assert service["latestCreatedRevision"] != current["latestCreatedRevision"]


def test_wait_and_list_operations(http, wired):
    operation = http.patch(
        f"{API}/services/{wired}", params={"updateMask": "labels"}, json={"labels": {"waited": "yes"}}
    ).json()
    waited = http.post(f"/v2/{operation['name']}:wait", json={"timeout": "5s"}).json()
    assert waited["done"] is True and waited["response"]["labels"] == {"waited": "yes"}
    listed = http.get(f"{API}/operations", params={"pageSize": 2}).json()
    assert len(listed["operations"]) == 2 and listed["nextPageToken"]
    assert listed["operations"][0]["name"] == operation["name"]  # newest first


# -- conformance with Google's discovery document ---------------------------------------------------
def test_every_response_conforms_to_run_v2_json(stand_in, wired):
    recorder: list = []
    run = discovery_client("run.v2", stand_in.url, recorder)
    services = run.projects().locations().services()
    operations = run.projects().locations().operations()

    def wait(operation: dict) -> dict:
        return operations.wait(name=operation["name"], body={"timeout": "10s"}).execute()

    created = services.create(
        parent=PARENT,
        serviceId="conform",
        body={
            "labels": {"team": "ops"},
            "template": {
                "containers": [{"image": "sandbox/conform:v1", "env": [{"name": "A", "value": "1"}]}]
            },
        },
    ).execute()
    first = wait(created)["response"]
    operations.get(name=created["name"]).execute()
    services.get(name=f"{PARENT}/services/conform").execute()
    services.list(parent=PARENT, pageSize=1).execute()
    second = services.patch(
        name=f"{PARENT}/services/conform",
        updateMask="template,traffic",
        body={
            "template": {"revision": "conform-green", "containers": [{"image": "sandbox/conform:v2"}]},
            "traffic": [
                {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 90},
                {
                    "type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION",
                    "revision": "conform-green",
                    "percent": 10,
                    "tag": "green",
                },
            ],
        },
    ).execute()
    wait(second)
    failing = services.patch(
        name=f"{PARENT}/services/conform",
        updateMask="template",
        body={
            "template": {
                "containers": [
                    {"image": "sandbox/conform:v3", "env": [{"name": "SANDBOX_READY", "value": "false"}]}
                ]
            }
        },
    ).execute()
    assert wait(failing)["error"]["code"] == 9
    revisions = services.revisions()
    revisions.list(parent=f"{PARENT}/services/conform").execute()
    revisions.get(name=first["latestCreatedRevision"]).execute()
    pinned = services.patch(
        name=f"{PARENT}/services/conform",
        updateMask="traffic",
        body={
            "traffic": [
                {
                    "type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION",
                    "revision": "conform-green",
                    "percent": 100,
                }
            ]
        },
    ).execute()
    wait(pinned)
    wait(revisions.delete(name=first["latestCreatedRevision"]).execute())
    operations.list(name=PARENT, pageSize=3).execute()
    wait(services.delete(name=f"{PARENT}/services/conform").execute())

    checker = SchemaChecker("run.v2")
    problems = []
    seen = set()
    for method, uri, body in recorder:
        seen.add(method)
        problems += [f"{method} {uri}: {e}" for e in checker.errors(RESPONSE_SCHEMAS[method], body)]
        for operation in body.get("operations", [body]) if method.endswith("operations.list") else [body]:
            for key in ("metadata", "response"):
                if isinstance(operation, dict) and key in operation and "@type" in operation[key]:
                    inner = {k: v for k, v in operation[key].items() if k != "@type"}
                    schema = ANY_TYPES[operation[key]["@type"]]
                    problems += [f"{method} {key}: {e}" for e in checker.errors(schema, inner)]
    assert problems == []
    assert seen == set(RESPONSE_SCHEMAS)
