"""Accuracy-compute reports: MLflow trials -> Pareto plots, tables, HTML, claims check, report.md.

Entry point: ``harness.report.build.build_report(tracking_uri, experiments, out_dir, get_frames=None,
relevance=None)``; ``report_dir(results_root, experiments)`` names the output folder. Rules are in
docs/reports.md. ``stats`` holds the bootstrap, ``evidence`` turns predictions into intervals, and
``claims`` the verdict machinery and the claims registry (claims are declared beside their methods).
"""
