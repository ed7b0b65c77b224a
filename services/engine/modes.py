"""The stems each local mode yields; torch-free so listing capabilities costs no model import."""

MODE_STEMS: dict[str, tuple[str, ...]] = {
    "2": ("vocals", "instrumental"),
    "4": ("vocals", "drums", "bass", "other"),
    "6": ("vocals", "drums", "bass", "piano", "guitar", "other"),
}
