"""MovieLens (ml-latest-small layout) as typed raw records plus an item catalog.

- ratings.csv (userId, movieId, rating, timestamp) -> `rate` signals, value = rating,
  event id `ml-r-{userId}-{movieId}` (MovieLens holds one rating per user and movie).
- tags.csv (userId, movieId, tag, timestamp) -> `tag` signals with the tag as text, event id
  `ml-t-{userId}-{movieId}-{md5(tag)[:10]}`: two rows identical in all fields are one event.
  The file is optional.
- movies.csv (movieId, title, genres) -> the catalog: genres split on "|" ("(no genres listed)"
  gives none), category = first genre, text = "title. genre, genre, ...".

User and item ids are the decimal strings of the MovieLens ids; ts is the epoch-seconds
timestamp. `position` is the 0-based data row number in its file (header not counted). The
data is read where it lies, never copied into the project.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv

from core.contract import CATALOG_SCHEMA
from core.errors import SourceError

NO_GENRES = "(no genres listed)"
_RATINGS_TYPES = {"userId": pa.int64(), "movieId": pa.int64(), "rating": pa.float64()}
_TAGS_TYPES = {"userId": pa.int64(), "movieId": pa.int64(), "tag": pa.string()}


def read_movielens(
    con: duckdb.DuckDBPyConnection, path: Path
) -> tuple[duckdb.DuckDBPyRelation, pa.Table]:
    """Typed raw records (ratings and tags) and the catalog (CATALOG_SCHEMA) of a MovieLens dir."""
    ratings_path, movies_path, tags_path = (
        path / name for name in ("ratings.csv", "movies.csv", "tags.csv")
    )
    for required in (ratings_path, movies_path):
        if not required.is_file():
            raise SourceError(str(path), f"not a MovieLens directory: {required.name} is missing")
    ratings = _read_csv(ratings_path, {**_RATINGS_TYPES, "timestamp": pa.int64()})
    con.register("_ml_ratings", ratings)
    selects = [
        f"""
        SELECT '{_escaped(ratings_path)}' AS source, position,
            'ml-r-' || userId || '-' || movieId AS event_id, CAST(userId AS VARCHAR) AS user_id,
            "timestamp" AS ts, 'rate' AS type, CAST(movieId AS VARCHAR) AS item_id,
            rating AS value, NULL::VARCHAR AS text
        FROM _ml_ratings
        """
    ]
    if tags_path.is_file():
        con.register("_ml_tags", _read_csv(tags_path, {**_TAGS_TYPES, "timestamp": pa.int64()}))
        selects.append(
            f"""
            SELECT '{_escaped(tags_path)}' AS source, position,
                'ml-t-' || userId || '-' || movieId || '-' || md5(tag)[1:10] AS event_id,
                CAST(userId AS VARCHAR) AS user_id, "timestamp" AS ts, 'tag' AS type,
                CAST(movieId AS VARCHAR) AS item_id, NULL::DOUBLE AS value, tag AS text
            FROM _ml_tags
            """
        )
    # One query per file, concatenated here: a UNION would not keep the files' row order.
    records = pa.concat_tables(con.sql(select).to_arrow_table() for select in selects)
    con.unregister("_ml_ratings")
    if tags_path.is_file():
        con.unregister("_ml_tags")
    return con.from_arrow(records), _catalog(con, movies_path)


def _read_csv(path: Path, types: dict[str, pa.DataType]) -> pa.Table:
    """A CSV file as a table with a 0-based `position`, in file order."""
    try:
        table = pacsv.read_csv(
            path,
            convert_options=pacsv.ConvertOptions(column_types=types, include_columns=list(types)),
        )
    except (pa.ArrowInvalid, KeyError) as e:
        raise SourceError(str(path), f"not in the MovieLens layout: {e}") from e
    return table.append_column("position", pa.array(range(table.num_rows), pa.int64()))


def _catalog(con: duckdb.DuckDBPyConnection, movies_path: Path) -> pa.Table:
    movies = _read_csv(
        movies_path, {"movieId": pa.int64(), "title": pa.string(), "genres": pa.string()}
    )
    con.register("_ml_movies", movies)
    catalog = con.sql(
        f"""
        SELECT CAST(movieId AS VARCHAR) AS item_id, title,
            CASE WHEN genres = '{NO_GENRES}' OR genres IS NULL THEN []::VARCHAR[]
                ELSE string_split(genres, '|') END AS genre_list,
            genre_list[1] AS category,
            genre_list AS genres,
            CASE WHEN len(genre_list) = 0 THEN title
                ELSE title || '. ' || array_to_string(genre_list, ', ') END AS text
        FROM _ml_movies
        ORDER BY position
        """
    ).to_arrow_table()
    con.unregister("_ml_movies")
    return catalog.select(CATALOG_SCHEMA.names).cast(CATALOG_SCHEMA)


def _escaped(path: Path) -> str:
    return str(path).replace("'", "''")


__all__ = ["NO_GENRES", "read_movielens"]
