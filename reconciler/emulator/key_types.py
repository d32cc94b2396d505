"""Iterable's API key types, and the answer a key gets for an endpoint its type may not call.

Iterable's "API Keys" article: a server-side key may call every endpoint; a Mobile key
only the calls of its SDKs (the list below, from the article); a JavaScript key a like set
for web pages *(inferred: the article's own list for it was not at hand)*; a read-only key
only reads *(inferred: GET, its list being reads)*. A key of a type that may not call an
endpoint is answered 401 BadApiKey, "Disabled API key or insufficient privileges", whose
params name the endpoint, the key's type and its last 8 characters, as a client of
Iterable's React Native SDK saw (react-native-sdk issue 139)."""

from __future__ import annotations

from reconciler.emulator.replies import EmulatorResponse, json_reply

SERVER_SIDE = "Standard"

_CLIENT_SIDE: frozenset[tuple[str, str]] = frozenset(
    ("POST", path)
    for path in (
        "/api/users/disableDevice",
        "/api/users/registerDeviceToken",
        "/api/users/update",
        "/api/users/updateEmail",
        "/api/users/updateSubscriptions",
        "/api/commerce/trackPurchase",
        "/api/commerce/updateCart",
        "/api/events/trackPushOpen",
        "/api/events/trackInAppOpen",
        "/api/events/trackInAppClick",
        "/api/events/trackInAppClose",
        "/api/events/trackInAppDelivery",
        "/api/events/inAppConsume",
        "/api/events/track",
    )
) | {("GET", "/api/inApp/getMessages")}

KEY_TYPES = (SERVER_SIDE, "Mobile", "JavaScript", "ReadOnly")


def may_call(key_type: str, method: str, path: str) -> bool:
    """Whether a key of `key_type` may call `method path`."""
    if key_type == SERVER_SIDE:
        return True
    if key_type == "ReadOnly":
        return method == "GET"
    return (method, path) in _CLIENT_SIDE


def insufficient(key_type: str, api_key: str, path: str) -> EmulatorResponse:
    """Iterable's answer to a key whose type may not call `path`."""
    return json_reply(
        401,
        {
            "msg": "Disabled API key or insufficient privileges",
            "code": "BadApiKey",
            "params": {
                "ip": "127.0.0.1",
                "endpoint": path,
                "apiKeyIdentifier": api_key[-8:],
                "apiKeyType": key_type,
            },
        },
    )
