"""Feature services, named for what reads them."""

from feast import FeatureService
from features import (
    item_1d_fv,
    item_7d_fv,
    item_30d_fv,
    item_profile_fv,
    user_1d_fv,
    user_7d_fv,
    user_30d_fv,
    user_profile_fv,
)
from on_demand import user_item_category

# The ranker reads numbers: lists feed the on-demand view instead, and absolute times are left
# out because a model would learn the calendar from them rather than the user.
ranking = FeatureService(
    name="ranking",
    features=[
        user_1d_fv,
        user_7d_fv,
        user_30d_fv,
        user_profile_fv[
            [
                "events_all",
                "weighted_all",
                "purchases_all",
                "rating_count",
                "rating_mean",
                "rating_std",
                "distinct_items",
                "session_count",
                "session_events_mean",
                "session_minutes_mean",
                "category_count",
            ]
        ],
        item_1d_fv,
        item_7d_fv,
        item_30d_fv,
        item_profile_fv[
            [
                "item_events_all",
                "item_weighted_all",
                "item_users",
                "item_rating_count",
                "item_rating_mean",
                "item_rating_std",
            ]
        ],
        user_item_category,
    ],
    description="What the LightGBM ranker reads for a (user, candidate item) pair, online and "
    "for training.",
)

analytics = FeatureService(
    name="analytics",
    features=[
        user_1d_fv,
        user_7d_fv,
        user_30d_fv,
        user_profile_fv,
        item_1d_fv,
        item_7d_fv,
        item_30d_fv,
        item_profile_fv,
    ],
    description="Every stored user and item feature, lists and times included, for reports and "
    "offline analysis.",
)
