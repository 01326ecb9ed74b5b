"""kubemeter_sim.apiserver: a simulated kube-apiserver that kopf, the kubernetes client and kubectl use unmodified.

Modules, outermost first:
  server     ApiServer: aiohttp app (routing, auth, watch streaming, tables, node proxy, faults, restart)
  watch      fan-out of committed changes to open watches (each event encoded once)
  store      Store: objects, resourceVersions, history, GC, finalizers, namespaces, CRD-defined types
  admission  what registry strategies do before storing (names, defaults, status rules, generation, CR schema)
  patch      merge / JSON / strategic merge patch
  selectors, tables, discovery, auth, faults, protobuf, tls, errors, resources, jsonutil: one concern each
  schema, openapi, builtin_schemas, cel: CRD schema validation and OpenAPI documents (separate owner)
"""
