"""Contract of the Cloud Run stand-in, driven through the real google.cloud.run_v2 REST clients.

Every revision is a real process behind the stand-in's ingress, so assertions are on what a flow could
observe: operations, services, revisions, and the answers of the service and tag URLs.
"""

from __future__ import annotations

import collections
import re
import time

import httpx
import pytest
from google.api_core import exceptions
from google.api_core.future.polling import DEFAULT_POLLING
from google.cloud import run_v2
from google.protobuf.field_mask_pb2 import FieldMask

from tests.sandbox.cloudrun_support import (
    FAILED,
    LATEST,
    PARENT,
    SUCCEEDED,
    revision_name,
    running_stand_in,
    service_name,
    short,
    target,
    template,
)

TRAFFIC = FieldMask(paths=["traffic"])
# The client's own polling starts at uniform(0, 1 s); a quicker schedule (a public `result()` option)
# keeps the module fast. The create test keeps the default.
FAST = DEFAULT_POLLING.with_delay(initial=0.02, maximum=0.2)


@pytest.fixture(scope="module")
def stand_in():
    yield from running_stand_in()


@pytest.fixture(scope="module")
def clients(stand_in):
    return stand_in.clients()


@pytest.fixture
def services(clients):
    return clients.services


@pytest.fixture
def revisions(clients):
    return clients.revisions


_numbers = iter(range(1, 1000))


@pytest.fixture
def seeded(stand_in):
    """A fresh service with one Ready revision pinned at 100%, created by the Python helper."""
    name = f"seeded{next(_numbers)}"
    stand_in.seed_service(name, image=f"sandbox/{name}:v1")
    return name


def deploy(services, name: str, image: str, traffic=None, revision: str = "", **env) -> run_v2.Service:
    """A new template (and optionally traffic), waited for: what a deploy does."""
    paths = ["template", "traffic"] if traffic is not None else ["template"]
    service = run_v2.Service(
        name=service_name(name), template=template(image, revision, **env), traffic=traffic
    )
    operation = services.update_service(
        request=run_v2.UpdateServiceRequest(service=service, update_mask=FieldMask(paths=paths))
    )
    return operation.result(timeout=10, polling=FAST)


def set_traffic(services, name: str, traffic) -> run_v2.Service:
    service = run_v2.Service(name=service_name(name), traffic=traffic)
    return services.update_service(service=service, update_mask=TRAFFIC).result(timeout=10, polling=FAST)


def who_answers(url: str, count: int) -> collections.Counter:
    with httpx.Client(timeout=10) as http:
        return collections.Counter(http.get(url).json()["revision"] for _ in range(count))


# -- create, get, list ---------------------------------------------------------------------------
def test_create_is_a_long_running_operation_that_ends_with_a_ready_service(services):
    operation = services.create_service(
        parent=PARENT,
        service=run_v2.Service(
            template=template("sandbox/created:v1", GREETING="hi"), labels={"team": "ops"}
        ),
        service_id="created",
    )
    assert operation.operation.name.startswith(f"{PARENT}/operations/")
    assert operation.metadata is not None and operation.metadata.name == service_name("created")
    service = operation.result(timeout=10)
    assert service.name == service_name("created") and service.labels == {"team": "ops"}
    assert service.generation == service.observed_generation == 1 and not service.reconciling
    assert service.terminal_condition.type_ == "Ready" and service.terminal_condition.state == SUCCEEDED
    assert service.latest_ready_revision == service.latest_created_revision
    assert re.fullmatch(
        rf"{service_name('created')}/revisions/created-00001-[a-z]{{3}}", service.latest_ready_revision
    )
    assert [(t.type_, t.percent) for t in service.traffic] == [(LATEST, 100)]
    assert [(s.type_, s.percent) for s in service.traffic_statuses] == [(LATEST, 100)]
    assert service.uri and list(service.urls) == [service.uri] and service.uid and service.etag
    assert service.template.containers[0].env[0].value == "hi"
    answer = httpx.get(service.uri + "/").json()
    assert answer == {
        "service": "created",
        "revision": short(service.latest_ready_revision),
        "image": "sandbox/created:v1",
        "path": "/",
        "method": "GET",
        "request": 1,
    }
    assert httpx.get(service.uri + "/health").status_code == 200


def test_get_and_list_services_with_paging(services, seeded):
    assert services.get_service(name=service_name(seeded)).name == service_name(seeded)
    pager = services.list_services(request=run_v2.ListServicesRequest(parent=PARENT, page_size=1))
    names = [s.name for s in pager]
    assert service_name(seeded) in names and len(names) == len(set(names)) >= 2


def test_create_validations(services, seeded):
    with pytest.raises(exceptions.Conflict, match="already exists"):
        services.create_service(
            parent=PARENT, service=run_v2.Service(template=template("x:1")), service_id=seeded
        )
    with pytest.raises(exceptions.BadRequest, match="lowercase"):
        services.create_service(
            parent=PARENT, service=run_v2.Service(template=template("x:1")), service_id="Bad_Name"
        )
    with pytest.raises(exceptions.BadRequest, match="container"):
        services.create_service(parent=PARENT, service=run_v2.Service(), service_id="nocontainer")
    with pytest.raises(exceptions.BadRequest, match="reserved env names were provided: PORT"):
        services.create_service(
            parent=PARENT,
            service=run_v2.Service(template=template("x:1", PORT="9000")),
            service_id="reserved",
        )
    preview = services.create_service(
        request=run_v2.CreateServiceRequest(
            parent=PARENT,
            service=run_v2.Service(template=template("x:1")),
            service_id="preview",
            validate_only=True,
        )
    ).result(timeout=5, polling=FAST)
    assert preview.name == service_name("preview")
    with pytest.raises(exceptions.NotFound, match="Resource 'preview' of kind 'SERVICE'"):
        services.get_service(name=service_name("preview"))


def test_not_found(services, revisions, seeded):
    with pytest.raises(exceptions.NotFound):
        services.get_service(name=service_name("nope"))
    with pytest.raises(exceptions.NotFound):
        revisions.get_revision(name=revision_name(seeded, f"{seeded}-00099-zzz"))
    with pytest.raises(exceptions.NotFound):
        services.update_service(service=run_v2.Service(name=service_name("nope"), template=template("x:1")))


def test_allow_missing_update_creates_the_service(services):
    service = run_v2.Service(name=service_name("upserted"), template=template("sandbox/upserted:v1"))
    created = services.update_service(
        request=run_v2.UpdateServiceRequest(service=service, allow_missing=True)
    )
    assert created.result(timeout=10, polling=FAST).terminal_condition.state == SUCCEEDED


# -- revisions ------------------------------------------------------------------------------------
def test_a_template_change_makes_a_revision_and_an_unchanged_one_does_not(services, revisions, seeded):
    before = services.get_service(name=service_name(seeded))
    after = deploy(services, seeded, f"sandbox/{seeded}:v2")
    assert after.generation == before.generation + 1 == after.observed_generation
    assert re.fullmatch(rf".*/revisions/{seeded}-00002-[a-z]{{3}}", after.latest_created_revision)
    # Traffic was pinned by the seed: the new revision is Ready but gets nothing until traffic moves.
    assert after.latest_ready_revision == after.latest_created_revision
    assert [(s.revision, s.percent) for s in after.traffic_statuses] == [
        (short(before.latest_ready_revision), 100)
    ]
    assert set(who_answers(after.uri, 5)) == {short(before.latest_ready_revision)}
    # Echoing the whole service back (output-only fields included) changes nothing.
    echoed = services.update_service(service=services.get_service(name=service_name(seeded))).result(
        timeout=10
    )
    assert echoed.latest_created_revision == after.latest_created_revision
    assert echoed.generation == after.generation
    listed = [r.name for r in revisions.list_revisions(parent=service_name(seeded))]
    assert listed == [after.latest_created_revision, before.latest_created_revision]  # newest first
    revision = revisions.get_revision(name=after.latest_created_revision)
    assert revision.service == seeded and revision.containers[0].image == f"sandbox/{seeded}:v2"
    ready = next(c for c in revision.conditions if c.type_ == "Ready")
    assert ready.state == SUCCEEDED and not revision.reconciling and revision.generation == 1


def test_explicit_revision_names(services, seeded):
    name = f"{seeded}-blue"
    first = deploy(services, seeded, f"sandbox/{seeded}:v2", revision=name)
    assert short(first.latest_created_revision) == name
    again = deploy(services, seeded, f"sandbox/{seeded}:v2", revision=name)  # same configuration
    assert again.latest_created_revision == first.latest_created_revision
    with pytest.raises(
        exceptions.Conflict, match=f"Revision named '{name}' with different configuration already exists"
    ):
        deploy(services, seeded, f"sandbox/{seeded}:v3", revision=name)
    with pytest.raises(exceptions.BadRequest, match="prefixed by the name of the enclosing Service"):
        deploy(services, seeded, f"sandbox/{seeded}:v3", revision="other-green")


# -- traffic ---------------------------------------------------------------------------------------
def test_split_90_10_with_a_tag_and_the_ingress_follows_it(services, seeded):
    stable = short(services.get_service(name=service_name(seeded)).latest_ready_revision)
    service = deploy(services, seeded, f"sandbox/{seeded}:v2", traffic=[target(stable, 100)])
    candidate = short(service.latest_created_revision)
    service = set_traffic(services, seeded, [target(stable, 90), target(candidate, 10, tag="canary")])
    statuses = {s.revision: s for s in service.traffic_statuses}
    assert (statuses[stable].percent, statuses[candidate].percent) == (90, 10)
    tag_uri = statuses[candidate].uri
    assert tag_uri.endswith(f"/_run/canary---{seeded}") and not statuses[stable].uri
    assert set(who_answers(tag_uri, 10)) == {candidate}
    split = who_answers(service.uri, 300)
    assert set(split) == {stable, candidate} and 10 <= split[candidate] <= 60, split
    # The tag URL proxies the rest of the path and the query.
    assert httpx.get(tag_uri + "/some/path?x=1").json()["path"] == "/some/path"


@pytest.mark.parametrize(
    ("traffic", "message"),
    [
        (lambda s, r: [target(r, 60), target(r, 30, tag="a")], "sum to 90, want 100"),
        (lambda s, r: [target(r, 50, tag="a"), target(r, 50, tag="a")], "Multiple definitions for tag 'a'"),
        (lambda s, r: [target(r, 100, tag="t" * (47 - len(s)))], "cannot exceed 46 characters"),
        (lambda s, r: [target(f"{s}-00042-zzz", 100)], "does not exist or is deleted"),
        (lambda s, r: [target(r, 100, tag="Bad_Tag")], "not a valid DNS label"),
        (lambda s, r: [target(r, 101)], "between 0 and 100"),
    ],
    ids=["sum", "duplicate-tag", "tag-too-long", "unknown-revision", "tag-format", "percent"],
)
def test_traffic_validation(services, seeded, traffic, message):
    before = services.get_service(name=service_name(seeded))
    revision = short(before.latest_ready_revision)
    with pytest.raises(exceptions.BadRequest, match=message):
        set_traffic(services, seeded, traffic(seeded, revision))
    assert services.get_service(name=service_name(seeded)).generation == before.generation


def test_tag_of_exactly_46_characters_with_the_service_name_is_accepted(services, seeded):
    revision = short(services.get_service(name=service_name(seeded)).latest_ready_revision)
    tag = "t" * (46 - len(seeded))
    service = set_traffic(services, seeded, [target(revision, 100, tag=tag)])
    assert service.traffic_statuses[0].uri.endswith(f"/_run/{tag}---{seeded}")


def test_latest_follows_the_latest_ready_revision(services, seeded):
    latest = run_v2.TrafficTarget(type_=LATEST, percent=100)
    set_traffic(services, seeded, [latest])
    service = deploy(services, seeded, f"sandbox/{seeded}:v2")
    assert set(who_answers(service.uri, 3)) == {short(service.latest_ready_revision)}
    assert [(s.type_, s.percent, s.revision) for s in service.traffic_statuses] == [(LATEST, 100, "")]


# -- the demo app's behaviours ---------------------------------------------------------------------
def tagged_candidate(services, name: str, **env) -> tuple[str, str]:
    """Deploy `{name}-cand` at 0% with tag `cand`, as a canary deploy does; (revision, tag URL)."""
    stable = short(services.get_service(name=service_name(name)).latest_ready_revision)
    candidate = f"{name}-cand"
    traffic = [target(stable, 100), target(candidate, 0, tag="cand")]
    service = deploy(services, name, "sandbox/app:v2", traffic=traffic, revision=candidate, **env)
    return candidate, next(s.uri for s in service.traffic_statuses if s.tag == "cand")


def test_unhealthy_revision_answers_503_on_health_only(services, seeded):
    _, uri = tagged_candidate(services, seeded, SANDBOX_HEALTHY="false")
    assert httpx.get(uri + "/health").status_code == 503
    assert httpx.get(uri + "/").status_code == 200


def test_error_rate_is_exact_over_ten_requests(services, seeded):
    _, uri = tagged_candidate(services, seeded, SANDBOX_ERROR_RATE="0.3")
    statuses = [httpx.get(uri + "/").status_code for _ in range(10)]
    assert statuses.count(500) == 3 and statuses.count(200) == 7
    assert all(httpx.get(uri + "/health").status_code == 200 for _ in range(3))


def test_latency_is_added(services, seeded):
    _, uri = tagged_candidate(services, seeded, SANDBOX_LATENCY_MS="300")
    started = time.monotonic()
    assert httpx.get(uri + "/").status_code == 200
    assert time.monotonic() - started >= 0.3


def test_a_revision_that_never_listens_fails_the_operation_and_moves_nothing(services, revisions, seeded):
    before = services.get_service(name=service_name(seeded))
    stable = short(before.latest_ready_revision)
    started = time.monotonic()
    with pytest.raises(exceptions.FailedPrecondition, match="failed to start and listen on the port"):
        tagged_candidate(services, seeded, SANDBOX_READY="false")
    assert time.monotonic() - started < 5
    after = services.get_service(name=service_name(seeded))
    assert short(after.latest_created_revision) == f"{seeded}-cand"
    assert after.latest_ready_revision == before.latest_ready_revision
    assert after.terminal_condition.state == FAILED
    assert after.terminal_condition.reason == run_v2.Condition.CommonReason.REVISION_FAILED
    assert f"Revision '{seeded}-cand' is not ready" in after.terminal_condition.message
    assert not after.reconciling and after.observed_generation == after.generation
    assert [(s.revision, s.percent, s.tag) for s in after.traffic_statuses] == [(stable, 100, "")]
    ready = next(
        c for c in revisions.get_revision(name=after.latest_created_revision).conditions if c.type_ == "Ready"
    )
    assert ready.state == FAILED
    assert ready.revision_reason == run_v2.Condition.RevisionReason.HEALTH_CHECK_CONTAINER_ERROR
    assert set(who_answers(after.uri, 3)) == {stable}
    # Putting the traffic back (the restore a deploy does) works.
    restored = set_traffic(services, seeded, [target(stable, 100)])
    assert [(t.revision, t.percent) for t in restored.traffic] == [(stable, 100)]


def test_a_service_whose_first_revision_never_listens(services):
    service = run_v2.Service(template=template("sandbox/never:v1", SANDBOX_READY="false"))
    operation = services.create_service(parent=PARENT, service=service, service_id="never")
    with pytest.raises(exceptions.FailedPrecondition, match="not ready and cannot serve traffic"):
        operation.result(timeout=10, polling=FAST)
    service = services.get_service(name=service_name("never"))
    assert service.latest_created_revision and not service.latest_ready_revision
    assert service.terminal_condition.state == FAILED and not service.traffic_statuses
    assert httpx.get(service.uri + "/").status_code == 503


def test_traffic_to_a_failed_revision_fails_the_operation(services, seeded):
    with pytest.raises(exceptions.FailedPrecondition, match=r"exit\(1\): bad configuration: could not"):
        tagged_candidate(services, seeded, SANDBOX_ERROR_RATE="lots")  # the container exits at start
    with pytest.raises(exceptions.FailedPrecondition, match="not ready and cannot serve traffic"):
        set_traffic(services, seeded, [target(f"{seeded}-cand", 100)])


# -- deletions -------------------------------------------------------------------------------------
def test_delete_revision(stand_in, services, revisions, seeded):
    first = short(services.get_service(name=service_name(seeded)).latest_ready_revision)
    second = short(deploy(services, seeded, "sandbox/app:v2").latest_created_revision)
    with pytest.raises(exceptions.BadRequest, match="referenced by the traffic"):
        revisions.delete_revision(request=run_v2.DeleteRevisionRequest(name=revision_name(seeded, first)))
    with pytest.raises(exceptions.BadRequest, match="latest created revision"):
        revisions.delete_revision(request=run_v2.DeleteRevisionRequest(name=revision_name(seeded, second)))
    set_traffic(services, seeded, [target(second, 100)])
    with pytest.raises(exceptions.Conflict):
        revisions.delete_revision(
            request=run_v2.DeleteRevisionRequest(name=revision_name(seeded, first), etag='"x"')
        )
    deleted = revisions.delete_revision(
        request=run_v2.DeleteRevisionRequest(name=revision_name(seeded, first))
    )
    assert deleted.result(timeout=10, polling=FAST).name == revision_name(seeded, first)
    with pytest.raises(exceptions.NotFound):
        revisions.get_revision(name=revision_name(seeded, first))
    assert revision_name(seeded, first) not in stand_in.instances.running()
    with pytest.raises(exceptions.BadRequest, match="does not exist"):
        set_traffic(services, seeded, [target(first, 100)])


def test_delete_service_stops_its_processes(stand_in, services, seeded):
    revision = services.get_service(name=service_name(seeded)).latest_ready_revision
    assert revision in stand_in.instances.running()
    services.delete_service(name=service_name(seeded)).result(timeout=10, polling=FAST)
    with pytest.raises(exceptions.NotFound):
        services.get_service(name=service_name(seeded))
    assert revision not in stand_in.instances.running()


def test_idle_revisions_scale_to_zero_and_come_back_with_traffic(stand_in, services, seeded):
    stable = services.get_service(name=service_name(seeded)).latest_ready_revision
    new = deploy(services, seeded, "sandbox/app:v2").latest_created_revision  # 0%, no tag
    deadline = time.monotonic() + 5
    while new in stand_in.instances.running():
        assert time.monotonic() < deadline, "an idle revision kept running"
        time.sleep(0.1)
    assert stable in stand_in.instances.running()
    service = set_traffic(services, seeded, [target(short(new), 100)])
    assert set(who_answers(service.uri, 3)) == {short(new)}


# -- faults ----------------------------------------------------------------------------------------
def test_a_503_burst_is_absorbed_by_the_clients_default_retry(stand_in, services, seeded):
    httpx.delete(stand_in.url + "/_sandbox/requests")
    path = f"/services/{seeded}$"
    httpx.post(
        stand_in.url + "/_sandbox/faults", json={"method": "GET", "path": path, "times": 1}
    ).raise_for_status()
    assert services.get_service(name=service_name(seeded)).name == service_name(seeded)
    log = httpx.get(stand_in.url + "/_sandbox/requests").json()["requests"]
    assert [entry["status"] for entry in log if entry["path"].endswith(seeded)] == [503, 200]


def test_an_injected_operation_failure_changes_nothing(stand_in, services, seeded):
    before = services.get_service(name=service_name(seeded))
    httpx.post(
        stand_in.url + "/_sandbox/run/fail-next-operation",
        json={"service": seeded, "message": "boom", "code": 13},
    ).raise_for_status()
    with pytest.raises(exceptions.InternalServerError, match="boom"):
        deploy(services, seeded, "sandbox/app:v9")
    after = services.get_service(name=service_name(seeded))
    assert (
        after.generation == before.generation
        and after.latest_created_revision == before.latest_created_revision
    )
    deploy(services, seeded, "sandbox/app:v9")  # the next one goes through


def test_a_crashed_revision_answers_503(stand_in, services, seeded):
    service = services.get_service(name=service_name(seeded))
    revision = short(service.latest_ready_revision)
    httpx.post(
        stand_in.url + "/_sandbox/run/stop-revision", json={"service": seeded, "revision": revision}
    ).raise_for_status()
    assert httpx.get(service.uri + "/").status_code == 503
    assert httpx.get(service.uri.replace(seeded, "missing") + "/").status_code == 404
    assert httpx.get(service.uri.replace(seeded, f"notag---{seeded}") + "/").status_code == 404
