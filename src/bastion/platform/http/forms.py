"""Form-encoded request bodies, as every Stripe SDK sends them, turned at the edge into the JSON
body the route's typed model validates (ADR 35).

Stripe's bracket encoding: `metadata[order]=6735` is an object, `expand[0]=customer` or
`expand[]=customer` an array, `items[0][price]=...` an array of objects, and an empty value
(`description=`) unsets a field that may be null. Every value arrives as text; the route's
request schema (its OpenAPI document) says which become integers, booleans or null. Anything
the schema does not know is passed on as text, and the model refuses it naming the parameter.
"""

import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote_plus

import orjson
from fastapi import FastAPI
from fastapi.routing import RouteContext, iter_route_contexts
from starlette.datastructures import Headers
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from bastion.kernel.errors import BastionError, InvalidRequest
from bastion.platform.http.errors import BodyInvalidForm, FormLimitExceeded, ParameterDuplicated, media_type_of, response_for
from bastion.platform.http.middleware import replay_body

FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"
JSON_MEDIA_TYPE = "application/json"
# Limits of one form body, beyond the listener's byte limit: Stripe's own objects nest at most
# four levels (`payment_method_data[billing_details][address][line1]`) and its arrays hold at
# most a few dozen items.
FORM_FIELDS_MAX = 1_000
FORM_NESTING_MAX = 5
FORM_ARRAY_ITEMS_MAX = 100
FORM_NAME_LENGTH_MAX = 256

_NAME = re.compile(r"([^\[\]]+)((?:\[[^\[\]]*\])*)")
_SEGMENT = re.compile(r"\[([^\[\]]*)\]")
# An integer, also written with a zero fraction (`3005.0`), as JSON bodies take it.
_INTEGER = re.compile(r"(-?[0-9]{1,19})(?:\.0{1,19})?")
_NUMBER = re.compile(r"-?[0-9]{1,19}(\.[0-9]{1,19})?")
_BOOLEANS = {"true": True, "false": False}
# An item of an array in a query: its name, then `[]` or an index.
_QUERY_ARRAY = re.compile(r"([a-z_]{1,64})\[[0-9]{0,3}\]")

# A decoded form: objects of text, arrays (`[]`) of text, and text.
FormValue = dict[str, "FormValue"] | list[str] | str
Schema = Mapping[str, Any]


def decode_form(body: bytes) -> dict[str, FormValue]:
    """The parameters of a form body, nested by their brackets. Raises BodyInvalidForm,
    ParameterDuplicated or FormLimitExceeded, naming the parameter."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BodyInvalidForm("The request body is not UTF-8 text") from None
    pairs = [pair for pair in text.split("&") if pair]
    if len(pairs) > FORM_FIELDS_MAX:
        raise FormLimitExceeded(f"A request takes at most {FORM_FIELDS_MAX} parameters; this one has {len(pairs)}")
    form: dict[str, FormValue] = {}
    for pair in pairs:
        raw_name, equals, raw_value = pair.partition("=")
        name = _unquoted(raw_name, None)
        if not equals:
            raise BodyInvalidForm(f"Parameter {name} has no `=`: send `{name}=` to unset it", param=name)
        _put(form, name, _path(name), _unquoted(raw_value, name))
    return form


def _unquoted(text: str, name: str | None) -> str:
    try:
        decoded = unquote_plus(text, errors="strict")
    except UnicodeDecodeError:
        raise BodyInvalidForm("A parameter's percent-encoded bytes are not UTF-8 text", param=name) from None
    if "\x00" in decoded:
        # PostgreSQL text cannot hold it, as the edge refuses it in JSON bodies.
        raise InvalidRequest("Text must not contain the NUL character (%00)", param=name)
    return decoded


def _path(name: str) -> list[str]:
    """`card[token]` -> ["card", "token"]; `expand[]` -> ["expand", ""]."""
    if len(name) > FORM_NAME_LENGTH_MAX:
        raise FormLimitExceeded(f"A parameter name has at most {FORM_NAME_LENGTH_MAX} characters", param=name[:64])
    match = _NAME.fullmatch(name)
    if match is None:
        raise BodyInvalidForm(f"Invalid parameter name {name}: brackets must pair, as in metadata[key]", param=name)
    path = [match.group(1), *_SEGMENT.findall(match.group(2))]
    if len(path) - 1 > FORM_NESTING_MAX:
        raise FormLimitExceeded(f"Parameters nest at most {FORM_NESTING_MAX} levels deep", param=name)
    if "" in path[:-1]:
        raise BodyInvalidForm(f"Invalid parameter name {name}: `[]` may only end a name; index arrays of objects", param=name)
    return path


def _put(form: dict[str, FormValue], name: str, path: list[str], value: str) -> None:
    appending = path[-1] == ""
    keys = path[:-1] if appending else path
    container = form
    for depth, key in enumerate(keys[:-1]):
        child = container.setdefault(key, {})
        if not isinstance(child, dict):
            raise _twice(name, keys[: depth + 1])
        container = child
    existing = container.get(keys[-1])
    if not appending:
        if existing is not None:
            raise _twice(name, keys)
        container[keys[-1]] = value
    elif existing is None:
        container[keys[-1]] = [value]
    elif not isinstance(existing, list):
        raise _twice(name, keys)
    elif len(existing) >= FORM_ARRAY_ITEMS_MAX:
        raise FormLimitExceeded(f"An array holds at most {FORM_ARRAY_ITEMS_MAX} items", param=name)
    else:
        existing.append(value)


def _twice(name: str, keys: list[str]) -> ParameterDuplicated:
    param = keys[0] + "".join(f"[{key}]" for key in keys[1:])
    spelt = "" if name == param else f" (as {name})"
    return ParameterDuplicated(f"Parameter {param} is given more than once{spelt}", param=param)


def form_as_json(body: bytes, schema: Schema, components: Schema) -> bytes:
    """The JSON body of the same parameters as the form `body`, typed by the request `schema`."""
    alternatives = _alternatives(schema, components)
    parameters = {
        name: coerced(value, _property(alternatives, name), components, name) for name, value in decode_form(body).items()
    }
    return orjson.dumps(parameters)


def coerced(value: FormValue, schema: Schema, components: Schema, param: str) -> Any:
    """`value` as JSON of the types `schema` allows: "42" an integer, "true" a boolean, "" null
    where null is allowed, `{"0": .., "1": ..}` an array where an array is expected."""
    alternatives = _alternatives(schema, components)
    if isinstance(value, str):
        return _scalar(value, alternatives)
    items = next((option.get("items", {}) for option in alternatives if option.get("type") == "array"), None)
    if isinstance(value, list):
        return [coerced(item, items or {}, components, f"{param}[{index}]") for index, item in enumerate(value)]
    if items is not None and value and all(key.isdigit() for key in value):
        return [coerced(item, items, components, f"{param}[{index}]") for index, item in enumerate(_indexed(value, param))]
    return {key: coerced(item, _property(alternatives, key), components, f"{param}[{key}]") for key, item in value.items()}


def _indexed(value: dict[str, FormValue], param: str) -> list[FormValue]:
    """`a[0]`, `a[1]`... as a list: the indices must run from 0 without a gap."""
    if len(value) > FORM_ARRAY_ITEMS_MAX:
        raise FormLimitExceeded(f"An array holds at most {FORM_ARRAY_ITEMS_MAX} items", param=param)
    if sorted(value) != sorted(str(index) for index in range(len(value))):
        raise BodyInvalidForm(f"The indices of {param} must run 0, 1, 2... without a gap", param=param)
    return [value[str(index)] for index in range(len(value))]


def _property(alternatives: list[Schema], key: str) -> Schema:
    """The schema of `key` in the first object of `alternatives` that declares it (a union of
    objects: each its own properties), else their additional properties'."""
    for option in alternatives:
        if key in option.get("properties", {}):
            return option["properties"][key]  # type: ignore[no-any-return]
    for option in alternatives:
        if isinstance(option.get("additionalProperties"), Mapping):
            return option["additionalProperties"]  # type: ignore[no-any-return]
    return {}


def _alternatives(schema: Schema, components: Schema) -> list[Schema]:
    """The plain schemas `schema` allows: references resolved, `anyOf`/`oneOf`/`allOf` flattened."""
    if "$ref" in schema:
        return _alternatives(components[schema["$ref"].rpartition("/")[2]], components)
    # A schema may state keywords of its own beside a combinator (an object whose anyOf says
    # which of its properties is required).
    options = [schema]
    for combinator in ("anyOf", "oneOf", "allOf"):
        options += [plain for option in schema.get(combinator, ()) for plain in _alternatives(option, components)]
    return options


def _types(alternatives: list[Schema]) -> set[str]:
    types: set[str] = set()
    for option in alternatives:
        declared = option.get("type")
        if isinstance(declared, str):
            types.add(declared)
        elif isinstance(declared, list):
            types.update(declared)
        # Values are read only where no type is stated: a currency's enum has some 300.
        elif "const" in option:
            types.add(_json_type(option["const"]))
        else:
            types.update(_json_type(item) for item in option.get("enum", ()))
    return types


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    return "string"


def _scalar(value: str, alternatives: list[Schema]) -> Any:
    types = _types(alternatives)
    if value == "":
        return _unset(types)
    if "string" in types or not types:
        return value
    if "integer" in types and (integer := _INTEGER.fullmatch(value)):
        return int(integer.group(1))
    if "number" in types and _NUMBER.fullmatch(value):
        return float(value) if "." in value else int(value)
    # Anything else is left as text: the model refuses it with the type it expects, naming the parameter.
    return _BOOLEANS.get(value, value) if "boolean" in types else value


def _unset(types: set[str]) -> Any:
    """What `name=` stands for: Stripe's "unset", null where null is allowed, else the empty
    value of the field's type."""
    if "null" in types:
        return None
    if "object" in types and "string" not in types:
        return {}
    if "array" in types and "string" not in types:
        return []
    return ""


class RequestBodies:
    """The JSON schema of each operation's request body, from the API's published document."""

    def __init__(self, app: FastAPI) -> None:
        self._app = app
        # Every route in the router's order, with its body's schema (None: it takes none): read
        # from the document once, at the first form, when every route is in place.
        self._routes: list[tuple[RouteContext, Schema | None]] | None = None
        self._components: Schema = {}

    def schema_of(self, scope: Scope) -> tuple[Schema, Schema] | None:
        """The body schema and the document's components of the operation `scope` reaches; None
        when it reaches none, or one without a JSON body (a processor's notification reads its
        own)."""
        if self._routes is None:
            self._routes = self._read_routes()
        for context, schema in self._routes:
            if context.matches(scope)[0] is Match.FULL:
                return None if schema is None else (schema, self._components)
        return None

    def _read_routes(self) -> list[tuple[RouteContext, Schema | None]]:
        document = self._app.openapi()
        self._components = document.get("components", {}).get("schemas", {})
        routes: list[tuple[RouteContext, Schema | None]] = []
        for context in iter_route_contexts(self._app.routes):
            for method in context.methods or ():
                operation = document["paths"].get(context.path, {}).get(method.lower(), {})
                content = operation.get("requestBody", {}).get("content", {})
                if JSON_MEDIA_TYPE in content:
                    routes.append((context, content[JSON_MEDIA_TYPE]["schema"]))
                    break
            else:
                routes.append((context, None))
        return routes


def _query_arrays(query: bytes) -> bytes:
    """`name[0]=a&name[]=b` as `name=a&name=b`; every other parameter as it was (`created[gte]`)."""
    pairs = []
    for pair in query.split(b"&"):
        raw_name, equals, value = pair.partition(b"=")
        array = _QUERY_ARRAY.fullmatch(unquote_plus(raw_name.decode("ascii", errors="replace")))
        pairs.append(array.group(1).encode() + equals + value if array else pair)
    return b"&".join(pairs)


class BracketEncoding:
    """ASGI middleware, inside the edge (which has read the body within its limit): a form body
    becomes the JSON body of the same parameters, typed by the route's schema; and a query's
    array, `expand[0]=customer&expand[1]=payment_method`, is spelt as the routes read it,
    `expand=customer&expand=payment_method`."""

    def __init__(self, app: ASGIApp, *, bodies: Callable[[Scope], tuple[Schema, Schema] | None]) -> None:
        self.app = app
        self.bodies = bodies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (b"[" in scope["query_string"] or b"%5B" in scope["query_string"].upper()):
            scope["query_string"] = _query_arrays(scope["query_string"])
        if scope["type"] != "http" or media_type_of(Headers(scope=scope).get("content-type")) != FORM_MEDIA_TYPE:
            await self.app(scope, receive, send)
            return
        found = self.bodies(scope)
        if found is None:
            await self.app(scope, receive, send)
            return
        body = await _body(receive)
        try:
            as_json = form_as_json(body, *found)
        except BastionError as refused:
            await response_for(refused)(scope, receive, send)
            return
        headers = [(name, value) for name, value in scope["headers"] if name not in (b"content-type", b"content-length")]
        headers += [(b"content-type", JSON_MEDIA_TYPE.encode()), (b"content-length", str(len(as_json)).encode())]
        # The scope itself, not a copy: the edge reads the route the router records in it.
        scope["headers"] = headers
        await self.app(scope, replay_body(as_json, receive), send)


async def _body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if message["type"] != "http.request" or not message.get("more_body", False):
            return b"".join(chunks)
