"""What an import would do, decided from two readings (the account, this host) and
nothing else: pure rules, so a dry run and the real run agree and tests need no AWS.

Things are matched by name and compared. A configuration name's revisions are matched in
order by their values: the host's may be a prefix of the account's (the rest are
created), never different. A service that exists here with another configuration is
skipped with what differs: an import never changes what already runs. What cannot come
over (IAM roles, KMS keys, VPC connectors) is named on the item that loses it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidRequest
from ..secretrefs import parse_reference
from ..sources.registry import ImageRef
from .account import Account, Connection, Revision, ServiceView

CREATE, NOTHING, SKIP = "create", "nothing to do", "skip"
CONNECTION, AUTO_SCALING, OBSERVABILITY = "connection", "auto scaling", "observability"
SERVICE, DOMAIN = "service", "custom domain"

_HEALTH_DEFAULTS = {
    "Protocol": "TCP",
    "Path": "/",
    "Interval": 5,
    "Timeout": 2,
    "HealthyThreshold": 1,
    "UnhealthyThreshold": 5,
}


@dataclass(frozen=True)
class SecretNeed:
    """A secret a service reads: whether this host has it, and grants it to the service."""

    variable: str
    reference: str
    name: str
    present: bool
    granted: bool


@dataclass
class Item:
    kind: str
    name: str
    action: str
    detail: str = ""  # what will be created, or why it is skipped
    lost: list[str] = field(default_factory=list)  # what cannot come over, and why
    todo: list[str] = field(default_factory=list)  # what the user must do afterwards
    requests: list[dict[str, Any]] = field(default_factory=list)  # Create calls, in order
    source_arns: list[str] = field(default_factory=list)  # what each request recreates
    service: str = ""  # a custom domain's service
    was: str = ""  # a custom domain's DNS target in the account
    image_copy: tuple[str, str] | None = None  # (account's image, this host's), to push
    secrets: list[SecretNeed] = field(default_factory=list)


@dataclass
class Plan:
    items: list[Item]
    # Account ARN -> this host's, for what exists here already; apply adds what it creates.
    arns: dict[str, str]

    def pending(self) -> list[Item]:
        return [i for i in self.items if i.action == CREATE]


@dataclass(frozen=True)
class Options:
    only: frozenset[str] = frozenset()  # service names; empty: every service
    push_registry: str = ""  # host[:port][/prefix] ECR images are copied to


def make_plan(source: Account, target: Account, options: Options = Options()) -> Plan:
    """The plan to recreate ``source`` on ``target``."""
    unknown = sorted(options.only - {s.name for s in source.services})
    if unknown:
        raise InvalidRequest(f"--only {', '.join(unknown)}: no such service in the account")
    services = [s for s in source.services if not options.only or s.name in options.only]
    arns: dict[str, str] = {}
    items = _connections(source.connections, target.connections, services, options, arns)
    skipped: set[str] = set()
    for kind, src, tgt, used in (
        (AUTO_SCALING, source.auto_scaling, target.auto_scaling, _used_asc(services)),
        (OBSERVABILITY, source.observability, target.observability, _used_obs(services)),
    ):
        names = (
            sorted({r.name for r in src} & used) if options.only else sorted({r.name for r in src})
        )
        for name in names:
            item = revisions_item(kind, name, src, tgt, arns)
            items.append(item)
            if item.action == SKIP:
                skipped |= {r.arn for r in src if r.name == name}
    by_name = {s.name: s for s in target.services}
    for view in services:
        item = service_item(view, by_name.get(view.name), target, arns, skipped, options)
        items.append(item)
        items += _domain_items(view, by_name.get(view.name), item)
    return Plan(items, arns)


# -- configurations ---------------------------------------------------------------


def revisions_item(
    kind: str, name: str, source: list[Revision], target: list[Revision], arns: dict[str, str]
) -> Item:
    """One configuration name: its revisions here must be the account's first ones."""
    src = [r for r in source if r.name == name]
    tgt = [r for r in target if r.name == name]
    same = 0
    while same < min(len(src), len(tgt)) and src[same].values == tgt[same].values:
        same += 1
    if same < len(tgt) and same < len(src):
        return Item(
            kind,
            name,
            SKIP,
            f"exists here with other revisions: revision {tgt[same].revision} here is"
            f" {_values(tgt[same].values)}, the account's revision {src[same].revision} is"
            f" {_values(src[same].values)}",
        )
    arns.update({s.arn: t.arn for s, t in zip(src, tgt, strict=False)})
    rest = src[same:]
    if not rest:
        return Item(kind, name, NOTHING, f"{len(src)} revision(s) here")
    member = (
        "AutoScalingConfigurationName"
        if kind == AUTO_SCALING
        else ("ObservabilityConfigurationName")
    )
    requests = [
        {member: name, **r.values, **({"Tags": _tag_list(r.tags)} if r.tags else {})} for r in rest
    ]
    detail = "; ".join(f"revision {r.revision}: {_values(r.values)}" for r in rest)
    return Item(kind, name, CREATE, detail, requests=requests, source_arns=[r.arn for r in rest])


def _values(values: dict[str, Any]) -> str:
    shown = {k: (v.get("Vendor") if isinstance(v, dict) else v) for k, v in values.items()}
    return ", ".join(f"{k} {v}" for k, v in shown.items()) or "no tracing"


def _used_asc(services: list[ServiceView]) -> set[str]:
    return {
        (s.description.get("AutoScalingConfigurationSummary") or {}).get(
            "AutoScalingConfigurationName", ""
        )
        for s in services
    }


def _used_obs(services: list[ServiceView]) -> set[str]:
    arns = [
        (s.description.get("ObservabilityConfiguration") or {}).get(
            "ObservabilityConfigurationArn", ""
        )
        for s in services
    ]
    return {a.split("/")[1] for a in arns if a.count("/") >= 1}


def _connections(
    source: list[Connection],
    target: list[Connection],
    services: list[ServiceView],
    options: Options,
    arns: dict[str, str],
) -> list[Item]:
    used = {_connection_arn(s.description) for s in services}
    here = {c.name: c for c in target}
    items = []
    for conn in source:
        if options.only and conn.arn not in used:
            continue
        authorize = f"authorize it: slipway connections authorize {conn.name}"
        if conn.name in here:
            arns[conn.arn] = here[conn.name].arn
            todo = [authorize] if here[conn.name].status != "AVAILABLE" else []
            items.append(Item(CONNECTION, conn.name, NOTHING, here[conn.name].status, todo=todo))
        elif conn.provider != "GITHUB":
            items.append(
                Item(CONNECTION, conn.name, SKIP, f"{conn.provider}: slipway has GitHub only")
            )
        else:
            items.append(
                Item(
                    CONNECTION,
                    conn.name,
                    CREATE,
                    "GITHUB, PENDING_HANDSHAKE",
                    todo=[
                        f"{authorize} (a token or a GitHub App: App Runner's handshake"
                        " does not carry over)"
                    ],
                    requests=[{"ConnectionName": conn.name, "ProviderType": "GITHUB"}],
                    source_arns=[conn.arn],
                )
            )
    return items


def _connection_arn(description: dict[str, Any]) -> str:
    auth = (description.get("SourceConfiguration") or {}).get("AuthenticationConfiguration")
    return (auth or {}).get("ConnectionArn", "")


# -- services ---------------------------------------------------------------------


def create_params(description: dict[str, Any], tags: dict[str, str]) -> tuple[dict, list[str]]:
    """CreateService's members for a service as DescribeService shows it, normalised so
    that the account's and this host's descriptions compare; and what is left out."""
    lost: list[str] = []
    src = description["SourceConfiguration"]
    source: dict[str, Any] = {"AutoDeploymentsEnabled": src.get("AutoDeploymentsEnabled", True)}
    if src.get("ImageRepository"):
        image = src["ImageRepository"]
        source["ImageRepository"] = {
            "ImageIdentifier": image["ImageIdentifier"],
            "ImageRepositoryType": image["ImageRepositoryType"],
            "ImageConfiguration": _runtime_values(image.get("ImageConfiguration") or {}),
        }
    else:
        code = dict(src["CodeRepository"])
        conf = code.get("CodeConfiguration") or {"ConfigurationSource": "REPOSITORY"}
        if conf.get("CodeConfigurationValues"):
            conf = {
                **conf,
                "CodeConfigurationValues": _runtime_values(conf["CodeConfigurationValues"]),
            }
        code["CodeConfiguration"] = conf
        if code.get("SourceDirectory") in ("", "/", None):
            code.pop("SourceDirectory", None)
        source["CodeRepository"] = code
    auth = src.get("AuthenticationConfiguration") or {}
    if auth.get("AccessRoleArn"):
        lost.append(
            f"access role {auth['AccessRoleArn']}: no IAM roles here; ECR pulls use"
            " `slipway registries login` or the host's AWS credentials"
        )
    if auth.get("ConnectionArn"):
        source["AuthenticationConfiguration"] = {"ConnectionArn": auth["ConnectionArn"]}
    instance = description.get("InstanceConfiguration") or {}
    if instance.get("InstanceRoleArn"):
        lost.append(
            f"instance role {instance['InstanceRoleArn']}: no IAM roles here; give the app"
            " credentials as secrets"
        )
    params: dict[str, Any] = {
        "ServiceName": description["ServiceName"],
        "SourceConfiguration": source,
        "InstanceConfiguration": {
            "Cpu": _units(instance.get("Cpu", "1024"), "vCPU"),
            "Memory": _units(instance.get("Memory", "2048"), "GB"),
        },
        "HealthCheckConfiguration": {
            **_HEALTH_DEFAULTS,
            **(description.get("HealthCheckConfiguration") or {}),
        },
    }
    asc = description.get("AutoScalingConfigurationSummary") or {}
    if asc.get("AutoScalingConfigurationArn"):
        params["AutoScalingConfigurationArn"] = asc["AutoScalingConfigurationArn"]
    obs = description.get("ObservabilityConfiguration") or {}
    if obs.get("ObservabilityEnabled"):
        params["ObservabilityConfiguration"] = {
            "ObservabilityEnabled": True,
            "ObservabilityConfigurationArn": obs["ObservabilityConfigurationArn"],
        }
    network = description.get("NetworkConfiguration") or {}
    egress = network.get("EgressConfiguration") or {}
    if egress.get("EgressType") == "VPC":
        lost.append(
            f"VPC connector {egress.get('VpcConnectorArn')}: egress is DEFAULT here; make a"
            " connector of Docker networks and update the service"
        )
    if network.get("IpAddressType", "IPV4") != "IPV4":
        lost.append(f"IpAddressType {network['IpAddressType']}: IPV4 only here")
    public = (network.get("IngressConfiguration") or {}).get("IsPubliclyAccessible", True)
    params["NetworkConfiguration"] = {"IngressConfiguration": {"IsPubliclyAccessible": public}}
    if (description.get("EncryptionConfiguration") or {}).get("KmsKey"):
        lost.append("KMS key: images and data stay on this host, unencrypted by KMS")
    if tags:
        params["Tags"] = _tag_list(tags)
    return params, lost


def _runtime_values(conf: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in conf.items() if v not in (None, {}, "")}
    if "Port" in conf or "Runtime" not in conf:
        out["Port"] = str(conf.get("Port") or "8080")
    return out


def _units(value: Any, unit: str) -> str:
    """ "1 vCPU" -> "1024", "2 GB" -> "2048"; "1024" stays."""
    text = str(value).strip()
    if text.endswith(unit):
        return str(int(float(text.removesuffix(unit).strip()) * 1024))
    return text


def _tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]


def translate(params: dict[str, Any], arns: dict[str, str]) -> dict[str, Any] | None:
    """``params`` with the account's ARNs replaced by this host's; None when one has no
    counterpart here (yet)."""
    out = {**params, "SourceConfiguration": dict(params["SourceConfiguration"])}
    if "AutoScalingConfigurationArn" in params:
        if params["AutoScalingConfigurationArn"] not in arns:
            return None
        out["AutoScalingConfigurationArn"] = arns[params["AutoScalingConfigurationArn"]]
    obs = params.get("ObservabilityConfiguration")
    if obs:
        if obs["ObservabilityConfigurationArn"] not in arns:
            return None
        out["ObservabilityConfiguration"] = {
            **obs,
            "ObservabilityConfigurationArn": arns[obs["ObservabilityConfigurationArn"]],
        }
    auth = params["SourceConfiguration"].get("AuthenticationConfiguration")
    if auth:
        if auth["ConnectionArn"] not in arns:
            return None
        out["SourceConfiguration"]["AuthenticationConfiguration"] = {
            "ConnectionArn": arns[auth["ConnectionArn"]]
        }
    return out


def differences(wanted: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """The members (dotted paths) where two CreateService requests differ."""
    flat_w, flat_a = _flatten(wanted), _flatten(actual)
    return sorted(k for k in flat_w.keys() | flat_a.keys() if flat_w.get(k) != flat_a.get(k))


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, inner in value.items():
            out |= _flatten(inner, f"{prefix}.{key}" if prefix else key)
        return out
    return {prefix: value}


def _secret_needs(params: dict[str, Any], target: Account, service: str) -> list[SecretNeed]:
    source = params["SourceConfiguration"]
    conf = (
        (source.get("ImageRepository") or {}).get("ImageConfiguration")
        or ((source.get("CodeRepository") or {}).get("CodeConfiguration") or {}).get(
            "CodeConfigurationValues"
        )
        or {}
    )
    needs = []
    for variable, reference in sorted((conf.get("RuntimeEnvironmentSecrets") or {}).items()):
        names = parse_reference(reference).names
        found = next((n for n in names if n in target.secrets), names[-1])
        needs.append(
            SecretNeed(
                variable,
                reference,
                found,
                found in target.secrets,
                service in target.secrets.get(found, []),
            )
        )
    return needs


def service_item(
    view: ServiceView,
    here: Any,
    target: Account,
    arns: dict[str, str],
    skipped: set[str],
    options: Options,
) -> Item:
    """One service: create it, leave it (the same here already), or skip it saying why."""
    params, lost = create_params(view.description, view.tags)
    item = Item(SERVICE, view.name, CREATE, _origin(params), lost=lost)
    if view.status == "CREATE_FAILED":
        return _skip(item, "CREATE_FAILED in the account: it never ran, nothing to recreate")
    if view.status == "PAUSED":
        lost.append("paused in the account; it runs here (slipway services pause to stop it)")
    image = params["SourceConfiguration"].get("ImageRepository")
    if image and options.push_registry and image["ImageRepositoryType"] == "ECR":
        copy = pushed_identifier(image["ImageIdentifier"], options.push_registry)
        if copy != image["ImageIdentifier"]:
            item.image_copy = (image["ImageIdentifier"], copy)
            image["ImageIdentifier"] = copy
    try:
        item.secrets = _secret_needs(params, target, view.name)
    except InvalidRequest as exc:
        return _skip(item, exc.message)
    item.requests = [params]
    if here is not None:
        wanted = translate(params, arns)
        actual, _ = create_params(here.description, here.tags)
        diff = differences(wanted, actual) if wanted else ["a configuration it uses"]
        if not diff:
            item.action, item.detail, item.image_copy, item.secrets = NOTHING, "", None, []
            return item
        return _skip(
            item,
            f"a service named {view.name} exists here with another configuration"
            f" (differs: {', '.join(diff)}); delete or rename one of them to import it",
        )
    for arn in (params.get("AutoScalingConfigurationArn"), _obs_arn(params)):
        if arn and arn in skipped:
            return _skip(item, f"its configuration {arn} was not imported (see above)")
    conn = _connection_arn(params)
    if conn:
        here_conn = next((c for c in target.connections if c.arn == arns.get(conn)), None)
        if here_conn is None or here_conn.status != "AVAILABLE":
            name = conn.split("/")[1] if "/" in conn else conn
            return _skip(
                item,
                f"its connection {name} is not authorized here yet: run `slipway connections"
                f" authorize {name}`, then import again",
            )
    return item


def pushed_identifier(identifier: str, registry: str) -> str:
    """Where ``--push-images`` puts an image: its repository under ``registry``."""
    ref = ImageRef.parse(identifier)
    if identifier.startswith(registry.rstrip("/") + "/"):
        return identifier
    suffix = f"@{ref.digest}" if ref.digest else f":{ref.tag or 'latest'}"
    return f"{registry.rstrip('/')}/{ref.repository}{suffix}"


def _obs_arn(params: dict[str, Any]) -> str:
    return (params.get("ObservabilityConfiguration") or {}).get("ObservabilityConfigurationArn", "")


def _origin(params: dict[str, Any]) -> str:
    source = params["SourceConfiguration"]
    if source.get("ImageRepository"):
        return f"image {source['ImageRepository']['ImageIdentifier']}"
    code = source["CodeRepository"]
    return f"code {code['RepositoryUrl']} {code['SourceCodeVersion']['Value']}"


def _skip(item: Item, reason: str) -> Item:
    item.action, item.detail, item.image_copy, item.secrets = SKIP, reason, None, []
    return item


def _domain_items(view: ServiceView, here: Any, service: Item) -> list[Item]:
    have = {d.name for d in here.domains} if here is not None else set()
    items = []
    for domain in view.domains:
        item = Item(DOMAIN, domain.name, CREATE, service=view.name, was=view.dns_target)
        item.requests = [{"DomainName": domain.name, "EnableWWWSubdomain": domain.enable_www}]
        if domain.name in have:
            item.action = NOTHING
        elif service.action == SKIP:
            _skip(item, f"its service {view.name} was not imported")
        else:
            item.detail = f"on {view.name}" + (" with www" if domain.enable_www else "")
            item.todo = [f"DNS: point {domain.name} at this host (was {view.dns_target})"]
        items.append(item)
    return items
