"""The simulated kube-apiserver: an aiohttp application speaking the Kubernetes REST protocol over the Store."""
from __future__ import annotations

import asyncio
import collections
import contextlib
import importlib
import json
import re
import ssl
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import yaml
from aiohttp import web
from multidict import CIMultiDict

from kubemeter_sim.apiserver import admission, discovery, protobuf, tables
from kubemeter_sim.apiserver.auth import (
    Attributes, Authenticator, Identity, allows, forbidden_error, review_attributes)
from kubemeter_sim.apiserver.errors import (
    ApiError, PageNotFound, bad_request, invalid, method_not_allowed, no_such_resource, too_old_resource_version,
    unauthorized, unexpected_response, unsupported_media_type)
from kubemeter_sim.apiserver.faults import FaultHandle, Faults
from kubemeter_sim.apiserver.jsonutil import dumps
from kubemeter_sim.apiserver.objects import WriteOptions
from kubemeter_sim.apiserver.resources import ResourceType
from kubemeter_sim.apiserver.selectors import field_matcher, label_matcher
from kubemeter_sim.apiserver.store import Store
from kubemeter_sim.apiserver.watch import Watcher, WatchHub, event_line

NodeProxy = Callable[[str, str, web.Request], Awaitable[web.StreamResponse]]
JSON = "application/json"
_PATCH_TYPES = {"application/json-patch+json": "json", "application/merge-patch+json": "merge",
                "application/strategic-merge-patch+json": "strategic", "application/apply-patch+yaml": "apply"}
_WRITE_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch"}
_PROXY_VERBS = {"GET": "get", "HEAD": "get", "POST": "create", "PUT": "update", "PATCH": "patch",
                "DELETE": "delete", "OPTIONS": "get"}
_PUBLIC_PATHS = ("/healthz", "/livez", "/readyz", "/version")
_INITIAL_EVENTS_END = "k8s.io/initial-events-end"
_PRE_TIMEOUT_BOOKMARK = 2.0     # from this long before a watch's timeoutSeconds ends it ...
_BOOKMARK_TICK = 1.0            # ... a bookmark at each tick of the watch cache's bookmark timer
_OFF_LOOP_ITEMS = 2000          # lists at least this long are encoded in a worker thread


@dataclass
class _Target:
    """What a resource URL addresses."""

    rtype: ResourceType
    namespace: str | None
    name: str
    subresource: str
    proxy_path: str
    watch_path: bool


class ApiServer:
    """Serves a Store over HTTP(S) like kube-apiserver; see the package docs for the in-process API."""

    def __init__(self, store: Store | None = None, *, host: str = "127.0.0.1", port: int = 0,
                 ssl_context: ssl.SSLContext | None = None, watch_history: int = 10_000,
                 bookmark_interval: float = 60.0) -> None:
        self.store = store or Store(watch_history=watch_history)
        if store is not None:
            store.set_history_limit(watch_history)
        self.node_proxy: NodeProxy | None = None
        self._host = host
        self._port = port
        self._ssl = ssl_context
        self._bookmark_interval = bookmark_interval
        self._hub = WatchHub(self.store)
        self._auth = Authenticator()
        self._faults = Faults()
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._parked: set[asyncio.Task] = set()        # requests hung by a fault
        self.denied: list[tuple[str, Attributes]] = []  # every authorization refused (user, request), as audit logs show
        self.clients: collections.Counter[tuple[str, str, str]] = collections.Counter()
        """Requests by (User-Agent, method, the fieldManager they name or "") as an audit log would show them."""

    # ---- lifecycle ---------------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"{'https' if self._ssl else 'http'}://{self._host}:{self._port}"

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await self._bind()

    async def _bind(self) -> None:
        assert self._runner is not None
        self._site = web.TCPSite(self._runner, self._host, self._port, ssl_context=self._ssl, reuse_address=True)
        await self._site.start()
        server = self._site._server
        if self._port == 0 and server is not None and server.sockets:      # type: ignore[union-attr]
            self._port = server.sockets[0].getsockname()[1]                  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is None:
            return
        await self._drop_connections()
        await self._runner.cleanup()
        self._runner = self._site = None

    async def __aenter__(self) -> "ApiServer":
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def restart(self) -> None:
        """Every connection drops; the listener comes back on the same port with the same state."""
        assert self._runner is not None and self._site is not None
        await self._site.stop()
        await self._drop_connections()
        await self._bind()

    async def _drop_connections(self) -> None:
        self._hub.close_all()
        for task in list(self._parked):
            task.cancel()
        assert self._runner is not None
        if self._runner.server is not None:
            for connection in list(self._runner.server.connections):
                if connection.transport is not None:
                    connection.transport.abort()
                connection.force_close()
        await asyncio.sleep(0)

    # ---- authentication & authorization -------------------------------------------------------------------------
    def add_token(self, token: str, rules: list[dict] | None = None, user: str = "kubernetes-admin") -> None:
        """Register a bearer token; rules are RBAC PolicyRules (None = cluster-admin). Once any token exists,
        requests without a known token get 401."""
        self._auth.add_token(token, rules, user)

    def authorize(self, token: str | None, verb: str, group: str, resource: str, subresource: str = "",
                  name: str = "", namespace: str = "") -> tuple[bool, str]:
        """SubjectAccessReview for in-process callers (simulated kubelets): (allowed, user)."""
        return self._auth.authorize(token, Attributes(verb, group, resource, subresource, name, namespace))

    # ---- faults ------------------------------------------------------------------------------------------------
    def inject_fault(self, *, status: int | None = None, delay: float = 0.0, hang: bool = False,
                     method: str | None = None, path: str | None = None, count: int | None = None,
                     retry_after: int | None = None) -> FaultHandle:
        return self._faults.add(status=status, delay=delay, hang=hang, method=method, path=path, count=count,
                                retry_after=retry_after)

    async def drop_watches(self) -> None:
        self._hub.close_all()
        await asyncio.sleep(0)

    def expire_resource_versions(self) -> None:
        self.store.expire_resource_versions()

    @property
    def open_watches(self) -> int:
        return self._hub.count()

    # ---- request handling ----------------------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.clients[(request.headers.get("User-Agent", ""), request.method, request.query.get("fieldManager", ""))] += 1
        try:
            fault = self._faults.take(request.method, request.path)
            if fault is not None:
                response = await self._apply_fault(fault)
                if response is not None:
                    return response
            return await self._dispatch(request)
        except ApiError as error:
            return _error_response(error)

    async def _apply_fault(self, fault: FaultHandle) -> web.Response | None:
        if fault.hang:
            task = asyncio.current_task()
            assert task is not None
            self._parked.add(task)
            try:
                await asyncio.Event().wait()
            finally:
                self._parked.discard(task)
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.status is None:
            return None
        error = unexpected_response(fault.status, "")
        if fault.retry_after is not None:
            error.details = {**(error.details or {}), "retryAfterSeconds": fault.retry_after}
        return _error_response(error)

    def _refuse(self, user: str, attrs: Attributes) -> ApiError:
        """The 403 for a request RBAC does not allow, recorded in ``denied`` as an audit log would."""
        self.denied.append((user, attrs))
        return forbidden_error(user, attrs)

    def _identity(self, request: web.Request) -> Identity:
        header = request.headers.get("Authorization", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else None
        identity = self._auth.identify(token)
        if identity is None:
            raise unauthorized()
        impersonated = request.headers.get("Impersonate-User")
        if not impersonated:
            return identity
        attrs = Attributes("impersonate", "", "users", name=impersonated)
        if not allows(identity, attrs):
            raise self._refuse(identity.user, attrs)
        return self._auth.impersonated(impersonated)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        if path.startswith(_PUBLIC_PATHS) and request.method in ("GET", "HEAD"):
            if path == "/version":
                return _json_response(discovery.VERSION_INFO)
            return web.Response(text="ok", content_type="text/plain")
        identity = self._identity(request)
        parts = path.strip("/").split("/")
        if parts[0] == "openapi":
            return self._openapi(parts)
        if parts[0] == "api" and len(parts) >= 2:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[0] == "apis" and len(parts) >= 3:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return self._discovery(parts)
        if not rest:
            return self._discovery(parts)
        target = self._target(group, version, rest)
        if target.subresource == "proxy":
            return await self._proxy(request, identity, target)
        verb = self._verb(request, target)
        if verb not in target.rtype.verbs:
            raise method_not_allowed()
        attrs = Attributes(verb, group, target.rtype.plural, target.subresource, target.name, target.namespace or "")
        if not allows(identity, attrs):
            raise self._refuse(identity.user, attrs)
        if target.rtype.group == "authorization.k8s.io":
            return await self._access_review(request, target.rtype, identity)
        return await self._serve(request, verb, target)

    async def _access_review(self, request: web.Request, rtype: ResourceType, identity: Identity) -> web.Response:
        """(Self)SubjectAccessReview: answered from the RBAC rules, never stored."""
        review = _decode_body(request, await request.read(), rtype)
        spec = review.get("spec") or {} if isinstance(review, dict) else {}
        attrs = review_attributes(spec)
        if rtype.kind == "SelfSubjectAccessReview":
            allowed = allows(identity, attrs)
        else:
            allowed = self._auth.authorize_user(spec.get("user", ""), attrs)
        return _json_response({"kind": rtype.kind, "apiVersion": rtype.api_version,
                               "metadata": {"creationTimestamp": None}, "spec": spec,
                               "status": {"allowed": allowed}}, 201)

    def _target(self, group: str, version: str, rest: list[str]) -> _Target:
        watch_path = rest[0] == "watch"
        if watch_path:
            rest = rest[1:]
        namespace = None
        if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] not in ("status", "finalize"):
            namespace, rest = rest[1], rest[2:]
        if not rest:
            raise no_such_resource()
        api_version = f"{group}/{version}" if group else version
        if not any(t.api_version == api_version for t in self.store.resources()):
            raise PageNotFound()
        rtype = self.store.resource(api_version, rest[0])
        if namespace is not None and not rtype.namespaced:
            raise no_such_resource()
        name = rest[1] if len(rest) > 1 else ""
        subresource = rest[2] if len(rest) > 2 else ""
        if subresource and subresource not in rtype.subresources:
            raise no_such_resource()
        if len(rest) > 3 and subresource != "proxy":
            raise no_such_resource()
        if name and rtype.namespaced and namespace is None:
            raise no_such_resource()
        return _Target(rtype, namespace, name, subresource, "/".join(rest[3:]), watch_path)

    @staticmethod
    def _verb(request: web.Request, target: _Target) -> str:
        method = request.method
        if method in ("GET", "HEAD"):
            if target.watch_path or request.query.get("watch") in ("true", "1"):
                return "watch"
            return "get" if target.name else "list"
        if method == "DELETE" and not target.subresource:
            return "delete" if target.name else "deletecollection"
        if method == "POST" and not target.name:
            return "create"
        if method in ("PUT", "PATCH") and target.name:
            return _WRITE_VERBS[method]
        raise method_not_allowed()

    async def _serve(self, request: web.Request, verb: str, target: _Target) -> web.StreamResponse:
        rtype, store, query = target.rtype, self.store, request.query
        if verb == "watch":
            return await self._watch(request, target)
        if verb == "list":
            return await self._list(request, target)
        if verb == "get" and target.subresource == "scale":
            return _json_response(store.get_scale(rtype.api_version, rtype.plural, target.name, target.namespace))
        if verb == "get":
            entry = store.get_entry(rtype, target.name, target.namespace)
            if _wants_table(request):
                return _json_response(tables.table(rtype, [store.as_version(rtype, entry.obj)],
                                                   query.get("includeObject", "Metadata"),
                                                   {"resourceVersion": entry.obj["metadata"]["resourceVersion"]}))
            return web.Response(body=store.view(rtype, entry), content_type=JSON)
        options = WriteOptions(dry_run=query.get("dryRun") == "All",
                               field_validation=query.get("fieldValidation") or "Warn",
                               field_manager=query.get("fieldManager", ""))
        if options.field_validation not in ("Strict", "Warn", "Ignore"):
            raise bad_request(f"fieldValidation must be one of Strict, Warn, Ignore, got {options.field_validation}")
        if verb in ("delete", "deletecollection"):
            return await self._delete(request, verb, target, options)
        body = await request.read()
        api_version = rtype.api_version
        subresource = target.subresource or None
        if verb == "create":
            result = store.create(api_version, rtype.plural, _decode_body(request, body, rtype),
                                  namespace=target.namespace, options=options)
            return _json_response(result, 201, options.warnings)
        if verb == "update":
            result = store.update(api_version, rtype.plural, _decode_body(request, body, rtype), subresource,
                                  name=target.name, namespace=target.namespace, options=options)
            return _json_response(result, 200, options.warnings)
        patch_type = _PATCH_TYPES.get(request.content_type)
        if patch_type is None:
            raise ApiError(415, "UnsupportedMediaType", "415: Unsupported Media Type")
        if patch_type == "strategic" and rtype.custom:
            accepted = [t for t, kind in _PATCH_TYPES.items() if not (kind == "strategic" and rtype.custom)]
            raise unsupported_media_type(request.content_type, accepted)
        existed = patch_type != "apply" or _exists(store, target)
        patch = _decode_patch(body, patch_type)
        result = store.patch(api_version, rtype.plural, target.name, patch, patch_type, target.namespace,
                             subresource, options=options)
        return _json_response(result, 200 if existed else 201, options.warnings)

    async def _delete(self, request: web.Request, verb: str, target: _Target,
                      options: WriteOptions) -> web.Response:
        body = await request.read()
        try:
            if request.content_type == protobuf.MEDIA_TYPE:
                delete_options = protobuf.decode(body)
            else:
                delete_options = json.loads(body) if body.strip() else {}
        except ValueError as error:
            raise bad_request(f"couldn't get version/kind; json parse error: {error}") from None
        if not isinstance(delete_options, dict):
            raise bad_request("DeleteOptions must be a JSON object")
        query = request.query
        policy = query.get("propagationPolicy") or delete_options.get("propagationPolicy")
        if policy is None and (query.get("orphanDependents") == "true" or delete_options.get("orphanDependents")):
            policy = "Orphan"
        if "All" in (delete_options.get("dryRun") or []):
            options.dry_run = True
        rtype = target.rtype
        if verb == "deletecollection":
            removed = self.store.delete_collection(rtype.api_version, rtype.plural, target.namespace,
                                                   query.get("labelSelector"), query.get("fieldSelector"),
                                                   policy or "Background")
            return _json_response({"kind": rtype.list_kind, "apiVersion": rtype.api_version,
                                   "metadata": {"resourceVersion": self.store.resource_version}, "items": removed})
        result = self.store.delete(rtype.api_version, rtype.plural, target.name, target.namespace,
                                   policy or "Background", preconditions=delete_options.get("preconditions"),
                                   options=options)
        meta = result["metadata"]
        pending = bool(meta.get("deletionTimestamp") and meta.get("finalizers"))  # answered as it was then
        if not pending and not rtype.returns_deleted_object:
            details = {"name": meta["name"], **({"group": rtype.group} if rtype.group else {}), "kind": rtype.plural,
                       "uid": meta["uid"]}
            return _json_response({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                                   "details": details})
        return _json_response(result)

    async def _list(self, request: web.Request, target: _Target) -> web.Response:
        rtype, query = target.rtype, request.query
        try:
            limit = int(query.get("limit") or 0)
        except ValueError:
            raise bad_request(f'strconv.ParseInt: parsing "{query.get("limit")}": invalid syntax') from None
        resource_version = query.get("resourceVersion") or ""
        if resource_version and not resource_version.isdigit():
            raise bad_request(f'invalid resource version: resourceVersion: Invalid value: "{resource_version}": '
                              f'strconv.ParseUint: parsing "{resource_version}": invalid syntax')
        _check_list_options(query)
        if resource_version == "0":
            limit = 0  # "any version" is served whole from the watch cache, which ignores limit
        field_selector = _with_name(query.get("fieldSelector"), target.name)
        exact_rv = int(resource_version) if query.get("resourceVersionMatch") == "Exact" else None
        entries, token, remaining, list_rv = self.store.select(
            rtype, target.namespace, query.get("labelSelector"), field_selector, max(limit, 0), query.get("continue"),
            exact_rv)
        metadata: dict[str, Any] = {"resourceVersion": str(list_rv)}
        if token:
            metadata["continue"] = token
        if remaining is not None:
            metadata["remainingItemCount"] = remaining
        if _wants_table(request):
            objects = [self.store.as_version(rtype, e.obj) for e in entries]
            include = query.get("includeObject", "Metadata")
            document = await _off_loop(len(objects), tables.table, rtype, objects, include, metadata)
            return _json_response(document)
        head = dumps({"kind": rtype.list_kind, "apiVersion": rtype.api_version, "metadata": metadata})
        items = await _off_loop(len(entries), lambda: b",".join(self.store.list_item_view(rtype, e) for e in entries))
        return web.Response(body=b"".join((head[:-1], b',"items":[', items, b"]}")), content_type=JSON)

    # ---- watch ---------------------------------------------------------------------------------------------------
    async def _watch(self, request: web.Request, target: _Target) -> web.StreamResponse:
        rtype, query, store = target.rtype, request.query, self.store
        label_ok = label_matcher(query.get("labelSelector"))
        field_ok = field_matcher(_with_name(query.get("fieldSelector"), target.name), rtype.kind, rtype.custom)
        send_initial = query.get("sendInitialEvents") == "true"
        bookmarks = query.get("allowWatchBookmarks") == "true"
        if send_initial:
            _check_initial_events_options(query.get("resourceVersionMatch"))
        timeout = _timeout_seconds(query.get("timeoutSeconds"))
        encoder = None
        if _wants_table(request):
            include = query.get("includeObject", "Metadata")

            def encoder(obj: dict) -> bytes:
                return dumps(tables.table(rtype, [obj], include,
                                          {"resourceVersion": obj["metadata"]["resourceVersion"]}))
        watcher = Watcher(rtype, target.namespace, label_ok, field_ok, encoder)
        requested = query.get("resourceVersion") or ""
        since: int | None = None
        if requested not in ("", "0") and not send_initial:
            try:
                since = int(requested)
            except ValueError:
                raise bad_request(f'resourceVersion: Invalid value: "{requested}": strconv.ParseUint: parsing '
                                  f'"{requested}": invalid syntax') from None
        response = web.StreamResponse(status=200, headers={"Content-Type": JSON,
                                                           "Cache-Control": "no-cache, private"})
        response.enable_chunked_encoding()
        try:
            await response.prepare(request)
            if since is not None and since < store.oldest_valid_rv():
                expired = too_old_resource_version(since, store.oldest_valid_rv())
                await response.write(event_line("ERROR", dumps(expired.status())))
            else:
                self._open_watch(watcher, since, send_initial and bookmarks)
                loop = asyncio.get_running_loop()
                last_bookmark = None if timeout is None else loop.time() + timeout - _PRE_TIMEOUT_BOOKMARK
                try:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(timeout):
                            await self._pump(watcher, response, rtype, bookmarks, last_bookmark)
                finally:
                    self._hub.close(watcher)
                if watcher.closed:
                    response.force_close()      # a dropped watch also drops its connection
            await response.write_eof()
        except ConnectionError:                 # the client went away
            pass
        return response

    def _open_watch(self, watcher: Watcher, since: int | None, initial_events_end: bool) -> None:
        """Queue the initial ADDED events (no resourceVersion) and register; no await, so nothing is missed."""
        rtype, store = watcher.rtype, self.store
        watcher.rv = since if since is not None else int(store.resource_version)
        if since is None:
            for entry in store.iter_entries(rtype, watcher.namespace):
                if watcher.matches(entry.obj):
                    obj_bytes = watcher.encoder(store.as_version(rtype, entry.obj)) if watcher.encoder \
                        else store.view(rtype, entry)
                    watcher.push(event_line("ADDED", obj_bytes))
        self._hub.open(watcher, since)
        if initial_events_end:
            watcher.push(self._bookmark(rtype, {_INITIAL_EVENTS_END: "true"}))

    async def _pump(self, watcher: Watcher, response: web.StreamResponse, rtype: ResourceType,
                    bookmarks: bool, last_bookmark: float | None) -> None:
        """Write the watcher's events as they come; with bookmarks, one every bookmark interval and, from
        ``last_bookmark`` (loop time) until the watch times out, one a tick, as the watch cache sends them."""
        loop = asyncio.get_running_loop()
        while True:
            if not watcher.lines and not watcher.closed:
                wait = self._bookmark_interval if bookmarks else None
                if bookmarks and last_bookmark is not None:
                    wait = min(self._bookmark_interval, max(last_bookmark - loop.time(), _BOOKMARK_TICK))
                try:
                    async with asyncio.timeout(wait):
                        await watcher.wakeup.wait()
                except TimeoutError:
                    if int(self.store.resource_version) > watcher.rv:
                        # as the watch cache: a bookmark only when it is past where the watch started
                        watcher.push(self._bookmark(rtype, None))
            lines = watcher.take()
            if lines:
                await response.write(b"".join(lines))
            if watcher.closed:
                return

    def _bookmark(self, rtype: ResourceType, annotations: dict | None) -> bytes:
        metadata: dict[str, Any] = {"resourceVersion": self.store.resource_version}
        if annotations:
            metadata["annotations"] = annotations
        return event_line("BOOKMARK", dumps({"kind": rtype.kind, "apiVersion": rtype.api_version,
                                             "metadata": metadata}))

    # ---- node proxy, discovery, openapi --------------------------------------------------------------------------
    async def _proxy(self, request: web.Request, identity: Identity, target: _Target) -> web.StreamResponse:
        verb = _PROXY_VERBS.get(request.method, "get")
        attrs = Attributes(verb, "", "nodes", "proxy", target.name)
        if not allows(identity, attrs):
            raise self._refuse(identity.user, attrs)
        self.store.get_entry(target.rtype, target.name, None)
        if self.node_proxy is None:
            raise ApiError(503, "ServiceUnavailable", f'no route to node "{target.name}"')
        return await self.node_proxy(target.name, "/" + target.proxy_path, request)

    def _discovery(self, parts: list[str]) -> web.Response:
        types = self.store.resources()
        document: dict | None = None
        if parts == ["api"]:
            document = discovery.api_versions(f"{self._host}:{self._port}")
        elif parts == ["apis"]:
            document = discovery.api_group_list(types)
        elif len(parts) == 2 and parts[0] == "apis":
            document = discovery.api_group(types, parts[1])
        elif len(parts) == 2 and parts[0] == "api":
            document = discovery.api_resource_list(types, parts[1])
        elif len(parts) == 3 and parts[0] == "apis":
            document = discovery.api_resource_list(types, f"{parts[1]}/{parts[2]}")
        if document is None:
            raise PageNotFound()
        return _json_response(document)

    def _openapi(self, parts: list[str]) -> web.Response:
        if len(parts) < 2 or parts[1] != "v3":
            raise PageNotFound()
        try:
            openapi = importlib.import_module("kubemeter_sim.apiserver.openapi")
        except ImportError:
            raise PageNotFound() from None
        types = self.store.resources()
        if len(parts) == 2:
            return _json_response(openapi.openapi_v3_root(types))
        if parts[2] == "api" and len(parts) == 4:
            group, version = "", parts[3]
        elif parts[2] == "apis" and len(parts) == 5:
            group, version = parts[3], parts[4]
        else:
            raise PageNotFound()
        served = [t for t in types if t.group == group and t.version == version]
        if not served:
            raise PageNotFound()
        return _json_response(openapi.openapi_v3_document(group, version, served))


# ---- helpers ---------------------------------------------------------------------------------------------------
def _check_initial_events_options(resource_version_match: str | None) -> None:
    """sendInitialEvents needs resourceVersionMatch=NotOlderThan (apimachinery's validateWatchOptions)."""
    if resource_version_match != "NotOlderThan":
        raise invalid("ListOptions", "meta.k8s.io", "", [{
            "reason": "FieldValueForbidden", "field": "resourceVersionMatch",
            "message": "Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"}])


def _check_list_options(query: Any) -> None:
    """apimachinery's ValidateListOptions for a LIST: resourceVersionMatch needs a resourceVersion (not "0" for
    Exact) and no continue token; sendInitialEvents is for watches only."""
    causes = []
    match = query.get("resourceVersionMatch") or ""
    if match:
        if not query.get("resourceVersion"):
            causes.append(admission.field_forbidden("resourceVersionMatch",
                                                    "resourceVersionMatch is forbidden unless resourceVersion is "
                                                    "provided"))
        if query.get("continue"):
            causes.append(admission.field_forbidden("resourceVersionMatch",
                                                    "resourceVersionMatch is forbidden when continue is provided"))
        if match not in ("Exact", "NotOlderThan"):
            causes.append({"reason": "FieldValueNotSupported", "field": "resourceVersionMatch",
                           "message": f'Unsupported value: "{match}": supported values: "Exact", "NotOlderThan", '
                                      '""'})
        if match == "Exact" and query.get("resourceVersion") == "0":
            causes.append(admission.field_forbidden("resourceVersionMatch", 'resourceVersionMatch "exact" is '
                                                                            'forbidden for resourceVersion "0"'))
    if query.get("sendInitialEvents"):
        causes.append(admission.field_forbidden("sendInitialEvents", "sendInitialEvents is forbidden for list"))
    if causes:
        raise invalid("ListOptions", "meta.k8s.io", "", causes)


async def _off_loop(size: int, function: Callable[..., Any], *args: Any) -> Any:
    """Run a big encoding in a thread so one large LIST does not stall every other request (stored objects are
    never mutated, so reading them there is safe)."""
    if size < _OFF_LOOP_ITEMS:
        return function(*args)
    return await asyncio.to_thread(function, *args)


def _exists(store: Store, target: _Target) -> bool:
    try:
        store.get_entry(target.rtype, target.name, target.namespace)
    except ApiError:
        return False
    return True


def _with_name(field_selector: str | None, name: str) -> str | None:
    """A watch/list on a named URL is a watch with metadata.name=NAME."""
    if not name:
        return field_selector
    return f"metadata.name={name}" + (f",{field_selector}" if field_selector else "")


def _timeout_seconds(value: str | None) -> int | None:
    """An integer, as the real server parses it (Go's strconv.ParseInt: no "300.0", no spaces)."""
    if not value:
        return None
    if not re.fullmatch(r"[+-]?[0-9]+", value):
        raise bad_request(f'strconv.ParseInt: parsing "{value}": invalid syntax')
    return int(value)


def _wants_table(request: web.Request) -> bool:
    for media in request.headers.get("Accept", "").split(","):
        params = {p.split("=", 1)[0].strip(): p.split("=", 1)[1].strip() for p in media.split(";")[1:] if "=" in p}
        if params.get("as") == "Table" and params.get("g") == "meta.k8s.io" and params.get("v") in ("v1", "v1beta1"):
            return True
    return False


_INT64 = range(-(2**63), 2**63)


def _json_int(text: str) -> int | float:
    """An integer as apimachinery's JSON decoding keeps it: int64 when it fits, else float64 (so a schema's
    ``integer`` check rejects it with a 422, never an overflow deeper down)."""
    number = int(text)
    return number if number in _INT64 else float(number)


def _narrow_ints(document: Any) -> Any:
    """The same for a YAML body."""
    if isinstance(document, dict):
        return {key: _narrow_ints(value) for key, value in document.items()}
    if isinstance(document, list):
        return [_narrow_ints(value) for value in document]
    if isinstance(document, int) and not isinstance(document, bool) and document not in _INT64:
        return float(document)
    return document


def _decode_body(request: web.Request, body: bytes, rtype: ResourceType) -> Any:
    content_type = request.content_type
    if content_type == protobuf.MEDIA_TYPE and protobuf.supports(rtype.kind):
        return protobuf.decode(body)
    try:
        if content_type in ("application/yaml", "application/apply-patch+yaml"):
            return _narrow_ints(yaml.safe_load(body))
        if content_type not in (JSON, "application/octet-stream", "") and "json" not in content_type:
            raise unsupported_media_type(content_type, [JSON, "application/yaml"] + (
                [] if rtype.custom else [protobuf.MEDIA_TYPE]))
        return json.loads(body, parse_int=_json_int)
    except (ValueError, yaml.YAMLError) as error:
        raise bad_request(f"couldn't get version/kind; json parse error: {error}") from None


def _decode_patch(body: bytes, patch_type: str) -> Any:
    try:
        return _narrow_ints(yaml.safe_load(body)) if patch_type == "apply" else json.loads(body, parse_int=_json_int)
    except (ValueError, yaml.YAMLError) as error:
        # json-patch's merge reports any undecodable document as ErrBadJSONPatch
        raise bad_request("invalid JSON patch" if patch_type == "merge" else f"error decoding patch: {error}") from None


def _json_response(document: Any, status: int = 200, warnings: list[str] | None = None) -> web.Response:
    headers = CIMultiDict()
    for warning in warnings or ():
        headers.add("Warning", "299 - " + json.dumps(warning))  # one header each, as the real server sends them
    return web.Response(body=dumps(document), status=status, content_type=JSON, headers=headers)


def _error_response(error: ApiError) -> web.Response:
    if isinstance(error, PageNotFound):
        return web.Response(status=404, text=error.message + "\n", content_type="text/plain")
    headers = {}
    retry_after = (error.details or {}).get("retryAfterSeconds")
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return web.Response(body=dumps(error.status()), status=error.code, content_type=JSON, headers=headers)

