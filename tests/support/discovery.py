"""Google's own discovery documents as the judge of what our stand-ins answer.

google-api-python-client ships the discovery documents of every Google API. Conformance tests build a
discovery-based client from them (`discovery_client`) and check every response body against the
document's schemas (`SchemaChecker`): unknown fields, wrong types, int64 not sent as a string and
enum values the API does not define all fail the test.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import googleapiclient
import jsonschema
from google.auth.credentials import AnonymousCredentials
from googleapiclient.discovery import build_from_document
from googleapiclient.http import HttpRequest

DOCUMENTS = Path(googleapiclient.__file__).parent / "discovery_cache" / "documents"


def discovery_document(name: str) -> dict[str, Any]:
    """`name` as the file is called, e.g. "storage.v1", "run.v2", "sqladmin.v1beta4"."""
    return json.loads((DOCUMENTS / f"{name}.json").read_text())


def discovery_client(name: str, endpoint: str, recorder: list | None = None):
    """A discovery-based client (googleapiclient) aimed at a stand-in.

    With `recorder`, every (method name, response body) pair is appended to it so the test can check
    the bodies against the schemas afterwards.
    """
    document = discovery_document(name)
    document["rootUrl"] = endpoint.rstrip("/") + "/"
    document["baseUrl"] = document["rootUrl"] + document.get("servicePath", "")

    def request_builder(http, postproc, uri, **kwargs):
        request = HttpRequest(http, postproc, uri, **kwargs)
        if recorder is not None:
            original = request.postproc

            def recording_postproc(resp, content):
                recorder.append((kwargs.get("methodId"), uri, json.loads(content) if content else None))
                return original(resp, content)

            request.postproc = recording_postproc
        return request

    return build_from_document(document, credentials=AnonymousCredentials(), requestBuilder=request_builder)


class SchemaChecker:
    """Validates JSON bodies against one discovery document's schemas, strictly."""

    def __init__(self, name: str):
        document = discovery_document(name)
        self.definitions = {key: self._convert(schema) for key, schema in document["schemas"].items()}

    def check(self, schema_name: str, body: Any) -> None:
        schema = {"$ref": f"#/definitions/{schema_name}", "definitions": self.definitions}
        jsonschema.validate(body, schema)

    def errors(self, schema_name: str, body: Any) -> list[str]:
        schema = {"$ref": f"#/definitions/{schema_name}", "definitions": self.definitions}
        validator = jsonschema.Draft7Validator(schema)
        return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(body)]

    def _convert(self, node: Any) -> Any:
        if isinstance(node, list):
            return [self._convert(item) for item in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            return {"$ref": f"#/definitions/{node['$ref']}"}
        out: dict[str, Any] = {}
        kind = node.get("type")
        fmt = node.get("format")
        if kind == "string" or (kind == "integer" and fmt in {"int64", "uint64"}):
            # Google sends 64-bit integers as JSON strings.
            out["type"] = "string"
        elif kind == "any":
            pass
        elif kind:
            out["type"] = kind
        if "enum" in node:
            out["enum"] = node["enum"]
        if "properties" in node:
            out["properties"] = {key: self._convert(value) for key, value in node["properties"].items()}
            if "additionalProperties" not in node:
                out["additionalProperties"] = False
        if "additionalProperties" in node:
            out["additionalProperties"] = self._convert(node["additionalProperties"])
        if "items" in node:
            out["items"] = self._convert(node["items"])
        return out
