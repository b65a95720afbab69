"""Embeddings of texts: deterministic, unit length, batched like single, similar means closer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from memory import embed

SIMILAR = ("I moved to Berlin last spring.", "Last year I relocated to Berlin.")
UNRELATED = "The quarterly report is due on Friday."
TEXTS = [
    *SIMILAR,
    UNRELATED,
    "I am allergic to peanuts.",
    "ok",
    "",
    "A much longer message about my sister, who lives in Lisbon and works as a nurse at the "
    "big hospital by the river, and who visits us every summer with her two kids.",
]


@pytest.fixture(scope="session")
def models_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ONNX exports kept in pytest's cache, so only the first run exports (~10 s)."""
    cache = getattr(request.config, "cache", None)  # None under -p no:cacheprovider
    return Path(cache.mkdir("engram-models")) if cache else tmp_path_factory.mktemp("models")


# One thread each: on a busy 2-core machine two intra-op threads ran 3-20x slower (bench).
@pytest.fixture(scope="session")
def torch_embedder() -> embed.Embedder:
    return embed.load_torch_minilm(threads=1)


@pytest.fixture(scope="session")
def onnx_embedder(models_dir: Path) -> embed.Embedder:
    return embed.load_onnx_minilm(models_dir, variant="fp32", threads=1)


@pytest.fixture(scope="session")
def int8_embedder(models_dir: Path) -> embed.Embedder:
    return embed.load_onnx_minilm(models_dir, variant="int8", threads=1)


@pytest.fixture(params=["torch", "onnx-fp32"])
def embedder(request: pytest.FixtureRequest) -> embed.Embedder:
    """Each exact backend in turn."""
    name = {"torch": "torch_embedder", "onnx-fp32": "onnx_embedder"}[request.param]
    model: embed.Embedder = request.getfixturevalue(name)
    return model


def test_vectors_are_float32_unit_rows_in_input_order(embedder: embed.Embedder) -> None:
    vectors = embedder.embed(TEXTS)
    assert vectors.shape == (len(TEXTS), embed.DIM) == (len(TEXTS), embedder.dim)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_the_same_text_gets_the_same_vector(embedder: embed.Embedder) -> None:
    twice = embedder.embed([UNRELATED, SIMILAR[0], UNRELATED])
    assert np.array_equal(twice[0], twice[2])
    np.testing.assert_allclose(embedder.embed([UNRELATED])[0], twice[0], atol=1e-6)


def test_a_batch_equals_texts_embedded_one_by_one(embedder: embed.Embedder) -> None:
    batch = embedder.embed(TEXTS)
    single = np.vstack([embedder.embed([text]) for text in TEXTS])
    np.testing.assert_allclose(batch, single, atol=1e-5)


def test_similar_sentences_are_closer_than_unrelated(embedder: embed.Embedder) -> None:
    a, b, other = embedder.embed([*SIMILAR, UNRELATED])
    assert a @ b > 0.6
    assert a @ b > a @ other + 0.3


def test_no_texts_give_an_empty_matrix(embedder: embed.Embedder) -> None:
    assert embedder.embed([]).shape == (0, embed.DIM)


def test_onnx_computes_what_torch_computes(
    torch_embedder: embed.Embedder, onnx_embedder: embed.Embedder
) -> None:
    cosines = np.sum(torch_embedder.embed(TEXTS) * onnx_embedder.embed(TEXTS), axis=1)
    assert cosines.min() > 0.9999


def test_int8_stays_close_to_fp32(
    torch_embedder: embed.Embedder, int8_embedder: embed.Embedder
) -> None:
    # Dynamic quantization scales activations per batch, so int8 is near, not equal, to fp32.
    cosines = np.sum(torch_embedder.embed(TEXTS) * int8_embedder.embed(TEXTS), axis=1)
    assert cosines.min() > 0.95
    a, b, other = int8_embedder.embed([*SIMILAR, UNRELATED])
    assert a @ b > a @ other + 0.3


def test_names_tell_backend_and_length(
    torch_embedder: embed.Embedder, int8_embedder: embed.Embedder
) -> None:
    assert torch_embedder.name == "all-MiniLM-L6-v2/torch-fp32/seq256"
    assert int8_embedder.name == "all-MiniLM-L6-v2/onnx-int8/seq256"


def test_the_cache_computes_each_text_once(onnx_embedder: embed.Embedder) -> None:
    cached = embed.CachedEmbedder(onnx_embedder, max_entries=3)
    first = cached.embed([SIMILAR[0], SIMILAR[0], UNRELATED])
    assert (cached.misses, cached.hits) == (2, 1)
    again = cached.embed([UNRELATED, SIMILAR[0]])
    assert (cached.misses, cached.hits) == (2, 3)
    assert np.array_equal(again, first[[2, 0]])
    cached.embed(["one", "two", "three"])  # evicts the least recently used
    cached.embed([SIMILAR[0]])
    assert cached.misses == 6


def test_a_shorter_max_seq_length_truncates_long_texts(models_dir: Path) -> None:
    short = embed.load_onnx_minilm(models_dir, variant="fp32", max_seq_length=8, threads=1)
    assert short.name.endswith("/seq8")
    long_text = TEXTS[-1]
    truncated = short.embed([long_text])[0]
    prefix = short.embed([" ".join(long_text.split()[:6])])[0]  # 6 tokens + [CLS] and [SEP]
    assert truncated @ prefix > 0.999


def test_an_unknown_onnx_variant_is_refused(models_dir: Path) -> None:
    with pytest.raises(ValueError, match="unknown ONNX variant"):
        embed.build_onnx(models_dir, "fp8")
