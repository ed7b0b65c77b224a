"""Compare: one track through several providers, with figures and blind ratings."""

from services.compare.model import Comparison, LaneSpec, ProviderScore, Rating, lane_label
from services.compare.service import Comparisons

__all__ = ["Comparison", "Comparisons", "LaneSpec", "ProviderScore", "Rating", "lane_label"]
