"""The two things Engram keeps features about: users and items."""

from feast import Entity
from feast.value_type import ValueType

user = Entity(
    name="user",
    join_keys=["user_id"],
    value_type=ValueType.STRING,
    description="A person whose signals Engram receives; user_id as sent in the signals.",
)

item = Entity(
    name="item",
    join_keys=["item_id"],
    value_type=ValueType.STRING,
    description="A catalog item signals can name (a product, a film, an article).",
)
