"""The GIQA-Bench evaluator (DESIGN §3.4): reading bench and prediction files, the LLM judge and its cache,
the report and per-item details, the printed Table 5 and the comparison chart.

Entry points: :func:`giqa.evaluation.io.read_bench`, :func:`giqa.evaluation.io.read_predictions`,
:func:`giqa.evaluation.report.evaluate`, :class:`giqa.evaluation.judge.Judge`.
"""
