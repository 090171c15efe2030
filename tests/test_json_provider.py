"""The services' JSON answers through orjson (shared/json_provider.py): the same documents as
Flask's own encoder gave, in the cases where the two could differ."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

from flask import Flask, jsonify

from shared.json_provider import OrjsonProvider


@dataclass
class Moment:
    name: str
    count: int


def app_with(provider: bool) -> Flask:
    app = Flask(__name__)
    if provider:
        app.json = OrjsonProvider(app)
    return app


def test_a_document_reads_the_same_as_flasks_own_encoder_gave():
    document = {
        "id": uuid.UUID("6f1c3a52-3d0e-5b8a-9c41-2f6d7e8a9b10"),
        "name": "Inès 李",
        "amount": Decimal("12.50"),
        "at": datetime(2026, 12, 4, 9, 30, tzinfo=UTC),
        "day": date(2026, 12, 4),
        "moment": Moment("first", 2),
        "nested": [{"a": None, "b": True, "c": 1.5}],
    }
    ours, flasks = app_with(True), app_with(False)
    with ours.app_context():
        answer = jsonify(document)
        text = ours.json.dumps(document)
    with flasks.app_context():
        expected = jsonify(document)
    assert answer.mimetype == "application/json" and answer.get_data().endswith(b"\n")
    assert json.loads(answer.get_data()) == json.loads(expected.get_data()) == json.loads(text)
    assert "Inès 李".encode() in answer.get_data()  # UTF-8, not \u escapes


def test_keys_keep_the_order_the_code_gave_an_int_key_is_text_and_nan_is_null():
    app = app_with(True)
    with app.app_context():
        body = jsonify({"z": 1, "a": float("nan"), 3: "an int key"}).get_data()
        assert body == b'{"z":1,"a":null,"3":"an int key"}\n'
        assert app.json.loads(b'{"x": [1, 2]}') == {"x": [1, 2]}
        assert json.loads(app.json.dumps({"x": 1}, indent=2)) == {"x": 1}  # the standard library's options still work
