"""Figures the reliability suites report; tests/conftest.py prints them after the run."""

FIGURES: list[str] = []


def report(line: str) -> str:
    """Record ``line`` for the end-of-run summary and print it (shown with ``-s``)."""
    FIGURES.append(line)
    print(line)
    return line
