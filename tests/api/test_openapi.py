"""``GET /openapi.json``: a valid OpenAPI 3.1 document that names every route the app serves.

The request bodies must be the validation models' own JSON Schemas, so the document cannot
drift from what the handlers accept; the facts only a ``field_validator`` checks (names,
patterns) must agree with the validators.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema_rs
import orjson
import pytest
from pydantic import BaseModel, ValidationError
from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR
from starlette.routing import Route
from starlette.testclient import TestClient

from minitoolai.app import create_app
from minitoolai.catalog import IMAGE_MODELS, IMAGE_SCHEDULERS
from minitoolai.http.openapi import (
    REQUEST_MODELS,
    VALIDATOR_FACTS,
    build_document,
    document_bytes,
)
from minitoolai.http.routes.admin import NewAccount, Usd
from minitoolai.images.schemas import JobRef, JobRequest, OpenAIImageRequest
from minitoolai.payments.routes import routes as payment_routes
from minitoolai.settings import Settings
from minitoolai.web.routes import routes as web_routes

METHODS = {"get", "put", "post", "delete", "patch", "options", "head", "trace"}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return build_document()


def _app_routes(tmp_path: Path) -> set[tuple[str, str]]:
    app = create_app(Settings(data_dir=tmp_path, config=None))
    served = set()
    for route in app.routes:
        # the storefront's pages and Stripe's webhook (Stripe's own format, signed) are not
        # the API a client calls (docs/web.md, docs/billing.md)
        if route in web_routes or route in payment_routes:
            continue
        assert isinstance(route, Route), route
        for method in route.methods or ():
            if method != "HEAD":  # Starlette adds HEAD to every GET
                served.add((route.path, method.lower()))
    return served


def _documented(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (path, method)
        for path, item in document["paths"].items()
        for method in item
        if method in METHODS
    }


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    OPENAPI_31_VALIDATOR.validate(document)  # raises with the first problem
    for name, schema in document["components"]["schemas"].items():
        assert jsonschema_rs.meta.is_valid(schema), name  # each is valid JSON Schema 2020-12
    ids = [op["operationId"] for item in document["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))


def test_every_reference_resolves(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    schemes = document["components"]["securitySchemes"]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                assert ref.startswith("#/components/schemas/"), ref
                assert ref.rsplit("/", 1)[1] in schemas, ref
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document)
    for item in document["paths"].values():
        for op in item.values():
            for requirement in op["security"]:
                assert set(requirement) <= set(schemes), op["operationId"]


def test_every_route_of_the_app_is_documented_and_nothing_else(
    tmp_path: Path, document: dict[str, Any]
) -> None:
    documented = _documented(document)
    served = _app_routes(tmp_path)
    # The seed's paths answer with and without the trailing slash; the document names the
    # slashed one (the seed's spelling).
    missing = {
        (path, method)
        for path, method in served
        if (path, method) not in documented and (path + "/", method) not in documented
    }
    assert missing == set(), f"routes missing from the document: {sorted(missing)}"
    extra = documented - served
    assert extra == set(), f"documented but not served: {sorted(extra)}"


def test_admin_paths_need_the_admin_key_and_the_rest_say_what_they_need(
    document: dict[str, Any],
) -> None:
    open_paths = {
        "/healthz",
        "/openapi.json",
        "/api/texttoimage/jobs/",
        "/api/texttoimage/jobs/cancel/",
        "/files/images/{name}",
    }
    for path, item in document["paths"].items():
        for op in item.values():
            if path.startswith("/admin/") or path == "/metrics":
                assert op["security"] == [{"adminKey": []}], path
            elif path in open_paths:
                assert op["security"] == [], path
            else:
                assert op["security"] == [{"apiKey": []}], path
                assert "401" in op["responses"], path


def test_request_bodies_are_the_validation_models(document: dict[str, Any]) -> None:
    components = document["components"]["schemas"]
    used = {
        op["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
        for item in document["paths"].values()
        for op in item.values()
        if "requestBody" in op
    }
    assert used == {m.__name__ for m in REQUEST_MODELS}
    for model in REQUEST_MODELS:
        own = model.model_json_schema(ref_template="#/components/schemas/{model}")
        own.pop("$defs", None)
        mine = components[model.__name__]
        assert set(mine["properties"]) == set(own["properties"]), model.__name__
        assert mine.get("required") == own.get("required"), model.__name__
        assert mine.get("additionalProperties") == own.get("additionalProperties")
        for field, schema in own["properties"].items():
            if (model.__name__, field) not in VALIDATOR_FACTS:
                assert mine["properties"][field] == schema, (model.__name__, field)


def _accepts(model: type[BaseModel], data: dict[str, Any]) -> bool:
    try:
        model.model_validate(data)
    except ValidationError:
        return False
    return True


def test_what_the_document_adds_agrees_with_the_validators(document: dict[str, Any]) -> None:
    props = {
        name: schema.get("properties", {})
        for name, schema in document["components"]["schemas"].items()
    }
    assert props["JobRequest"]["model"]["enum"] == list(IMAGE_MODELS)
    for name in IMAGE_MODELS:
        assert _accepts(JobRequest, {"model": name, "prompt": "p"})
        assert _accepts(OpenAIImageRequest, {"model": name, "prompt": "p"})
    assert not _accepts(JobRequest, {"model": "realvision2", "prompt": "p"})
    for name in IMAGE_SCHEDULERS:
        assert _accepts(JobRequest, {"model": "amigo", "prompt": "p", "scheduler": name})
    assert not _accepts(JobRequest, {"model": "amigo", "prompt": "p", "scheduler": "DDIM"})
    size = jsonschema_rs.validator_for(props["OpenAIImageRequest"]["size"])
    for value in ("256x256", "1344x768", "1024x1024"):
        assert size.is_valid(value) and _accepts(OpenAIImageRequest, {"prompt": "p", "size": value})
    for value in ("1024", "12x12", "1024x1024x3"):
        assert not size.is_valid(value)
        assert not _accepts(OpenAIImageRequest, {"prompt": "p", "size": value})
    amount = jsonschema_rs.validator_for(props["Usd"]["amount"])
    for value in ("1", "0.000000001", "10.5", "999"):
        assert amount.is_valid(value) and _accepts(Usd, {"amount": value})
        assert _accepts(NewAccount, {"name": "n", "credit": value})
    for value in ("abc", "1.0000000001", "-1", "1e3"):
        assert not amount.is_valid(value)
    for value in ("abc", "1.0000000001", "-1"):
        assert not _accepts(Usd, {"amount": value})
    jobid = jsonschema_rs.validator_for(props["JobRef"]["jobid"])
    for value in (0, "12345678", " 7 ", 2**63 - 1):
        assert jobid.is_valid(value) and _accepts(JobRef, {"jobid": value, "signature": "s"})
    for value in (-1, "12a", "", 2**63):
        assert not jobid.is_valid(value)
        assert not _accepts(JobRef, {"jobid": value, "signature": "s"})


def test_served_without_a_key_as_cached_bytes(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path, config=None))
    client = TestClient(app)  # no lifespan: the document needs no services
    first = client.get("/openapi.json")
    assert first.status_code == 200
    assert first.headers["content-type"].startswith("application/json")
    assert first.content == document_bytes()
    assert orjson.loads(first.content)["openapi"] == "3.1.0"
    assert client.get("/openapi.json").content is not None
    assert document_bytes() is document_bytes()  # built once
