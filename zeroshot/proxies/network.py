"""Network proxies computed on a built torch network (shared passes)."""
