"""Human-readable proof of a compression run: Markdown and HTML reports, plots, terminal table.

matplotlib is imported only inside the plotting functions, so importing this package is cheap.
"""

from nlpress.report.tables import format_table
from nlpress.report.write import write_report

__all__ = ["format_table", "write_report"]
