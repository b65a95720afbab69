"""The OpenAPI document and what makes it: flask-openapi3 builds /openapi.json from the routes and
the models they take and answer (serving/bodies.py, serving/answers.py), and validates every
request against the same models, so the document and the checks cannot drift apart.

Each route states its operation with `operation(...)` (its view's docstring is the summary): a
readable operationId (a generated client calls `rank`, `search_memories`), a tag per resource,
the API-key scope it needs (`x-scope`, which serving/auth.py enforces), its answers, and the
errors it may give in the one error shape of serving/errors.py. `validation_error` turns
pydantic's report into that shape: a 400 naming the first bad field in dotted form
(`context.time`, `candidates[3]`; `$` for the whole body), an unknown field before any other,
since it is most often a misspelt known one. Interactive docs (Swagger UI, whose files ship in
flask-openapi3-swagger: no internet needed) live under /docs.
"""

from __future__ import annotations

from typing import Any, NoReturn

from flask_openapi3 import Info, OpenAPI, Tag
from pydantic import BaseModel, ValidationError

from pipelines.strict_json import shown_path
from serving.answers import ErrorBody
from serving.errors import ApiError

VERSION = "1.0.0"
BEARER = "bearerAuth"
DOCS_PREFIX = "/docs"  # Swagger UI at /docs/swagger (/docs leads there), its files below it
SWAGGER_PAGE = f"{DOCS_PREFIX}/swagger"

TAGS = {
    "signals": Tag(name="signals", description="Send signals (docs/signals.md)."),
    "features": Tag(name="features", description="A user's online features."),
    "memories": Tag(
        name="memories",
        description="A user's memories: add, list, search, correct, history, delete.",
    ),
    "ranking": Tag(name="ranking", description="Rank items for a user."),
    "users": Tag(name="users", description="Forget a user in every store."),
    "service": Tag(name="service", description="Health, readiness, metrics, this document."),
}

ERRORS = {
    400: "Invalid request: `field` names what to fix (`$`: the whole body).",
    401: "No API key, an unknown one, or a key in the query string (refused on every route).",
    403: "The key lacks the scope this operation needs.",
    404: "Not found.",
    409: "The memory collection predates scopes and history: run `engram memories migrate`.",
    413: "Body or batch too large.",
    415: "Unsupported content type.",
    503: "A store the operation needs is unavailable; retry later (Retry-After).",
}
_EVERY_ROUTE = (400, 401)  # a request that cannot be read; a key in the query string


def new_app(import_name: str) -> OpenAPI:
    """A Flask app that documents and validates its routes (flask-openapi3)."""
    app = OpenAPI(
        import_name,
        info=Info(
            title="Engram API",
            version=VERSION,
            description="Signals in; features, memories and rankings out. See docs/api.md.",
        ),
        security_schemes={
            BEARER: {
                "type": "http",
                "scheme": "bearer",
                "description": "An API key with scopes read, write or admin.",
            }
        },
        validation_error_status=400,
        validation_error_model=ErrorBody,
        validation_error_callback=validation_error,
        doc_prefix=DOCS_PREFIX,
        doc_url="/openapi.json",
    )
    # Swagger UI would send the document to an online validator for its badge.
    app.config["SWAGGER_CONFIG"] = {"validatorUrl": None}
    return app


def operation(
    operation_id: str,
    tag: str,
    *,
    answers: dict[int, type[BaseModel] | dict[str, Any]],
    scope: str | None = None,
    errors: tuple[int, ...] = (),
    description: str | None = None,
    request_body: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The keyword arguments of a flask-openapi3 route: its operationId, tag, scope (`security`
        and `x-scope`: with one, 403 may answer too), success answers and error answers. The view's
        one-line docstring is the operation's summary; `description` says more. `request_body`
    describes a body that no model reads (a signal batch)."""
    statuses = {*_EVERY_ROUTE, *errors, *((403,) if scope else ())}
    responses: dict[int, Any] = {
        **{status: _error_answer(status) for status in sorted(statuses)},
        **answers,
    }
    options: dict[str, Any] = {
        "operation_id": operation_id,
        "tags": [TAGS[tag]],
        "responses": responses,
        "description": description,
    }
    extensions: dict[str, Any] = {}
    if scope is not None:
        options["security"] = [{BEARER: []}]
        extensions["x-scope"] = scope
    if request_body is not None:
        extensions["requestBody"] = request_body  # a field of the operation, as flask-openapi3
    options["openapi_extensions"] = extensions  # builds it from these keys
    return options


def _error_answer(status: int) -> dict[str, Any]:
    schema = {"$ref": f"#/components/schemas/{ErrorBody.__name__}"}
    return {"description": ERRORS[status], "content": {"application/json": {"schema": schema}}}


def validation_error(error: ValidationError) -> NoReturn:
    """flask-openapi3's validation_error_callback: the first bad field as the API's 400."""
    problems = error.errors(include_url=False, include_input=False, include_context=False)
    unknown = [problem for problem in problems if problem["type"] == "extra_forbidden"]
    problem = (unknown or problems)[0]
    if not problem["loc"]:
        raise ApiError(400, "the body must be a JSON object", field="$", error="invalid_input")
    detail = "unknown field: this operation does not take it" if unknown else problem["msg"]
    raise ApiError(400, detail, field=field_path(problem["loc"]), error="invalid_input")


def field_path(loc: tuple[int | str, ...]) -> str:
    """A pydantic location as the API names fields: `context.time`, `candidates[3]`."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path = f"{path or '$'}[{part}]"
        else:
            path = f"{path}.{part}" if path else part
    return shown_path(path)
