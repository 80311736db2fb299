import json
import logging

from config.logging import JsonFormatter, RequestIdFilter, request_id


def test_json_lines_carry_the_request_id_and_extra_fields():
    token = request_id.set("req-42")
    try:
        record = logging.makeLogRecord(
            {
                "name": "apps.x",
                "levelno": 30,
                "levelname": "WARNING",
                "msg": "%d plays",
                "args": (3,),
            }
        )
        record.plays = 3
        RequestIdFilter().filter(record)
        line = json.loads(JsonFormatter().format(record))
    finally:
        request_id.reset(token)
    assert line["message"] == "3 plays"
    assert line["request_id"] == "req-42"
    assert (line["level"], line["logger"], line["plays"]) == ("WARNING", "apps.x", 3)


def test_a_request_logs_with_the_id_it_echoes(client, db, caplog):
    caplog.set_level(logging.WARNING, logger="django.request")
    response = client.get("/no-such-page", HTTP_X_REQUEST_ID="trace-me-1")
    assert response["X-Request-ID"] == "trace-me-1"
    assert [r.request_id for r in caplog.records if r.name == "django.request"] == ["trace-me-1"]
