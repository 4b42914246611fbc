"""The audit report moved to ``api/report.py`` (the regulator console serves it too);
``suyuan audit --report`` and older imports still find it here."""

from api.report import collect, findings_overview, render_html

__all__ = ["collect", "findings_overview", "render_html"]
