"""Bearer-token authentication and RBAC-style authorization (PolicyRules as in a ClusterRole)."""
from __future__ import annotations

from dataclasses import dataclass

from kubemeter_sim.apiserver.errors import ApiError, forbidden

ADMIN_USER = "kubernetes-admin"


@dataclass(frozen=True)
class Attributes:
    """What a request asks to do (authorizer.AttributesRecord)."""

    verb: str
    group: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    namespace: str = ""
    path: str = ""                 # set for non-resource requests

    @property
    def is_resource(self) -> bool:
        return bool(self.resource)


def _rule_allows(rule: dict, attrs: Attributes) -> bool:
    verbs = rule.get("verbs") or []
    if "*" not in verbs and attrs.verb not in verbs:
        return False
    if not attrs.is_resource:
        for url in rule.get("nonResourceURLs") or []:
            if url == "*" or url == attrs.path or (url.endswith("*") and attrs.path.startswith(url[:-1])):
                return True
        return False
    groups = rule.get("apiGroups") or []
    if "*" not in groups and attrs.group not in groups:
        return False
    wanted = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    resources = rule.get("resources") or []
    if not any(r == "*" or r == wanted or (attrs.subresource and r == f"*/{attrs.subresource}") for r in resources):
        return False
    names = rule.get("resourceNames") or []
    return not names or (bool(attrs.name) and attrs.name in names)


@dataclass(frozen=True)
class Identity:
    """Who a request is from: a user and its RBAC PolicyRules (None: cluster-admin, as system:masters)."""

    user: str
    rules: tuple[dict, ...] | None


class Authenticator:
    """Known tokens with their user and rules; no token registered at all means an open (test) server."""

    def __init__(self) -> None:
        self._tokens: dict[str, Identity] = {}

    def add_token(self, token: str, rules: list[dict] | None = None, user: str = ADMIN_USER) -> None:
        self._tokens[token] = Identity(user, None if rules is None else tuple(rules))

    @property
    def enabled(self) -> bool:
        return bool(self._tokens)

    def identify(self, token: str | None) -> Identity | None:
        """The identity of a bearer token; None when unauthenticated."""
        if not self._tokens:
            return Identity(ADMIN_USER, None)
        return self._tokens.get(token or "")

    def impersonated(self, user: str) -> Identity:
        """Who an ``Impersonate-User`` request acts as: the rules of that user's tokens (a user without any may do
        only what every authenticated user may)."""
        rules = [rule for identity in self._tokens.values() if identity.user == user
                 for rule in identity.rules or ()]
        admin = any(identity.user == user and identity.rules is None for identity in self._tokens.values())
        return Identity(user, None if admin else tuple(rules))

    def authorize(self, token: str | None, attrs: Attributes) -> tuple[bool, str]:
        identity = self.identify(token)
        if identity is None:
            return False, ""
        return allows(identity, attrs), identity.user

    def authorize_user(self, user: str, attrs: Attributes) -> bool:
        """SubjectAccessReview by user name: allowed if any of that user's tokens allows it."""
        if not self._tokens:
            return True
        return any(allows(identity, attrs) for identity in self._tokens.values() if identity.user == user)


# What the system:basic-user ClusterRole grants every authenticated user.
_BASIC_USER_RULES = ({"apiGroups": ["authorization.k8s.io"], "verbs": ["create"],
                      "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]},)


def allows(identity: Identity, attrs: Attributes) -> bool:
    rules = identity.rules
    return rules is None or any(_rule_allows(rule, attrs) for rule in (*_BASIC_USER_RULES, *rules))


def review_attributes(spec: dict) -> Attributes:
    """Attributes from a (Self)SubjectAccessReview spec."""
    resource = spec.get("resourceAttributes")
    if resource is not None:
        return Attributes(resource.get("verb", ""), resource.get("group", ""), resource.get("resource", ""),
                          resource.get("subresource", ""), resource.get("name", ""), resource.get("namespace", ""))
    non_resource = spec.get("nonResourceAttributes") or {}
    return Attributes(non_resource.get("verb", ""), path=non_resource.get("path", ""))


def forbidden_error(user: str, attrs: Attributes) -> ApiError:
    """The 403 the RBAC authorizer produces, word for word."""
    if not attrs.is_resource:
        return ApiError(403, "Forbidden", f'forbidden: User "{user}" cannot {attrs.verb} path "{attrs.path}"',
                        {})
    resource = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    scope = f'in the namespace "{attrs.namespace}"' if attrs.namespace else "at the cluster scope"
    return forbidden(attrs.resource, attrs.group, attrs.name,
                     f'User "{user}" cannot {attrs.verb} resource "{resource}" in API group "{attrs.group}" {scope}')
