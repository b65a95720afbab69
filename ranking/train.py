"""Training the ranker: candidates at each label time, features as of then, lambdarank on top.

Shared by `engram train` (labels: each user's last interactions, models saved for serving) and
`engram eval` (labels: a slice of history before the evaluation cutoffs). Everything a training
row holds is as of its label time: candidate sources score from contacts before it, the feature
service's values come from Feast's point-in-time join, the user x item features from the log
before it. The label says whether the user later engaged positively with the item.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from core.errors import InvalidInputError
from core.settings import Settings
from ranking.baselines import ALS, EASE, ItemKNN, RecentPopularity
from ranking.candidates import CandidateSet, EmbeddingSource, ModelSource, Source, generate
from ranking.features import Context, assemble, feature_names
from ranking.history import UserHistory
from ranking.item_vectors import ItemVectors
from ranking.model import Fitted, fit_lambdarank
from ranking.sequence import SequentialCooccurrence
from ranking.split import Split, temporal_split

if TYPE_CHECKING:
    from feast import FeatureStore

SOURCE_ORDER: tuple[str, ...] = (
    "popularity",
    "cooccurrence",
    "item_knn",
    "als",
    "ease",
    "embedding",
)
LABEL_SLICES = 2  # label cutoffs per user, one before the other
RETRAIN_GROWTH = 0.25  # item-kNN, ALS and EASE retrained along the log: point in time anywhere


def fit_source_models(
    interactions: pd.DataFrame, growth: float = RETRAIN_GROWTH, seed: int = 0
) -> dict[str, Any]:
    """The point-in-time candidate models, fit on the whole log (each reads only the past);
    `seed` starts ALS's factors."""
    return {
        "popularity": RecentPopularity().fit(interactions),
        "cooccurrence": SequentialCooccurrence().fit(interactions),
        **fit_learned_sources(interactions, growth, seed),
    }


def fit_learned_sources(
    interactions: pd.DataFrame, growth: float | None = RETRAIN_GROWTH, seed: int = 0
) -> dict[str, Any]:
    """The candidate models whose item side is learned from the user-item matrix: retrained
    along the log at `growth` (point in time), or with None learned once from `interactions`
    (not point in time: what `engram eval` ranks its test users with, fit on the train part as
    its ALS and EASE baselines are); `seed` starts ALS's factors."""
    return {
        "item_knn": ItemKNN(retrain_growth=growth).fit(interactions),
        "als": ALS(retrain_growth=growth, seed=seed).fit(interactions),
        # Items touched by 3 users or more enter EASE's inversion, and each keeps its 500
        # strongest weights (sparse: a retrain point's weights ~4 MB on MovieLens-small, not
        # 100); chosen by the source's recall@100 on the validation split (docs/benchmarks.md).
        "ease": EASE(min_contacts=3, neighbors=500, retrain_growth=growth).fit(interactions),
    }


@dataclass
class RankingInputs:
    """Everything that turns (user, time) pairs into model rows."""

    sources: list[Source]
    context: Context
    items: pd.Index  # the catalog the sources rank
    service_features: list[str]
    store: FeatureStore
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def source_names(self) -> list[str]:
        """Source names, in order."""
        return [s.name for s in self.sources]

    @property
    def features(self) -> list[str]:
        """The model's columns."""
        return feature_names(self.source_names, self.service_features)


def ranking_inputs(
    settings: Settings,
    interactions: pd.DataFrame,
    models: Mapping[str, Any],
    vectors: ItemVectors,
    categories: pd.Series,
    store: FeatureStore | None = None,
) -> RankingInputs:
    """Sources, context and the feature service's outputs for this data."""
    from core.stores.online.plan import service_plan
    from ranking.training_data import offline_store

    store = store or offline_store(settings)
    history = UserHistory(interactions)
    sources: list[Source] = [
        ModelSource(name, models[name]) for name in SOURCE_ORDER if name in models
    ]
    sources.append(EmbeddingSource(vectors, history))
    items = pd.Index(
        sorted(set(vectors.ids.astype(str)) | set(interactions["item_id"].astype(str)))
    )
    context = Context(vectors, history, categories)
    plan = service_plan(store, "ranking")
    return RankingInputs(sources, context, items, list(plan.outputs), store)


def model_rows(
    settings: Settings,
    inputs: RankingInputs,
    user_ids: Sequence[str],
    at: pd.DatetimeIndex,
    exclude: Mapping[str, Collection[str]],
) -> tuple[CandidateSet, pd.DataFrame]:
    """Candidates of each (user, time) and their feature matrix, all as of that time."""
    began = time.perf_counter()
    candidates = generate(inputs.sources, user_ids, at, inputs.items, exclude)
    generated = time.perf_counter()
    matrix = training_matrix(settings, inputs, candidates.frame)
    inputs.seconds["candidates"] = inputs.seconds.get("candidates", 0) + generated - began
    return candidates, matrix


def training_matrix(settings: Settings, inputs: RankingInputs, frame: pd.DataFrame) -> pd.DataFrame:
    """Features of candidate rows, the feature service read point in time (Feast's join)."""
    from ranking.training_data import training_frame

    began = time.perf_counter()
    # Feast joins rows stamped at or before the label time; "as of t" means strictly before t
    # (a snapshot stamped at t already counts the events at t, e.g. the first held-out ones).
    labels = pd.DataFrame(
        {
            "user_id": frame["user_id"],
            "item_id": frame["item_id"],
            "event_timestamp": frame["at"] - pd.Timedelta(1, "us"),
        }
    )
    service = training_frame(settings, labels, store=inputs.store)
    joined = time.perf_counter()
    matrix = assemble(frame, service, inputs.context, inputs.source_names, inputs.service_features)
    inputs.seconds["feature_join"] = inputs.seconds.get("feature_join", 0) + joined - began
    inputs.seconds["assemble"] = inputs.seconds.get("assemble", 0) + time.perf_counter() - joined
    return matrix


def labels_for(frame: pd.DataFrame, relevant: Mapping[str, Collection[str]]) -> np.ndarray:
    """1 where the candidate is among the user's relevant items, else 0. Pure."""
    pairs = {(u, i) for u, items in relevant.items() for i in items}
    return np.fromiter(
        ((u, i) in pairs for u, i in zip(frame["user_id"], frame["item_id"], strict=True)),
        dtype=np.int32,
        count=len(frame),
    )


@dataclass(frozen=True)
class LabelSlice:
    """Label times per user, what each had seen before, and what they later engaged with."""

    cutoffs: pd.Series
    seen: Mapping[str, Collection[str]]
    relevant: Mapping[str, Collection[str]]

    def limited(self, users: int, seed: int = 0) -> LabelSlice:
        """At most `users` label users, drawn at random but the same on every run: a cheaper
        training set when the log has many users (the candidate sources still see them all)."""
        if len(self.cutoffs) <= users:
            return self
        order = np.random.default_rng(seed).permutation(len(self.cutoffs))[:users]
        kept = self.cutoffs.iloc[np.sort(order)]
        return LabelSlice(kept, self.seen, self.relevant)


def label_slices(split: Split, count: int = 2) -> list[LabelSlice]:
    """`count` label slices going back in time: the split's own, then the split of its train
    part, and so on; more (user, time) groups for a small log, all in the past. Pure."""
    slices = []
    for _ in range(count):
        slices.append(LabelSlice(split.cutoffs, split.seen, split.relevant))
        if len(split.train) == 0:
            break
        try:
            split = temporal_split(split.train)
        except InvalidInputError:
            break
        if not len(split.cutoffs):
            break
    return slices


def train_ranker(
    settings: Settings, inputs: RankingInputs, slices: Sequence[LabelSlice], seed: int = 0
) -> tuple[Fitted, CandidateSet]:
    """Lambdarank on candidates at each slice's label cutoffs, labelled by what came after."""
    frames, matrices, labels, lists = [], [], [], {}
    for part in slices:
        users = list(part.cutoffs.index)
        at = pd.DatetimeIndex(part.cutoffs.to_numpy()).tz_convert("UTC")
        candidates, matrix = model_rows(settings, inputs, users, at, part.seen)
        frames.append(candidates.frame)
        matrices.append(matrix)
        labels.append(labels_for(candidates.frame, part.relevant))
        lists.update(candidates.lists)
    frame = pd.concat(frames, ignore_index=True)
    matrix = pd.concat(matrices, ignore_index=True)
    # One code per (user, time), in order of appearance: as a string key, 2 million rows took
    # seconds to format.
    group = frame.groupby(["user_id", "at"], sort=False).ngroup()
    began = time.perf_counter()
    fitted = fit_lambdarank(matrix, np.concatenate(labels), group, frame["at"], seed=seed)
    inputs.seconds["lightgbm"] = inputs.seconds.get("lightgbm", 0) + time.perf_counter() - began
    return fitted, CandidateSet(frame, lists)


def top_items(frame: pd.DataFrame, scores: np.ndarray, k: int) -> dict[str, list[str]]:
    """Each user's k best candidates by score (ties: item id). Pure."""
    ranked = frame[["user_id", "item_id"]].assign(score=scores)
    ranked = ranked.sort_values(["user_id", "score", "item_id"], ascending=[True, False, True])
    return {
        str(user): list(group["item_id"].astype(str))[:k]
        for user, group in ranked.groupby("user_id", sort=False)
    }
