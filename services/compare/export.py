"""A comparison report (see :meth:`Comparisons.report`) as JSON, CSV or one HTML page.

Stem files are named relative to the jobs folder (``<job id>/<file>``), so the export links to
them without revealing where the data directory lives. Everything shown is escaped.
"""

from __future__ import annotations

import csv
import html
import io
import json
import time
from typing import Any

CSV_COLUMNS = (
    "comparison", "track", "lane", "label", "provider", "mode", "status", "seconds",
    "estimated_credits", "actual_credits", "estimated_money", "currency", "stem", "file",
    "sdr_db", "leakage_db", "residual_db", "vocal_in_instrumental_db", "mean_rating", "ratings",
)  # fmt: skip


def to_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=1, sort_keys=True, default=str)


def to_csv(report: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for lane in report["lanes"]:
        figures = lane["figures"] or {}
        base = {
            "comparison": report["id"],
            "track": report["track"],
            "lane": lane["index"],
            "label": lane["label"],
            "provider": lane["provider"],
            "mode": lane["mode"],
            "status": lane["status"],
            "seconds": _num(lane["seconds"]),
            "estimated_credits": _num(lane["estimated_credits"]),
            "actual_credits": _num(lane["actual_credits"]),
            "estimated_money": _num((lane["estimate"] or {}).get("money")),
            "currency": (lane["estimate"] or {}).get("currency") or "",
            "residual_db": _num(figures.get("residual_db")),
            "vocal_in_instrumental_db": _num(figures.get("vocal_in_instrumental_db")),
        }
        for stem in lane["stems"] or [{"stem": "", "file": ""}]:
            scores = [r["score"] for r in lane["ratings"] if r["stem"] == stem["stem"]]
            writer.writerow(
                base
                | stem
                | {
                    "sdr_db": _num(figures.get("sdr_db", {}).get(stem["stem"])),
                    "leakage_db": _num(figures.get("leakage_db", {}).get(stem["stem"])),
                    "mean_rating": _num(sum(scores) / len(scores) if scores else None),
                    "ratings": len(scores),
                }
            )
    return out.getvalue()


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222}
table{border-collapse:collapse;margin:1rem 0}
th,td{border:1px solid #ccc;padding:.3rem .6rem;text-align:left;vertical-align:top}
th{background:#f3f3f3} .err{color:#b00020} .help{color:#555;font-size:.9em}
"""


def to_html(report: dict[str, Any]) -> str:
    e = _escape
    created = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(report["created_at"]))
    lanes = report["lanes"]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>Comparison · {e(report['track'])}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{e(report['track'])}</h1>",
        f"<p>{float(report['duration_s']):.1f} s · compared {e(created)} · {len(lanes)} lanes</p>",
        "<h2>Lanes</h2><table><tr><th>Lane</th><th>Status</th><th>Time</th>"
        "<th>Credits (estimated / actual)</th><th>Stems returned</th></tr>",
    ]
    for lane in lanes:
        stems = (
            ", ".join(f"<a href='{e(s['file'])}'>{e(s['stem'])}</a>" for s in lane["stems"]) or "—"
        )
        status = e(lane["status"])
        if lane["error"]:
            status += f"<br><span class='err'>{e(lane['error'])}</span>"
        parts.append(
            f"<tr><td>{e(lane['label'])}</td><td>{status}</td><td>{_secs(lane['seconds'])}</td>"
            f"<td>{_credits(lane)}</td><td>{stems}</td></tr>"
        )
    parts.append("</table>")
    parts += _figures_table(report)
    parts += _ratings_table(report)
    parts.append("</body></html>")
    return "\n".join(parts)


def _figures_table(report: dict[str, Any]) -> list[str]:
    e, help_ = _escape, report["figure_help"]
    rows = ["<h2>Quality figures</h2><ul class='help'>"]
    rows += [f"<li><b>{e(k)}</b>: {e(v)}</li>" for k, v in help_.items()]
    rows.append(
        "</ul><table><tr><th>Lane</th><th>Residual dB</th><th>Vocal in instrumental dB</th>"
        "<th>SDR dB per stem</th><th>Leakage dB per stem</th></tr>"
    )
    for lane in report["lanes"]:
        f = lane["figures"]
        if not f:
            rows.append(f"<tr><td>{e(lane['label'])}</td><td colspan='4'>—</td></tr>")
            continue
        rows.append(
            f"<tr><td>{e(lane['label'])}</td><td>{e(_num(f['residual_db']))}</td>"
            f"<td>{e(_num(f['vocal_in_instrumental_db']))}</td>"
            f"<td>{_per_stem(f['sdr_db'])}</td><td>{_per_stem(f['leakage_db'])}</td></tr>"
        )
    rows.append("</table>")
    return rows


def _ratings_table(report: dict[str, Any]) -> list[str]:
    e = _escape
    if not report["reveal"]:
        return ["<h2>Blind ratings</h2><p>No ratings yet.</p>"]
    rows = [
        "<h2>Blind ratings</h2><table><tr><th>Stem</th><th>Lane</th><th>Mean (1–5)</th>"
        "<th>Ratings</th><th>Wins</th></tr>"
    ]
    for s in report["reveal"]:
        rows.append(
            f"<tr><td>{e(s['stem'])}</td><td>{e(s['provider_label'])}</td>"
            f"<td>{s['mean']:.2f}</td><td>{s['count']}</td><td>{s['wins']}</td></tr>"
        )
    rows.append("</table>")
    return rows


def _per_stem(values: dict[str, float]) -> str:
    return "<br>".join(f"{_escape(k)}: {v:.1f}" for k, v in sorted(values.items())) or "—"


def _secs(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} s"


def _credits(lane: dict[str, Any]) -> str:
    def show(v: float | None) -> str:
        return "unknown" if v is None else f"{v:g}"

    text = f"{show(lane['estimated_credits'])} / {show(lane['actual_credits'])}"
    estimate = lane.get("estimate") or {}
    money, currency = estimate.get("money"), estimate.get("currency")
    if money and currency:  # free lanes and unpriced credits show credits only
        text += f" · est. {money:.2f} {_escape(currency)}"
    return text


def _escape(value: object) -> str:
    return html.escape(str(value), quote=True)
