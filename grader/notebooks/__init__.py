"""Notebooks: running a submission's notebooks in a sandboxed kernel, reading inline answers, and the report
(an executed notebook, HTML and PDF) made from them after grading."""
