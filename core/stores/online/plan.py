"""What to read for a feature service or feature refs, from Feast's registry: the stored views
(with the inputs of on-demand views) and the on-demand views, computed by the very function
registered with Feast. The only module here that loads the Feast SDK, lazily."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.errors import InvalidInputError
from core.stores.online.layout import ViewRef, view_ref

if TYPE_CHECKING:  # the SDK takes seconds to import; only the registry readers need it
    from feast import FeatureService, FeatureStore, OnDemandFeatureView


def views_from_store(
    store: FeatureStore, features: Sequence[str] | FeatureService | str
) -> list[ViewRef]:
    """ViewRefs from the registry for "view:feature" refs, a feature service or its name."""
    from feast import FeatureService

    if isinstance(features, str):
        features = store.get_feature_service(features)
    wanted: dict[str, list[str]] = {}
    if isinstance(features, FeatureService):
        for projection in features.feature_view_projections:
            if projection.name_alias or projection.join_key_map:
                raise InvalidInputError(projection.name, "aliased projections are not supported")
            wanted.setdefault(projection.name, []).extend(f.name for f in projection.features)
    else:
        for ref in features:
            view, _, name = ref.partition(":")
            if not name:
                raise InvalidInputError("features", f"expected 'view:feature', got {ref!r}")
            wanted.setdefault(view, []).append(name)
    return [view_ref(store.get_feature_view(name), names) for name, names in wanted.items()]


@dataclass(frozen=True)
class OnDemandRef:
    """An on-demand view computed by the fast path with the function registered in Feast."""

    name: str
    inputs: tuple[tuple[str, str], ...]  # (view, feature) it reads from stored views
    request: tuple[str, ...]  # request fields it reads
    outputs: tuple[str, ...]
    udf: Callable[[dict[str, list[Any]]], dict[str, list[Any]]]


@dataclass(frozen=True)
class ServicePlan:
    """What reading a feature service takes: stored views (with on-demand inputs), outputs."""

    name: str
    views: tuple[ViewRef, ...]
    outputs: tuple[str, ...]  # output feature names, in the service's order
    on_demand: tuple[OnDemandRef, ...]

    @property
    def join_keys(self) -> list[str]:
        """Join keys of the service's stored views, in order of first use."""
        return list(dict.fromkeys(v.join_key for v in self.views))

    @property
    def request_fields(self) -> list[str]:
        """Request fields the on-demand views need."""
        return list(dict.fromkeys(f for odfv in self.on_demand for f in odfv.request))


def _on_demand_ref(odfv: OnDemandFeatureView) -> OnDemandRef:
    if odfv.mode != "python" or odfv.singleton:
        raise InvalidInputError(odfv.name, "only batch python-mode on-demand views are read here")
    inputs = tuple(
        (projection.name, f.name)
        for projection in odfv.source_feature_view_projections.values()
        for f in projection.features
    )
    request = tuple(
        f.name for source in odfv.source_request_sources.values() for f in source.schema
    )
    outputs = tuple(f.name for f in odfv.features)
    transformation = odfv.feature_transformation
    if transformation is None:
        raise InvalidInputError(odfv.name, "the on-demand view has no transformation")
    return OnDemandRef(odfv.name, inputs, request, outputs, transformation.udf)


def service_plan(store: FeatureStore, service: FeatureService | str) -> ServicePlan:
    """The plan of a feature service from the registry: its views, outputs and on-demand views."""
    from feast.errors import FeatureServiceNotFoundException

    if isinstance(service, str):
        name = service
        try:
            service = store.get_feature_service(name)
        except FeatureServiceNotFoundException as e:
            raise InvalidInputError(
                name, "no such feature service in the registry (`engram materialize` applies it)"
            ) from e
    odfv_names = {v.name for v in store.list_on_demand_feature_views()}
    wanted: dict[str, list[str]] = {}
    outputs: list[str] = []
    on_demand: list[OnDemandRef] = []
    for projection in service.feature_view_projections:
        if projection.name_alias or projection.join_key_map:
            raise InvalidInputError(projection.name, "aliased projections are not supported")
        if projection.name in odfv_names:
            ref = _on_demand_ref(store.get_on_demand_feature_view(projection.name))
            chosen = {f.name for f in projection.features}
            on_demand.append(ref)
            outputs += [name for name in ref.outputs if name in chosen]
            continue
        names = [f.name for f in projection.features]
        wanted.setdefault(projection.name, []).extend(names)
        outputs += names
    hidden: dict[str, list[str]] = {}
    for ref in on_demand:
        for view, feature in ref.inputs:
            if feature not in wanted.get(view, []):
                hidden.setdefault(view, []).append(feature)
    views = [
        view_ref(
            store.get_feature_view(name),
            list(dict.fromkeys(wanted.get(name, []) + hidden.get(name, []))),
        )
        for name in dict.fromkeys([*wanted, *hidden])
    ]
    return ServicePlan(service.name, tuple(views), tuple(outputs), tuple(on_demand))
