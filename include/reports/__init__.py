"""The report kit: every airloop HTML page from Jinja2 templates (``templates/``) with one
stylesheet, one escaping rule and one set of number formats (:mod:`include.reports.format`);
charts as plotly figures (:mod:`include.reports.charts`). Airflow-free."""
