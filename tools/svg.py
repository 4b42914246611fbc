"""The SVG charts moved to ``api/charts.py`` (the audit report and the regulator console
draw them); older imports still find them here."""

from api.charts import bar_chart, stacked_chart

__all__ = ["bar_chart", "stacked_chart"]
