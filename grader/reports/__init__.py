"""Renderings of a grading's results: the terminal table, Gradescope's results.json, JUnit XML, Markdown,
and GitHub Classroom's annotations."""
