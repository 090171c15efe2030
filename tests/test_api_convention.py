"""Every service's OpenAPI holds to the one convention in docs/api.md.

Walks the spec of each service (and the gateway's own routes) as another system would read it:
collections answer ``{items, total, limit, offset}`` and take ``limit``/``offset`` with a stated
default and maximum, a resource's own identifier is ``id``, every moment is a ``Timestamp``
(RFC 3339 UTC with ``Z``) and every error is problem+json.
"""

from __future__ import annotations

import importlib
import re

import pytest
from marshmallow import fields

from shared.problems import PROBLEM_JSON
from shared.schemas import Timestamp

SERVICES = ("tickets", "callrouting", "surveys", "gateway")
PAGE = {"items", "total", "limit", "offset"}


@pytest.fixture(params=SERVICES)
def api(request, settings_factory):
    settings, _ = settings_factory(request.param, broker=False)
    app = importlib.import_module(f"services.{request.param}.app").create_app(settings)
    return app.extensions["flask-smorest"]["apis"][""]["ext_obj"]


def _resolve(spec: dict, node: dict) -> dict:
    while "$ref" in node:
        node = spec["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


def _json_answer(spec: dict, operation: dict) -> dict | None:
    answer = operation.get("responses", {}).get("200", {})
    schema = answer.get("content", {}).get("application/json", {}).get("schema")
    return _resolve(spec, schema) if schema else None


def _operations(spec: dict):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                yield path, method, operation


def test_every_collection_is_one_page_envelope_with_stated_limits(api):
    spec = api.spec.to_dict()
    wrong = []
    for path, method, operation in _operations(spec):
        if method != "get":
            continue
        answer = _json_answer(spec, operation)
        if answer is None:
            continue
        where = f"GET {path}"
        if answer.get("type") == "array":
            wrong.append(f"{where}: a bare list; answer {{items, total, limit, offset}}")
            continue
        properties = answer.get("properties", {})
        lists = {name for name, node in properties.items() if _resolve(spec, node).get("type") == "array"}
        if not ("items" in properties or "entries" in properties or ("total" in properties and lists)):
            continue  # a resource or a singleton report, not a collection
        if not PAGE <= set(properties):
            wrong.append(f"{where}: answers {sorted(properties)}, not {sorted(PAGE)}")
        parameters = {p["name"]: p for p in operation.get("parameters", []) if p.get("in") == "query"}
        limit = parameters.get("limit", {}).get("schema", {})
        if "offset" not in parameters or "default" not in limit or "maximum" not in limit:
            wrong.append(f"{where}: needs ?limit= (with default and maximum) and ?offset=")
    assert not wrong, "\n".join(wrong)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def test_a_resource_names_its_own_identifier_id(api):
    spec = api.spec.to_dict()
    wrong = []
    for name, schema in spec["components"]["schemas"].items():
        thing = _snake(re.sub(r"(Out|In|Schema|Page)$", "", name))
        own = f"{thing}_id"
        if own in schema.get("properties", {}):
            wrong.append(f"{name}.{own}: a resource's own identifier is `id`")
    assert not wrong, "\n".join(wrong)


def _marshmallow_schemas(api):
    plugin = next(plugin for plugin in api.spec.plugins if hasattr(plugin, "converter"))
    for key in plugin.converter.refs:
        yield key.SchemaClass if hasattr(key, "SchemaClass") else key[0]


def test_every_moment_is_an_rfc3339_utc_timestamp(api):
    wrong = []
    for schema in _marshmallow_schemas(api):
        for name, field in schema._declared_fields.items():
            inner = field.inner if isinstance(field, fields.List) else field
            if isinstance(inner, fields.DateTime) and not isinstance(inner, Timestamp):
                wrong.append(f"{schema.__name__}.{name}: use shared.schemas.Timestamp (RFC 3339 UTC with Z)")
    assert not wrong, "\n".join(sorted(set(wrong)))


def test_every_error_answer_is_problem_json(api):
    spec = api.spec.to_dict()
    wrong = []
    for path, method, operation in _operations(spec):
        for status, answer in operation.get("responses", {}).items():
            if status.startswith(("4", "5")) or status == "default":
                answer = (
                    answer
                    if "content" in answer
                    else spec["components"]["responses"].get(answer.get("$ref", "").rsplit("/", 1)[-1], {})
                )
                if set(answer.get("content", {})) - {PROBLEM_JSON}:
                    wrong.append(f"{method.upper()} {path} {status}: {sorted(answer['content'])}")
    assert not wrong, "\n".join(wrong)
